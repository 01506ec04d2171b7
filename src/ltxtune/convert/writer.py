"""An ``Experiment`` as a ``# @package _global_`` preset file, what was left out listed at its top."""

from __future__ import annotations

import yaml

from ltxtune.convert.mapping import Experiment

# The order a reader expects in the defaults list (the order of conf/train.yaml).
_GROUPS = ("model", "strategy", "sampler", "lora", "data", "optimizer", "scheduler", "logger")


def render(experiment: Experiment, source: str) -> str:
    lines = ["# @package _global_", f"# Converted from the ltx-trainer config {source} by python -m ltxtune.convert."]
    if experiment.dropped:
        lines.append(f"# Not carried over ({len(experiment.dropped)}):")
        lines += [f"#   {key}: {reason}" for key, reason in experiment.dropped]
    defaults = [{f"override /{g}": experiment.groups[g]} for g in _GROUPS if g in experiment.groups]
    body = yaml.safe_dump({"defaults": defaults, **experiment.values}, sort_keys=False, width=110)
    return "\n".join(lines) + "\n" + body
