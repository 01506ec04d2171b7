"""Making room on the GPU while validation samples: the optimizer state waits in host memory.

AdamW keeps two float32 tensors per trainable weight (for a full fine-tune, twice the model); validation
needs none of them but needs room for the decoders and the guided passes. ``optimizer_state_on_host`` moves
the state to the CPU for the duration of a ``with`` block and puts every tensor back where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _state(optimizer: torch.optim.Optimizer) -> dict:
    """The per-parameter state of ``optimizer`` (accelerate's wrapper holds the real one)."""
    return getattr(optimizer, "optimizer", optimizer).state


@contextmanager
def optimizer_state_on_host(optimizer: torch.optim.Optimizer, enabled: bool = True) -> Iterator[int]:
    """Move the optimizer's state tensors that live on an accelerator to the CPU, then back; yields the bytes moved.

    Sharded (FSDP) state is left where it is: each rank holds only its shard already.
    """
    moved: list[tuple[dict, str, torch.device]] = []
    size = 0
    if enabled:
        for entry in _state(optimizer).values():
            for key, value in entry.items():
                if isinstance(value, torch.Tensor) and value.device.type != "cpu" and type(value) is torch.Tensor:
                    moved.append((entry, key, value.device))
                    size += value.numel() * value.element_size()
                    entry[key] = value.to("cpu")
        if moved and torch.cuda.is_available():
            torch.cuda.empty_cache()
    try:
        yield size
    finally:
        for entry, key, device in moved:
            entry[key] = entry[key].to(device)
