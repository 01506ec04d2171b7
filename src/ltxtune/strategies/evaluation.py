"""What validation measures: the training strategy with its training-only knobs at fixed evaluation values.

A knob that only shapes how training draws its examples (how often the first frame is given, a mask
threshold, a condition's probability) must not move the objective a sweep compares: the same weights would
score differently in two jobs that differ only in that knob. Each strategy or condition class names those
knobs in ``TRAINING_KNOBS``; validation sets them to the class's own defaults (the shipped protocol), and
``validation.strategy`` overrides any key of the training strategy for validation alone.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from ltxtune.errors import ConfigError


def evaluation_config(strategy: DictConfig, overrides: DictConfig | dict | None = None) -> DictConfig:
    """The strategy node validation instantiates: ``strategy`` with its knobs fixed, then ``overrides``."""
    node = OmegaConf.create(OmegaConf.to_container(strategy, resolve=True))
    fix_training_knobs(node)
    overrides = OmegaConf.create(overrides or {})
    for key in overrides:
        if key not in node:
            raise ConfigError(f"validation.strategy.{key}", overrides[key], f"a key of strategy ({', '.join(node)})")
    return OmegaConf.merge(node, overrides)


def fix_training_knobs(node: Any) -> None:
    """Set every ``TRAINING_KNOBS`` key of every ``_target_`` node under ``node`` to its class default."""
    if isinstance(node, ListConfig):
        for item in node:
            fix_training_knobs(item)
    elif isinstance(node, DictConfig):
        for key, value in evaluation_values(node.get("_target_")).items():
            if key in node:
                node[key] = value
        for child in node.values():
            fix_training_knobs(child)


def evaluation_values(target: str | None) -> dict[str, Any]:
    """``{knob: constructor default}`` of the class ``target`` names (none for an unknown class)."""
    try:
        cls = get_class(target) if target else None
    except Exception:  # a bad _target_ fails where the training strategy is built, with its own message
        return {}
    if cls is None:
        return {}
    params = inspect.signature(cls).parameters
    return {k: params[k].default for k in getattr(cls, "TRAINING_KNOBS", ()) if k in params}
