"""The precomputed dataset: one ``.pt`` file per sample, the same relative path in every source directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ltxtune.data import legacy
from ltxtune.data.batch import CLIP_ROLES, Batch, Clip, TextFeatures
from ltxtune.data.checks import SampleExpectations
from ltxtune.data.needs import DataNeeds
from ltxtune.errors import DataError
from ltxtune.files import load_failure


def load_sample_file(path: Path) -> dict[str, Any]:
    """Load one sample file, refusing anything that is not plain tensors (``weights_only``)."""
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes): a write was cut short; preprocess this sample again")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise DataError(f"{path}: not a plain tensor file: {load_failure(exc)}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of tensors, found {type(data).__name__}")
    return data


def list_samples(directory: Path) -> list[str]:
    """Relative paths of the ``.pt`` files under ``directory``, sorted."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.pt"))


@dataclass(frozen=True)
class Listing:
    """The samples a strategy can train on, and those it cannot for want of a file (sample -> why).

    ``without_audio``: samples with no file in one of ``needs.audio_dirs`` (clips without sound), always left
    out. ``incomplete``: samples with no file in another directory the strategy reads (a row preprocessed
    without a reference or a mask), left out with ``data.strict=false`` (``strict=true`` refuses them).
    """

    names: list[str]
    without_audio: dict[str, str]
    incomplete: dict[str, str]


def check_sources(root: Path, needs: DataNeeds, strategy: str, strict: bool = True) -> Listing:
    """Check that every directory ``needs`` names exists and holds the same samples, and list them.

    A sample missing from one of ``needs.audio_dirs`` is a clip without sound (preprocessing writes no audio
    latents for it): left out, not an error, unless no sample has sound. A sample missing from another
    directory is refused, naming the first missing file and ``data.strict``, or with ``strict=false`` left out
    like a clip without sound. Raises ``DataError`` naming the directory and the strategy that needs it.
    """
    sources, audio_dirs = needs.directories(), needs.audio_dirs
    if not root.is_dir():
        raise DataError(f"data.root={str(root)!r} does not exist (strategy {strategy} reads it)")
    missing = [d for d in sources if not (root / d).is_dir()]
    if missing:
        raise DataError(
            f"data.root={str(root)!r} lacks {', '.join(m + '/' for m in missing)}, "
            f"which strategy {strategy} needs (it reads {', '.join(d + '/' for d in sources)})"
        )
    listed = legacy.pair_legacy_conditions({d: set(list_samples(root / d)) for d in sources})
    every = set().union(*listed.values())
    if not every:
        raise DataError(f"{root} holds no .pt sample files in {', '.join(d + '/' for d in sources)}")
    gaps, silent, incomplete = [], {}, {}
    for directory, present in listed.items():
        absent = sorted(every - present)
        if absent and directory in audio_dirs:
            reason = f"no file in {directory}/ (a clip without an audio track), which strategy {strategy} reads"
            silent.update((name, reason) for name in absent if name not in silent)
        elif absent:
            shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
            gaps.append((f"{len(absent)} of {len(every)} samples have no file in {directory}/: {shown}", directory))
            for name in absent:
                path = legacy.sample_path(root, directory, name)
                incomplete.setdefault(name, f"no file {path}, which strategy {strategy} reads")
    if gaps and strict:
        first = legacy.sample_path(root, gaps[0][1], min(every - listed[gaps[0][1]]))
        raise DataError(
            f"under {root}, {'; '.join(text for text, _ in gaps)} (strategy {strategy} needs each sample in every "
            f"directory; the first missing file: {first}); data.strict=false leaves such samples out"
        )
    silent = {name: why for name, why in silent.items() if name not in incomplete}
    if len(silent) == len(every):
        raise DataError(
            f"no sample under {root} has a file in every one of {', '.join(d + '/' for d in sorted(audio_dirs))} "
            f"(clips without sound), which strategy {strategy} needs: preprocess clips with audio, or train a "
            "strategy without audio"
        )
    names = sorted(every - set(silent) - set(incomplete))
    if not names:
        raise DataError(
            f"no sample under {root} has a file in every directory strategy {strategy} reads "
            f"({', '.join(d + '/' for d in sources)}; data.strict=false left out each one), e.g. "
            + next(iter(sorted(incomplete.values())))
        )
    return Listing(names, dict(sorted(silent.items())), dict(sorted(incomplete.items())))


@dataclass(frozen=True)
class PrecomputedDataset:
    """Samples ``names`` under ``root``; item i is sample i as a ``Batch`` of one, each role read from its
    directory (``expect.needs``) and checked against ``expect`` as it is read.

    ``audio_text``: keep the text's audio features when the file has them, even for a strategy without audio
    (the validation clips denoise an audio track beside the video, as inference does).
    """

    root: Path
    expect: SampleExpectations
    names: tuple[str, ...]
    cache: bool = False  # keep loaded samples in memory (small datasets: the synthetic one, a few clips)
    audio_text: bool = False
    _cached: dict[int, Batch] = field(default_factory=dict, repr=False, compare=False)

    @property
    def needs(self) -> DataNeeds:
        return self.expect.needs

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Batch:
        if index in self._cached:
            return self._cached[index]
        name, files = self.names[index], {}
        for directory in self.needs.directories():
            path = legacy.sample_path(self.root, directory, name)
            files[directory] = legacy.normalise(path, load_sample_file(path))
            for role in (r for r, d in self.needs.roles().items() if d == directory):
                self.expect.check(path, role, files[directory])
        sample = as_sample(name, self.needs, files, self.audio_text)
        if self.cache:
            self._cached[index] = sample
        return sample

    def shape_key(self, index: int) -> tuple:
        """What must match for two samples to share a batch: the shape of every tensor they hold."""
        return tuple((path, tuple(t.shape)) for path, t in self[index].tensors())


def as_sample(name: str, needs: DataNeeds, files: dict[str, dict[str, Any]], audio_text: bool = False) -> Batch:
    """One sample's checked files (directory -> contents) as a ``Batch`` of one, each role in its field
    (``audio_text``: the text's audio features whenever the file has them)."""
    values: dict[str, Any] = {}
    for role, directory in needs.roles().items():
        data = files[directory]
        if role == "text":
            batched = {k: v.unsqueeze(0) for k, v in data.items() if isinstance(v, torch.Tensor)}
            values[role] = TextFeatures.from_file(batched, with_audio=needs.has_audio or audio_text)
        elif role in CLIP_ROLES:
            fps = torch.tensor([float(data["fps"])]) if "fps" in data else None
            values[role] = Clip(data["latents"].unsqueeze(0), fps)
        else:  # a per-cell mask
            values[role] = data["mask"].unsqueeze(0)
    extra = {d: {k: _one(v) for k, v in files[d].items()} for d in needs.extra}
    return Batch((name,), **values, extra=extra)


def _one(value: Any) -> Any:
    """A file's value as one sample of a batch: tensors ``[1, ...]``, numbers ``[1]``, anything else listed."""
    if isinstance(value, torch.Tensor):
        return value.unsqueeze(0)
    if isinstance(value, bool | int | float):
        return torch.tensor([value])
    return [value]
