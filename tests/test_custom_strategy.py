"""A user's own strategy, defined outside ltxtune, plugs in with a YAML file and trains (docs/custom-strategies.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import Tensor

from conftest import ROOT, compose_cfg
from ltxtune.data.batch import Batch, collate
from ltxtune.data.needs import DataNeeds
from ltxtune.diffusion import flow
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.diffusion.tokens import VideoTokens
from ltxtune.errors import ConfigError, check_range
from ltxtune.strategies.base import TrainingStrategy, video_modality
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


class NextFrame(TrainingStrategy):
    """Given every latent frame but the last, generate the last; low-noise samples weigh more in the loss."""

    def __init__(
        self, weight_floor: float = 0.5, latents_dir: str = "latents", conditions_dir: str = "conditions"
    ) -> None:
        check_range("weight_floor", weight_floor, 0.0, 1.0)
        self.weight_floor, self.latents_dir, self.conditions_dir = weight_floor, latents_dir, conditions_dir

    def data_needs(self) -> DataNeeds:
        return DataNeeds(text=self.conditions_dir, video_latents=self.latents_dir)

    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs:
        video = VideoTokens.from_clip(batch.video_latents)
        b, t, _ = video.tokens.shape
        cond = torch.ones(b, t, dtype=torch.bool, device=video.tokens.device)
        cond[:, t - video.height * video.width :] = False
        noised = flow.noise_tokens(video.tokens, sampler.sample_for(video.tokens, generator), cond, generator)
        return ModelInputs(
            video=video_modality(noised, video.positions(), batch.text),
            audio=None,
            video_targets=noised.target,
            video_loss_mask=noised.loss_mask,
        )

    def compute_loss(self, video_pred: Tensor | None, audio_pred: Tensor | None, inputs: ModelInputs) -> Tensor:
        weight = self.weight_floor + (1 - self.weight_floor) * (1 - inputs.video.sigma)
        return weight * super().compute_loss(video_pred, audio_pred, inputs)

    def get_checkpoint_metadata(self) -> dict[str, str]:
        return {"generates": "last latent frame"}


def user_config_dir(root: Path) -> Path:
    """The user's own config directory, beside ltxtune's: ``strategy/next_frame.yaml``."""
    (root / "strategy").mkdir(parents=True, exist_ok=True)
    lines = [f"_target_: {NextFrame.__module__}.NextFrame", "weight_floor: 0.5", "latents_dir: latents"]
    (root / "strategy" / "next_frame.yaml").write_text("\n".join(lines) + "\n")
    return root


def test_custom_strategy_composes_validates_and_prepares(synthetic_root, tmp_path) -> None:
    search = f"hydra.searchpath=[file://{user_config_dir(tmp_path / 'conf')}]"
    parts = build_parts(compose_cfg(search, "strategy=next_frame", data_root=synthetic_root))
    assert isinstance(parts.strategy, NextFrame)
    train_set = parts.data.split(parts.strategy.data_needs(), "NextFrame").train
    parts.strategy.check_data(collate([train_set[0]]))

    with pytest.raises(ConfigError) as info:
        build_parts(compose_cfg(search, "strategy=next_frame", "strategy.weight_floor=2", data_root=synthetic_root))
    assert str(info.value).startswith("strategy.weight_floor=2 is not allowed")


@pytest.mark.slow
def test_custom_strategy_trains_and_its_metadata_reaches_the_lora(synthetic_root, tmp_path) -> None:
    search = f"hydra.searchpath=[file://{user_config_dir(tmp_path / 'conf')}]"
    train(compose_cfg(search, "strategy=next_frame", "trainer.max_steps=3", data_root=synthetic_root), tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 3
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # Two of the three latent frames are conditioning in every sample.
    assert [round(m["train/cond_fraction"], 6) for m in steps if "train/loss" in m] == [round(2 / 3, 6)] * 3
    with safe_open(str(tmp_path / "run" / "lora.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["strategy"] == f"{NextFrame.__module__}.NextFrame"
    assert json.loads(meta["strategy_metadata"]) == {"generates": "last latent frame"}


@pytest.mark.slow
def test_custom_strategy_from_the_command_line(synthetic_root, tmp_path) -> None:
    conf = user_config_dir(tmp_path / "conf")
    command = [
        sys.executable,
        "train.py",
        "--config-dir",  # the documented way to add the user's folder
        str(conf),
        "strategy=next_frame",
        "logger=none",
        "trainer.max_steps=2",
        "validation.sigmas=[0.5]",
        f"data.root={synthetic_root}",
        "data.num_samples=12",
        "data.val_samples=2",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    # where the user's module lives, before the code under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "completed"
