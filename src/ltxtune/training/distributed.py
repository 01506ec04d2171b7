"""How the ranks share the model (``trainer.distributed``): DDP replicas, or FSDP2 shards.

``Replicated`` (``ddp``) is accelerate's DDP: every rank holds the whole model, gradients are all-reduced.
``Sharded`` (``fsdp``) calls PyTorch's ``fully_shard`` itself, one unit per ``BasicAVTransformerBlock`` and one
for the root, before the optimizer is built. It does not go through accelerate's FSDP plugin: accelerate only
shards on accelerators (on the CPU it sets up plain gloo DDP), and one code path for CPU and GPU is one that
the tests run. Both offer the same calls to the trainer: full tensors for saving (gathered on the main process;
every rank must call), loading a checkpoint's full tensors back, and a checksum of the trained weights.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from ltxtune.model.base import fsdp_units

FSDP_ENV = "ACCELERATE_USE_FSDP"  # set by `accelerate launch --config_file launch/fsdp.yaml`


def launched_with_fsdp() -> bool:
    """Whether accelerate's launcher was given an FSDP config (it says so in the environment)."""
    return os.environ.get(FSDP_ENV, "false").lower() == "true"


def distributed_mode(configured: str) -> str:
    """``fsdp`` when asked for by ``trainer.distributed`` or by ``accelerate launch``'s FSDP config, else ``ddp``."""
    return "fsdp" if configured == "fsdp" or launched_with_fsdp() else "ddp"


def local_sum(tensor: Tensor) -> float:
    """The sum of this rank's part of a weight (a DTensor's own shard; a plain tensor whole)."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return float(local.detach().double().sum())


def full_value(value: Tensor) -> Tensor:
    """A reduced DTensor (FSDP's gradient norm) as the plain tensor every rank agrees on."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


class Replicated:
    """DDP through ``accelerator.prepare``; every rank already holds full tensors."""

    sharded = False

    def shard(self, transformer: nn.Module) -> None:
        """Nothing to do before the optimizer exists: DDP wraps the parameters as they are."""

    def wrap(self, accelerator: Accelerator, transformer: nn.Module) -> nn.Module:
        return accelerator.prepare(transformer)

    def trainable_state(self, model: nn.Module) -> dict[str, Tensor]:
        return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}

    def weights(self, model: nn.Module) -> dict[str, Tensor] | None:
        """``None``: the adapter reads the (whole) weights from the module itself."""
        return None

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        return optimizer.state_dict()

    def load(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, trainable: dict[str, Tensor], optim: dict[str, Any]
    ) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in trainable.items():
                params[name].copy_(value)
        optimizer.load_state_dict(optim)

    def weight_sum(self, accelerator: Accelerator, model: nn.Module) -> float:
        """This rank's own copy: equal on every rank when DDP keeps the replicas in sync."""
        return sum(local_sum(p) for p in model.parameters() if p.requires_grad)


class Sharded:
    """FSDP2: parameters, gradients and optimizer state sharded over the ranks, one transformer block per unit.

    ``reshard_after_forward`` frees each block's gathered weights after its forward (gathered again in backward):
    the memory of one block at a time, at the cost of a second all-gather.
    """

    sharded = True

    def __init__(self, reshard_after_forward: bool = True) -> None:
        self.reshard_after_forward = reshard_after_forward

    def shard(self, transformer: nn.Module) -> None:
        """Shard in place; the parameters become DTensors, so the optimizer must be built afterwards."""
        from torch.distributed.fsdp import fully_shard

        for block in fsdp_units(transformer):
            fully_shard(block, reshard_after_forward=self.reshard_after_forward)
        fully_shard(transformer, reshard_after_forward=self.reshard_after_forward)

    def wrap(self, accelerator: Accelerator, transformer: nn.Module) -> nn.Module:
        """The sharded module is its own wrapper (accelerate's prepare would put DDP around it)."""
        return transformer

    @staticmethod
    def _options(**kwargs: bool) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        # Full tensors, gathered block by block into the main process's CPU memory (the others get none).
        return StateDictOptions(full_state_dict=True, cpu_offload=True, **kwargs)

    def trainable_state(self, model: nn.Module) -> dict[str, Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=self._options(ignore_frozen_params=True))

    def weights(self, model: nn.Module) -> dict[str, Tensor]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(model, options=self._options())

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(model, _torch_optimizer(optimizer), options=self._options())

    def load(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, trainable: dict[str, Tensor], optim: dict[str, Any]
    ) -> None:
        """Every rank read the same full tensors from the checkpoint: each keeps its own shard of them."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, strict=False)  # the frozen base is not in the checkpoint
        set_model_state_dict(model, trainable, options=options)
        set_optimizer_state_dict(model, _torch_optimizer(optimizer), optim, options=options)

    def weight_sum(self, accelerator: Accelerator, model: nn.Module) -> float:
        """The sum over every shard (one copy of each weight exists): comparable with a DDP run's checksum."""
        local = sum(local_sum(p) for p in model.parameters() if p.requires_grad)
        value = torch.tensor([local], dtype=torch.float64, device=accelerator.device)
        return float(accelerator.reduce(value, reduction="sum").item())


def _torch_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper (the state-dict helpers read its param groups)."""
    return getattr(optimizer, "optimizer", optimizer)


def parallelism(configured: str, num_processes: int) -> Replicated | Sharded:
    """The ``trainer.distributed`` choice for this run. One process has nothing to shard over: it trains as
    ``ddp`` does (the whole model on its one device), so a config written for FSDP also runs on a laptop."""
    if distributed_mode(configured) != "fsdp":
        return Replicated()
    if num_processes > 1:
        return Sharded()
    print("trainer.distributed=fsdp with one process: nothing to shard over, the model trains whole", flush=True)
    return Replicated()
