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
AUDIO_FF = ["audio_ff.net.0.proj", "audio_ff.net.2"]
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
    "a2a_ic_lora": (
        None,
        GEN,
        {
            "strategy.video": None,
            "strategy.audio.conditions.0._target_": "ltxtune.strategies.conditions.Reference",
            "strategy.audio.conditions.0.latents_dir": "reference_audio_latents",
            "lora.target_modules.5": "audio_ff.net.2",
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
    train_set = parts.data.split(parts.strategy.data_needs(), name).train
    batch = collate([train_set[0], train_set[1]])
    parts.strategy.check_data(batch)
    inputs = parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    assert role(inputs.video, inputs.video_targets) == video_role
    assert role(inputs.audio, inputs.audio_targets) == audio_role
    audio_dirs = parts.strategy.data_needs().audio_dirs  # where a clip without sound is left out, not refused
    assert audio_dirs is not None and bool(audio_dirs) == (audio_role is not None)


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


def test_a2a_ic_lora_puts_the_clean_reference_audio_before_the_noisy_target(synthetic_root) -> None:
    parts = build_parts(compose_cfg("experiment=a2a_ic_lora", data_root=synthetic_root))
    train_set = parts.data.split(parts.strategy.data_needs(), "a2a_ic_lora").train
    batch = collate([train_set[0], train_set[1]])
    inputs = parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    reference, target = batch.reference_audio_latents.latents, batch.audio_latents.latents
    r, t = reference.shape[2], target.shape[2]  # [B, 8, T, 16]
    assert inputs.video is None and inputs.audio.latent.shape[1] == r + t
    assert torch.equal(inputs.audio.latent[:, :r], reference.permute(0, 2, 1, 3).reshape(2, r, 128))  # clean
    assert (inputs.audio.timesteps[:, :r] == 0).all() and (inputs.audio.timesteps[:, r:] > 0).all()
    assert not inputs.audio_loss_mask[:, :r].any() and inputs.audio_loss_mask[:, r:].all()  # scored: target only


@pytest.mark.slow
def test_a2a_ic_lora_file_adapts_the_audio_stream_only(synthetic_root, tmp_path) -> None:
    train(compose_cfg("experiment=a2a_ic_lora", "trainer.max_steps=1", data_root=synthetic_root), tmp_path)
    with safe_open(str(tmp_path / "lora.safetensors"), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert json.loads(meta["target_modules"]) == ["to_k", "to_q", "to_v", "to_out.0", *AUDIO_FF]
    assert json.loads(meta["strategy_metadata"]) == {}  # no video reference: no scale factors to record
    assert any(".audio_ff.net.0.proj.lora_A" in k for k in keys) and not any(".ff.net" in k for k in keys)
    assert any(".audio_attn1.to_q.lora_A" in k for k in keys)


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
