"""What validation measures: one protocol for every job of a sweep, whatever it trains with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest
import torch

from conftest import compose_cfg
from ltxtune.errors import ConfigError
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def step0_metrics(run_dir: Path) -> dict:
    """The validation before the first step: the untrained model (LoRA B = 0) on the validation protocol."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in rows if r["step"] == 0 and "val/loss" in r)


def step0(synthetic_root: Path, tmp_path: Path, name: str, *overrides: str) -> dict:
    train(compose_cfg("trainer.max_steps=1", *overrides, data_root=synthetic_root), tmp_path / name)
    return step0_metrics(tmp_path / name)


@pytest.mark.parametrize(
    ("base", "knob"),
    [
        (["strategy=inpainting"], ["strategy.mask_threshold=0.3", "strategy.mask_threshold=0.7"]),
        (["strategy=text_to_video"], ["strategy.first_frame_p=0.0", "strategy.first_frame_p=0.9"]),
        (
            ["experiment=i2v"],
            ["strategy.video.conditions.0.probability=0.2", "strategy.video.conditions.0.probability=1"],
        ),
        ([], ["sampler=uniform", "sampler=shifted_logit_normal"]),
    ],
    ids=["mask_threshold", "first_frame_p", "condition_probability", "sampler"],
)
def test_jobs_differing_only_in_a_training_knob_report_the_same_objective_at_step_0(
    synthetic_root, tmp_path, base, knob
) -> None:
    a, b = (step0(synthetic_root, tmp_path, str(i), *base, value) for i, value in enumerate(knob))
    assert a["val/loss"] == b["val/loss"]  # to the last digit
    sigmas = {k: v for k, v in a.items() if k.startswith("val/loss_sigma_")}
    assert sorted(sigmas) == ["val/loss_sigma_0.5"]  # conftest's validation.sigmas=[0.5]
    assert sigmas == {k: b[k] for k in sigmas}


def test_the_validation_protocol_is_the_users_to_change(synthetic_root, tmp_path) -> None:
    """``validation.strategy`` overrides a key for validation alone, so the protocol does matter: two of them
    differ on the same weights."""
    base = ["strategy=inpainting", "strategy.mask_threshold=0.5"]
    a = step0(synthetic_root, tmp_path, "a", *base, "+validation.strategy.mask_threshold=0.3")
    b = step0(synthetic_root, tmp_path, "b", *base, "+validation.strategy.mask_threshold=0.7")
    assert a["val/loss"] != b["val/loss"]


def test_val_loss_is_the_mean_of_the_loss_at_each_sigma(synthetic_root, tmp_path) -> None:
    metrics = step0(synthetic_root, tmp_path, "run", "validation.sigmas=[0.2,0.6,0.9]")
    per_sigma = [metrics[f"val/loss_sigma_{s}"] for s in (0.2, 0.6, 0.9)]
    assert per_sigma[0] < per_sigma[2]  # less noise, less to predict wrong
    assert metrics["val/loss"] == pytest.approx(sum(per_sigma) / 3, rel=1e-12)


def test_the_evaluation_strategy_holds_knobs_at_their_defaults_and_refuses_unknown_keys() -> None:
    parts = build_parts(compose_cfg("strategy=text_to_video", "strategy.first_frame_p=0.9"))
    assert parts.strategy.first_frame_p == 0.9 and parts.evaluation.first_frame_p == 0.1
    flexible = build_parts(compose_cfg("experiment=i2v", "strategy.video.conditions.0.probability=0.3")).evaluation
    assert flexible.video.conditions[0].probability == 1.0
    with pytest.raises(ConfigError, match=r"validation\.strategy\.mask_treshold=0\.3 is not allowed: a key of"):
        build_parts(compose_cfg("strategy=inpainting", "+validation.strategy.mask_treshold=0.3"))


# ---------------------------------------------------------------------------------------------- previews


def preview_distances(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["val/preview_distance"] for r in rows if "val/preview_distance" in r}


def test_the_default_runs_previews_come_closer_to_the_captions_pattern(tmp_path) -> None:
    """The default run (200 steps on the embedded synthetic data): generated latents drift from noise towards
    the held-out sample's own moving blob; the preview distance falls by more than 15% (measured: 24%)."""
    cfg = compose_cfg("logger=none", f"data.root={tmp_path / 'data'}", small=False)
    train(cfg, tmp_path / "run")
    distances = preview_distances(tmp_path / "run")
    assert sorted(distances) == [0, 50, 100, 150, 200]
    assert distances[200] < 0.85 * distances[0], distances
    assert (tmp_path / "run" / "samples" / "step_000200" / "preview.png").is_file()


def test_an_i2v_preview_starts_from_the_samples_own_first_frame(synthetic_root, tmp_path) -> None:
    """Validation applies the first-frame condition (probability 1): the generated clip's first latent frame is
    the sample's, so in preview.png the two first frames are drawn pixel for pixel alike, and later ones not."""
    from PIL import Image

    from ltxtune.evaluation.previews import CELL_PIXELS, GAP_PIXELS

    train(compose_cfg("experiment=i2v", "trainer.max_steps=1", data_root=synthetic_root), tmp_path)
    image = torch.from_numpy(numpy.asarray(Image.open(tmp_path / "samples" / "step_000001" / "preview.png")))
    frames, height, width = 3, 4, 6  # the synthetic data's latent grid
    cell_h, cell_w = height * CELL_PIXELS, width * CELL_PIXELS + GAP_PIXELS
    reference_x = frames * cell_w + 2 * GAP_PIXELS

    def frame(x0: int, index: int) -> torch.Tensor:
        return image[:cell_h, x0 + index * cell_w : x0 + index * cell_w + width * CELL_PIXELS]

    assert torch.equal(frame(0, 0), frame(reference_x, 0))
    assert not torch.equal(frame(0, 2), frame(reference_x, 2))
