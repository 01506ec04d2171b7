"""Turn a composed config into validated objects: every node is instantiated (cheap) before anything heavy.

Each group option's node has a ``_target_``; instantiating it *is* the dispatch. Constructors check their
own values and raise ``ConfigError`` with their argument name, which is prefixed here with the group
(``optimizer.lr``) so the message names the key a user types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ltxtune.errors import ConfigError


def instantiate_node(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(cfg[key])`` with constructor errors re-raised as ``ConfigError(key.arg)``."""
    node = cfg[key]
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause.within(key) from None
        if isinstance(cause, TypeError) and "argument" in str(cause):
            raise ConfigError(
                key, OmegaConf.to_container(node), f"valid arguments for {node.get('_target_')}: {cause}"
            ) from None
        raise


@dataclass(frozen=True)
class Parts:
    """The run's objects, all validated; nothing heavy (no model, no data) has been built yet."""

    trainer: Any
    checkpoint: Any
    validation: Any
    loader: Any
    model: Any
    strategy: Any
    sampler: Any
    lora: Any
    data: Any
    optimizer: Any
    scheduler: Any
    logger: Any


def build_parts(cfg: DictConfig) -> Parts:
    return Parts(**{name: instantiate_node(cfg, name) for name in Parts.__dataclass_fields__})
