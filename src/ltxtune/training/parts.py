"""Turn a composed config into validated objects: every node is instantiated (cheap) before anything heavy.

Each group option's node has a ``_target_``; instantiating it *is* the dispatch. Constructors check their
own values and raise ``ConfigError`` with their argument name, which is prefixed here with the group
(``optimizer.lr``) so the message names the key a user types.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from ltxtune.errors import ConfigError, check_annotated
from ltxtune.strategies.evaluation import evaluation_config

if TYPE_CHECKING:  # the classes the config groups build; imported for the types only (they pull in torch)
    from ltxtune.data.spec import PrecomputedData
    from ltxtune.diffusion.samplers import TimestepSampler
    from ltxtune.evaluation.settings import ValidationSettings, VideoSettings
    from ltxtune.model.adapters import Adapter
    from ltxtune.model.base import ModelSpec
    from ltxtune.strategies.base import TrainingStrategy
    from ltxtune.training.optim import AdamW, Schedule
    from ltxtune.training.settings import CheckpointSettings, LoaderSettings, TrainerSettings
    from ltxtune.training.tracking import Tracker


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(cfg[key])`` with constructor errors re-raised as ``ConfigError(key.arg)``."""
    node = OmegaConf.select(cfg, key)
    check_node_types(node, key)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause.within(failing_node_key(cfg, str(exc), key)) from None
        if isinstance(cause, TypeError) and "argument" in str(cause):
            raise ConfigError(
                key, OmegaConf.to_container(node), f"valid arguments for {node.get('_target_')}: {cause}"
            ) from None
        raise


def check_node_types(node: Any, key: str) -> None:
    """Refuse a value whose type the constructor's annotation rules out (``lora.rank=sixteen``), naming the full
    key, before the constructor compares a text with a number; nested ``_target_`` nodes are checked too."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    try:
        params = inspect.signature(get_object(node._target_)).parameters
    except (ImportError, ValueError, TypeError):  # instantiate reports a target it cannot build
        return
    for name in node:
        if name.startswith("_"):
            continue
        value = node[name]
        if name in params:
            shown = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
            check_annotated(f"{key}.{name}", shown, params[name].annotation)
        if node.get("_recursive_", True) is False:
            continue
        if isinstance(value, DictConfig):
            check_node_types(value, f"{key}.{name}")
        elif isinstance(value, ListConfig):
            for i, item in enumerate(value):
                check_node_types(item, f"{key}.{name}[{i}]")


def failing_node_key(cfg: DictConfig, message: str, group: str) -> str:
    """The user-facing key of the nested node that failed (``strategy.video.conditions[0]``).

    Hydra's message ends with ``full_key: strategy.video.conditions0``: list indices are glued to the list's
    name, so walk the config to tell ``conditions0`` (item 0 of ``conditions``) from a key named so.
    """
    found = re.findall(r"full_key: (\S+)", message)
    if not found:
        return group
    node, parts = cfg, []
    for segment in found[-1].split("."):
        if isinstance(node, DictConfig) and segment in node:
            node = node[segment]
            parts.append(segment)
            continue
        match = re.fullmatch(r"(.*?)(\d+)", segment)
        if match is None or match.group(1) not in node:
            return group
        name, index = match.groups()
        node = node[name][int(index)]
        parts.append(f"{name}[{index}]")
    return ".".join(parts)


@dataclass(frozen=True)
class Parts:
    """The run's objects, all validated; nothing heavy (no model, no data) has been built yet."""

    trainer: TrainerSettings
    checkpoint: CheckpointSettings
    validation: ValidationSettings
    loader: LoaderSettings
    model: ModelSpec
    strategy: TrainingStrategy
    sampler: TimestepSampler
    lora: Adapter
    data: PrecomputedData
    optimizer: AdamW
    scheduler: Schedule
    logger: Tracker
    validation_videos: VideoSettings  # last: its decoder follows model.checkpoint, whose error comes first
    evaluation: TrainingStrategy  # what validation measures: the strategy with its training-only knobs fixed


def build_parts(cfg: DictConfig) -> Parts:
    groups = [name for name in Parts.__dataclass_fields__ if name != "evaluation"]
    built = {name: instantiate_node(cfg, name) for name in groups}
    videos = built["validation_videos"]
    if videos.has_auto():  # inference's steps and STG block follow the checkpoint's version (its header says)
        built["validation_videos"] = videos.for_model(built["model"].version())
    return Parts(**built, evaluation=evaluation_strategy(cfg))


def evaluation_strategy(cfg: DictConfig) -> TrainingStrategy:
    """The strategy at its evaluation values (``ltxtune.strategies.evaluation``), ``validation.strategy`` applied."""
    node = evaluation_config(cfg.strategy, cfg.validation.get("strategy"))
    return instantiate_node(OmegaConf.create({"validation": {"strategy": node}}), "validation.strategy")
