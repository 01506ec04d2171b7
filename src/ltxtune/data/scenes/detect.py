"""Shot boundaries with PySceneDetect (the optional ``scenes`` extra), decoding through PyAV.

PySceneDetect's detectors compare frames with OpenCV; ``scenedetect-headless`` brings the OpenCV build without
GUI libraries, which servers lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ltxtune.data.scenes.plan import Segment

INSTALL = "pip install 'ltxtune[scenes]'  (or: pip install scenedetect-headless)"
DETECTORS = ("content", "adaptive")


class MissingExtra(RuntimeError):
    """PySceneDetect is not installed."""


@dataclass(frozen=True)
class Detection:
    """A source video's scenes, in frames at ``fps``, covering all its ``frames``."""

    fps: Fraction
    frames: int
    scenes: list[Segment]


def require_scenedetect() -> Any:
    """The ``scenedetect`` module, or ``MissingExtra`` naming the command that installs it."""
    try:
        import scenedetect
    except ImportError as exc:  # scenedetect itself, or the OpenCV it imports
        raise MissingExtra(f"scene splitting needs PySceneDetect ({exc}): {INSTALL}") from None
    return scenedetect


def make_detector(kind: str, threshold: float | None) -> Any:
    """PySceneDetect's detector: ``content`` (HSV change between frames against ``threshold``, default 27) or
    ``adaptive`` (the change against its neighbours' average, ratio ``threshold``, default 3), which holds up
    better under fast camera motion."""
    scenedetect = require_scenedetect()
    if kind == "content":
        return scenedetect.ContentDetector(**({} if threshold is None else {"threshold": threshold}))
    return scenedetect.AdaptiveDetector(**({} if threshold is None else {"adaptive_threshold": threshold}))


def detect_scenes(path: Path, detector: str, threshold: float | None, progress: bool) -> Detection:
    """Every scene of ``path``: one scene over the whole video when no cut is found."""
    scenedetect = require_scenedetect()
    # suppress_output: otherwise PySceneDetect turns on FFmpeg's own logging for the whole process
    video = scenedetect.open_video(str(path), backend="pyav", suppress_output=True)
    manager = scenedetect.SceneManager()
    manager.add_detector(make_detector(detector, threshold))
    manager.detect_scenes(video, show_progress=progress)
    scenes = [Segment(start.frame_num, end.frame_num) for start, end in manager.get_scene_list(start_in_scene=True)]
    frames = scenes[-1].end if scenes else 0
    return Detection(Fraction(video.frame_rate), frames, scenes)
