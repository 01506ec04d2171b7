"""The precomputed dataset: one ``.pt`` file per sample, the same relative path in every source directory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ltxtune.errors import DataError


def load_sample_file(path: Path) -> dict[str, Any]:
    """Load one sample file, refusing anything that is not plain tensors (``weights_only``)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise DataError(f"{path}: not a plain tensor file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
    return data


def list_samples(directory: Path) -> list[str]:
    """Relative paths of the ``.pt`` files under ``directory``, sorted."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.pt"))


def check_sources(root: Path, sources: Mapping[str, str], strategy: str) -> list[str]:
    """Check that every source directory exists and holds the same samples; return the sample names.

    Raises ``DataError`` naming the directory and the strategy that needs it, or the samples that
    are missing from one directory (a count and a few names).
    """
    if not root.is_dir():
        raise DataError(f"data.root={str(root)!r} does not exist (strategy {strategy} reads it)")
    missing = [d for d in sources if not (root / d).is_dir()]
    if missing:
        raise DataError(
            f"data.root={str(root)!r} lacks {', '.join(m + '/' for m in missing)}, "
            f"which strategy {strategy} needs (it reads {', '.join(d + '/' for d in sources)})"
        )
    directories = list(sources)
    names = list_samples(root / directories[0])
    if not names:
        raise DataError(f"{root / directories[0]} holds no .pt sample files")
    for other in directories[1:]:
        absent = sorted(set(names) - set(list_samples(root / other)))
        if absent:
            shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
            raise DataError(
                f"{len(absent)} of {len(names)} samples in {directories[0]}/ have no file in {other}/: {shown}"
            )
    return names


@dataclass(frozen=True)
class PrecomputedDataset:
    """Samples ``names`` under ``root``; item i is ``(name, {batch_key: file contents})``."""

    root: Path
    sources: Mapping[str, str]  # directory under root -> batch key
    names: tuple[str, ...]
    cache: bool = False  # keep loaded samples in memory (small datasets: the synthetic one, a few clips)
    _cached: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[str, dict[str, dict[str, Any]]]:
        name = self.names[index]
        if index in self._cached:
            return name, self._cached[index]
        sample = {key: load_sample_file(self.root / directory / name) for directory, key in self.sources.items()}
        if self.cache:
            self._cached[index] = sample
        return name, sample

    def shape_key(self, index: int) -> tuple:
        """What must match for two samples to share a batch: the shape of every tensor they hold."""
        _, sample = self[index]
        return tuple(
            (key, field, tuple(value.shape))
            for key, fields in sorted(sample.items())
            for field, value in sorted(fields.items())
            if isinstance(value, torch.Tensor)
        )
