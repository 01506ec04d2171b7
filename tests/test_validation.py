"""What validation measures: one protocol for every job of a sweep (issue 14), whatever it trains with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
