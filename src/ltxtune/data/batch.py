"""The batch that crosses from the data loader to a strategy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """Samples of one shape, grouped by the batch keys a strategy declared in ``get_data_sources``.

    ``batch["latents"]["latents"]`` is ``[B, 128, F, H, W]``; scalar fields (``fps``, ``num_frames``) are ``[B]``.
    """

    sources: Mapping[str, Mapping[str, Any]]
    names: tuple[str, ...]

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        return self.sources[key]

    def __contains__(self, key: str) -> bool:
        return key in self.sources

    def __len__(self) -> int:
        return len(self.names)

    def to(self, device: torch.device) -> Batch:
        moved = {
            key: {f: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for f, v in fields.items()}
            for key, fields in self.sources.items()
        }
        return Batch(moved, self.names)


def collate(samples: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]]) -> Batch:
    """Stack ``(name, {key: {field: value}})`` samples; tensors and numbers are stacked, the rest listed."""
    names = tuple(name for name, _ in samples)
    first = samples[0][1]
    sources = {key: {f: _stack([s[key][f] for _, s in samples]) for f in first[key]} for key in first}
    return Batch(sources, names)


def _stack(values: list[Any]) -> Any:
    if isinstance(values[0], Tensor):
        return torch.stack(values)
    if isinstance(values[0], bool | int | float):
        return torch.tensor(values)
    return values
