"""Every preset in conf/experiment/ is the mode its name promises, and trains on the synthetic data as it is."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from safetensors import safe_open

from conftest import CONF, ROOT, compose_cfg
from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train

GEN, FROZEN = "generated", "frozen"
# preset -> (video track, audio track, config values that make it that mode)
PRESETS: dict[str, tuple[str | None, str | None, dict]] = {
    "t2v": (GEN, GEN, {"strategy.with_audio": True}),
    "i2v": (
        GEN,
        None,
        {
            "strategy.video.conditions.0._target_": "ltxtune.strategies.conditions.FirstFrame",
            "strategy.video.conditions.0.probability": 0.5,
        },
    ),
    "extend_forward": (GEN, None, {"strategy.video.conditions.0._target_": "ltxtune.strategies.conditions.Prefix"}),
    "extend_backward": (GEN, None, {"strategy.video.conditions.0._target_": "ltxtune.strategies.conditions.Suffix"}),
    "v2v_ic_lora": (
        GEN,
        None,
        {
            "strategy.first_frame_p": 0.2,
            "strategy.reference_latents_dir": "reference_latents",
            "lora.target_modules.5": "ff.net.2",
        },
    ),
    "av2av_ic_lora": (
        GEN,
        GEN,
        {
            "strategy.video.conditions.0._target_": "ltxtune.strategies.conditions.Reference",
            "strategy.video.conditions.1.probability": 0.2,
            "strategy.audio.conditions.0._target_": "ltxtune.strategies.conditions.Reference",
        },
    ),
    "a2v": (GEN, FROZEN, {}),
    "v2a": (FROZEN, GEN, {}),
    "inpaint_video": (GEN, None, {"strategy.video.conditions.0.mask_dir": "video_masks"}),
    "outpaint_video": (
        GEN,
        None,
        {"strategy.video.conditions.0._target_": "ltxtune.strategies.conditions.SpatialCrop"},
    ),
    "t2a": (None, GEN, {"strategy.video": None}),
    "extend_audio": (None, GEN, {"strategy.audio.conditions.0._target_": "ltxtune.strategies.conditions.Prefix"}),
    "inpaint_audio": (None, GEN, {"strategy.audio.conditions.0.mask_dir": "audio_masks"}),
}


# Presets of settings rather than of a mode, each tested beside the options it sets (tests/test_low_vram.py).
SETTINGS_PRESETS = ("low_vram",)


def test_every_preset_file_is_a_global_overlay_listed_here() -> None:
    files = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert files == sorted([*PRESETS, *SETTINGS_PRESETS])
    for name in files:
        assert (CONF / "experiment" / f"{name}.yaml").read_text().startswith("# @package _global_")


def role(modality, targets) -> str | None:
    if modality is None:
        return None
    return GEN if targets is not None else FROZEN


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_is_the_mode_it_names_and_its_data_checks_pass(name: str, synthetic_root) -> None:
    video_role, audio_role, values = PRESETS[name]
    cfg = compose_cfg(f"experiment={name}", data_root=synthetic_root)
    for key, value in values.items():
        assert OmegaConf.select(cfg, key) == value, key
    parts = build_parts(cfg)
    train_set, _ = parts.data.split(parts.strategy.get_data_sources(), name)
    batch = collate([train_set[0], train_set[1]])
    parts.strategy.check_data(batch)
    inputs = parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    assert role(inputs.video, inputs.video_targets) == video_role
    assert role(inputs.audio, inputs.audio_targets) == audio_role


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_trains_a_few_steps_with_per_modality_sigma_buckets(name: str, synthetic_root, tmp_path) -> None:
    video_role, audio_role, _ = PRESETS[name]
    train(compose_cfg(f"experiment={name}", "trainer.max_steps=2", data_root=synthetic_root), tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    keys = {k for m in read_metrics(tmp_path) for k in m}
    assert any(k.startswith("train/loss_sigma_") for k in keys)  # the video's, or the audio's when alone
    assert any(k.startswith("train/audio_loss_sigma_") for k in keys) == (video_role == audio_role == GEN)
    assert (tmp_path / "lora.safetensors").is_file()


@pytest.mark.slow
def test_ic_lora_file_records_the_reference_downscale_factor(synthetic_root, tmp_path) -> None:
    train(compose_cfg("experiment=v2v_ic_lora", "trainer.max_steps=1", data_root=synthetic_root), tmp_path)
    with safe_open(str(tmp_path / "lora.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["strategy_metadata"])
    assert meta["reference_spatial_scale_factor"] == meta["reference_downscale_factor"] == 2


@pytest.mark.slow
def test_cli_inpainting_threshold_trains(synthetic_root, tmp_path) -> None:
    command = [
        sys.executable,
        "train.py",
        "strategy=inpainting",
        "strategy.mask_threshold=0.4",
        "logger=none",
        "trainer.max_steps=2",
        "validation.sigmas=[0.5]",
        f"data.root={synthetic_root}",
        f"hydra.run.dir={tmp_path}",
        "data.num_samples=12",
        "data.val_samples=2",
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed"
    with safe_open(str(tmp_path / "lora.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["strategy_metadata"]) == {"mask_threshold": 0.4}
