"""Data options: where the precomputed samples are, and how they split into training and validation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ltxtune.data.checks import SampleExpectations
from ltxtune.data.dataset import PrecomputedDataset, check_sources
from ltxtune.errors import ConfigError, check_range


class PrecomputedData:
    """A dataset already on disk in the SPEC layout; the last ``val_samples`` (sorted) are held out."""

    def __init__(self, root: str, val_samples: int = 4, cache: bool = False) -> None:
        if not root:
            raise ConfigError("root", root, "the path of a precomputed dataset (data.root=/path/to/data)")
        check_range("val_samples", val_samples, 1)
        self.root, self.val_samples, self.cache = Path(root).expanduser(), val_samples, cache

    def prepare(self) -> None:
        """Make the data exist (a no-op here; the synthetic option generates it)."""

    def split(
        self, sources: Mapping[str, str], strategy: str, expect: SampleExpectations | None = None
    ) -> tuple[PrecomputedDataset, PrecomputedDataset]:
        """Training and validation datasets over the samples every source directory holds; each sample is
        checked against ``expect`` as it is read."""
        expect = expect or SampleExpectations()
        self.prepare()
        names = check_sources(self.root, sources, strategy)
        if len(names) <= self.val_samples:
            raise ConfigError(
                "data.val_samples", self.val_samples, f"fewer than the {len(names)} samples under {self.root}"
            )
        cut = len(names) - self.val_samples
        return (
            PrecomputedDataset(self.root, dict(sources), tuple(names[:cut]), self.cache, expect),
            PrecomputedDataset(self.root, dict(sources), tuple(names[cut:]), expect=expect),
        )
