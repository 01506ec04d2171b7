"""Media files in a folder and the caption beside each: ``clip.mp4`` is captioned by ``clip.txt`` (same stem).

Shared by preprocessing (a folder as a dataset), scene splitting and captioning."""

from __future__ import annotations

import os
from pathlib import Path

from ltxtune.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
CAPTION_SUFFIX = ".txt"


def caption_path(media: Path) -> Path:
    """Where ``media``'s caption lives: the ``.txt`` of the same stem beside it."""
    return media.with_suffix(CAPTION_SUFFIX)


def read_caption(media: Path) -> str:
    """The caption beside ``media``, stripped; ``""`` when it has none (no file, or only blanks)."""
    path = caption_path(media)
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def write_caption(video: Path, caption: str) -> None:
    """Write ``video``'s caption under a temporary name, then rename it: a caption file is whole or absent."""
    path = caption_path(video)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(caption + "\n", encoding="utf-8")
    os.replace(tmp, path)


def find_videos(root: Path, exclude: Path | None = None) -> list[Path]:
    """``root`` itself when it is a video, else every video under it (recursively, sorted), leaving out
    hidden files (a partly written ``.name.part.mp4``) and anything under ``exclude``."""
    if root.is_file():
        if root.suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(f"{root}: not a video (expected one of {', '.join(VIDEO_SUFFIXES)}, or a folder)")
        return [root]
    if not root.is_dir():
        raise DataError(f"{root}: no such file or folder")
    skip = exclude.resolve() if exclude is not None else None
    videos = [
        path
        for path in sorted(root.rglob("*"))
        if path.suffix.lower() in VIDEO_SUFFIXES
        and path.is_file()
        and not path.name.startswith(".")
        and (skip is None or not path.resolve().is_relative_to(skip))
    ]
    if not videos:
        raise DataError(f"{root}: no videos in this folder or below ({', '.join(VIDEO_SUFFIXES)})")
    return videos
