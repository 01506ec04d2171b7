"""Which frames become segments: scenes as detected, filtered by length and split when too long.

Pure frame arithmetic, apart from detection and encoding, so the rules can be read (and tested) on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True)
class Segment:
    """Frames ``start`` (inclusive) to ``end`` (exclusive) of a source video."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Plan:
    """The segments to write, and what was left out: whole scenes shorter than the minimum (``dropped``) and
    the frames cut off a long scene whose equal pieces would each be too short (``trimmed_frames``)."""

    segments: list[Segment]
    dropped: int = 0
    trimmed_frames: int = 0


def plan_segments(scenes: list[Segment], fps: float, min_seconds: float, max_seconds: float | None) -> Plan:
    """Keep scenes of at least ``min_seconds``; cut a scene longer than ``max_seconds`` into pieces.

    A long scene becomes the fewest pieces of equal length (to a frame) that are each at most ``max_seconds``,
    so no short leftover piece is made. Only when those pieces would be shorter than ``min_seconds`` (a
    minimum above half the maximum) is it cut into pieces of exactly ``max_seconds`` and the rest dropped.
    """
    shortest = math.ceil(min_seconds * fps - 1e-6)
    longest = math.floor(max_seconds * fps + 1e-6) if max_seconds is not None else None
    segments: list[Segment] = []
    dropped = trimmed = 0
    for scene in scenes:
        if scene.frames < max(shortest, 1):
            dropped += 1
            continue
        if longest is None or scene.frames <= longest:
            segments.append(scene)
            continue
        pieces = math.ceil(scene.frames / longest)
        if scene.frames // pieces >= shortest:
            bounds = [scene.start + (scene.frames * i) // pieces for i in range(pieces + 1)]
        else:
            whole = scene.frames // longest
            bounds = [scene.start + longest * i for i in range(whole + 1)]
            trimmed += scene.end - bounds[-1]
        segments += [Segment(a, b) for a, b in pairwise(bounds)]
    return Plan(segments, dropped, trimmed)
