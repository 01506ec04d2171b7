"""What a sweep job is: its overrides, its wandb identity, and whether an earlier run of the sweep finished it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ltxtune.training.result import RunResult

SWEEP_FILE = "sweep.json"  # the swept keys, written when the sweep starts: jobs and summaries read it
# Keys that never change what a finished job computed: a resumed sweep may change them and still skip it
# (say, add checkpoint.resume=auto so that the killed jobs continue from their checkpoints).
IGNORED_FOR_RESUME = ("logger", "checkpoint.resume")


@dataclass(frozen=True)
class JobRecord:
    """One job of a sweep, as its directory tells it (a job still running or killed has status ``incomplete``)."""

    job: str
    overrides: dict[str, str]
    status: str
    objective: float
    val_loss: float | None = None
    train_loss: float | None = None
    steps: int = 0
    steps_per_s: float | None = None
    samples_per_s: float | None = None
    wall_s: float | None = None
    val_curve: list[tuple[int, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- overrides


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """A job's overrides ``["+a.b=1", "sampler=uniform"]`` -> ``{"a.b": "1", "sampler": "uniform"}``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return {o.key_or_group: o.get_value_element_as_str() for o in parsed}


def swept_keys(config: DictConfig) -> list[str]:
    """The keys a multirun varies: sweeps on the command line and in ``hydra.sweeper.params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params")
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(lines)
    return list(dict.fromkeys(o.key_or_group for o in parsed if o.is_sweep_override()))


def read_swept(sweep_dir: Path) -> list[str] | None:
    path = sweep_dir / SWEEP_FILE
    return json.loads(path.read_text())["swept"] if path.is_file() else None


def job_sweep_dir() -> Path:
    """The current job's sweep directory, absolute (the job's output dir less its subdir)."""
    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir).parents[len(Path(hc.sweep.subdir).parts) - 1]


def group_name(sweep_dir: Path) -> str:
    """A sweep's wandb group: its last two path parts (``multirun/2025-01-01/12-00-00`` -> ``2025-01-01/12-00-00``)."""
    return "/".join(sweep_dir.absolute().parts[-2:])


def job_identity() -> tuple[str, str] | None:
    """``(group, name)`` for wandb in a sweep job: the sweep's group, the job's swept overrides; else ``None``."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hc = HydraConfig.get()
    sweep_dir = job_sweep_dir()
    overrides = parse_overrides(list(hc.overrides.task))
    swept = read_swept(sweep_dir)
    named = [f"{k}={v}" for k, v in overrides.items() if swept is None or k in swept]
    return group_name(sweep_dir), ",".join(named) or f"job{hc.job.num}"


# ---------------------------------------------------------------------------------------------- resume


def completed_objective(run_dir: Path, config: DictConfig) -> float | None:
    """The objective of an earlier, completed run of exactly this config in ``run_dir``; ``None`` otherwise.

    A resumed sweep skips such a job. The saved ``config.yaml`` must match the resolved config (the logger
    and ``checkpoint.resume`` aside), so a different command reusing the directory re-runs the job instead of
    reporting stale numbers.
    """
    saved_path = run_dir / "config.yaml"
    result = RunResult.read(run_dir)
    if result is None or not result.completed or not saved_path.is_file():
        return None
    saved = yaml.safe_load(saved_path.read_text())
    current = yaml.safe_load(OmegaConf.to_yaml(config, resolve=True))
    for key in IGNORED_FOR_RESUME:
        _drop(saved, key)
        _drop(current, key)
    return result.objective if saved == current else None


def _drop(tree: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.get(part) if isinstance(tree, dict) else None
    if isinstance(tree, dict):
        tree.pop(leaf, None)
