"""Which frames of a clip become samples (the ``frames=`` option of ``preprocess.py``).

A clip longer than its bucket holds several bucket-long spans. One class per way of choosing them: the first
span only (``First``, the default), consecutive chunks (``Chunks``), overlapping windows (``Sliding``), or a
few spans spread over the clip (``Uniform``). Each span is a sample of its own, named after its source and its
frames (``clips/a_f0000-0024.pt``: frames 0 to 24), so the names are the same on every run and a re-run
resumes. Pure Python: nothing here decodes a file.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ltxtune.errors import ConfigError


@dataclass(frozen=True)
class Span:
    """Frames ``start`` to ``start + frames - 1`` of a clip."""

    start: int
    frames: int

    @property
    def last(self) -> int:
        return self.start + self.frames - 1

    def seconds(self, fps: float) -> float:
        """When the span starts in the clip, in seconds."""
        return self.start / fps

    def name(self, base: str) -> str:
        """``clips/a.pt`` -> ``clips/a_f0000-0024.pt`` (first and last frame, both included)."""
        return f"{base[:-3]}_f{self.start:04d}-{self.last:04d}.pt"


def _whole(key: str, value: Any, allowed: str, none: bool = False) -> None:
    """Refuse ``value`` unless it is a whole number >= 1 (or None when ``none``)."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(key, value, allowed)


def covered(spans: list[Span]) -> int:
    """How many frames at least one of ``spans`` holds."""
    return len({i for s in spans for i in range(s.start, s.start + s.frames)})


class Spans(ABC):
    """A way of cutting a clip of ``total`` frames into spans of ``length`` (its bucket's frames)."""

    mode: str
    named: bool = True  # sample names carry the span (``a_f0000-0024.pt``); ``First`` keeps ``a.pt``

    @abstractmethod
    def starts(self, total: int, length: int) -> list[int]:
        """The first frame of each span, ascending; ``total >= length``."""

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, **{k: v for k, v in vars(self).items() if k != "named"}}

    def take(self, total: int, length: int) -> list[Span]:
        return [Span(start, length) for start in self.starts(max(total, length), length)]

    def samples(self, base: str, total: int, length: int, is_image: bool) -> list[tuple[str, Span]]:
        """``(sample name, span)`` for each span of a clip named ``base``; an image is one sample, ``base``."""
        if is_image:
            return [(base, Span(0, 1))]
        return [(span.name(base) if self.named else base, span) for span in self.take(total, length)]


def _spread(items: list[int], most: int | None) -> list[int]:
    """At most ``most`` of ``items``, spread evenly from the first to the last."""
    if most is None or len(items) <= most:
        return items
    if most == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (most - 1))] for i in range(most)]


@dataclass(frozen=True)
class First(Spans):
    """The first ``length`` frames only; the rest of the clip is dropped (and counted as dropped)."""

    mode = "first"
    named = False

    def starts(self, total: int, length: int) -> list[int]:
        return [0]


MAX_SAMPLES = "null (every span) or a whole number of samples per clip >= 1"


@dataclass(frozen=True)
class Chunks(Spans):
    """Consecutive spans that do not overlap, from frame 0; the frames after the last whole one are dropped.
    ``max_samples``: at most this many per clip, spread evenly over the chunks (first and last included)."""

    max_samples: int | None = None
    mode = "chunks"

    def __post_init__(self) -> None:
        _whole("frames.max_samples", self.max_samples, MAX_SAMPLES, none=True)

    def starts(self, total: int, length: int) -> list[int]:
        return _spread(list(range(0, total - length + 1, length)), self.max_samples)


@dataclass(frozen=True)
class Sliding(Spans):
    """Windows starting every ``stride`` frames (they overlap when ``stride`` is below the bucket's frames).
    ``max_samples`` as for ``Chunks``."""

    stride: int | None = None
    max_samples: int | None = None
    mode = "sliding"

    def __post_init__(self) -> None:
        _whole(
            "frames.stride",
            self.stride,
            "a whole number of frames >= 1 from one window's start to the next (frames.stride=12)",
        )
        _whole("frames.max_samples", self.max_samples, MAX_SAMPLES, none=True)

    def starts(self, total: int, length: int) -> list[int]:
        assert self.stride is not None
        return _spread(list(range(0, total - length + 1, self.stride)), self.max_samples)


@dataclass(frozen=True)
class Uniform(Spans):
    """``count`` spans spread evenly: the first starts at frame 0, the last ends at the clip's end (one span:
    the middle). A clip too short for ``count`` different spans gives fewer; spans overlap when
    ``count * length`` exceeds the clip."""

    count: int | None = None
    mode = "uniform"

    def __post_init__(self) -> None:
        _whole("frames.count", self.count, "a whole number of spans per clip >= 1 (frames.count=4)")

    def starts(self, total: int, length: int) -> list[int]:
        assert self.count is not None
        room = total - length
        if self.count == 1:
            return [room // 2]
        return sorted({round(i * room / (self.count - 1)) for i in range(self.count)})
