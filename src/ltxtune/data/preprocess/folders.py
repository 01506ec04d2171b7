"""A folder as a dataset: every video and image under it, each captioned by the ``.txt`` file of its stem.

``clips/dog.mp4`` with ``clips/dog.txt`` is one row whose sample name is ``clips/dog.pt``, as a dataset file
naming ``clips/dog.mp4`` gives it. A media file without its ``.txt`` becomes a row with no caption, which
preprocessing reports as skipped (``no caption``) unless empty captions are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ltxtune.data.folders import CAPTION_SUFFIX, IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_caption
from ltxtune.data.preprocess.manifest import FORMATS, Row, sample_name
from ltxtune.errors import DataError


@dataclass(frozen=True)
class FolderListing:
    """The rows of a folder, and what it holds, for the line that says so (``dataset_files``: CSV, JSON or JSONL
    files at its top, which a folder input does not read)."""

    rows: list[Row]
    videos: int
    images: int
    uncaptioned: int
    dataset_files: tuple[Path, ...] = ()

    def line(self, folder: Path) -> str:
        missing = f", {self.uncaptioned} without a {CAPTION_SUFFIX} caption" if self.uncaptioned else ""
        if self.uncaptioned and self.dataset_files:  # the captions may be in the dataset file the folder holds
            missing += f" (to read the captions of {self.dataset_files[0].name}: input={self.dataset_files[0]})"
        videos, images = (f"{n} {kind}{'s' * (n != 1)}" for n, kind in ((self.videos, "video"), (self.images, "image")))
        return f"{folder}: {videos} and {images}{missing}"


def media_files(folder: Path) -> list[Path]:
    """Videos and images under ``folder`` (any depth), sorted by relative path; hidden files and folders are
    left out (``.ltxtune/``, editors' and the OS's own)."""
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES):
            found.append(rel)
    return [folder / rel for rel in sorted(found, key=lambda p: p.as_posix())]


def read_folder(folder: Path) -> FolderListing:
    """One row per video or image under ``folder``, named by its path relative to it; refuses a folder with none."""
    files = media_files(folder)
    if not files:
        kinds = ", ".join(s.lstrip(".") for s in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES))
        raise DataError(f"{folder} holds no video or image file (looked for {kinds}, in every subfolder)")
    rows, seen = [], set()
    for index, media in enumerate(files):
        name = sample_name(media.relative_to(folder).as_posix(), index)
        if name in seen:  # clips/a.mp4 and clips/a.png: both are kept, the second named apart
            name = f"{name[:-3]}-{index}.pt"
        seen.add(name)
        rows.append(Row(index=index, name=name, media=media, caption=read_caption(media)))
    images = sum(media.suffix.lower() in IMAGE_SUFFIXES for media in files)
    tables = tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FORMATS))
    return FolderListing(rows, len(files) - images, images, sum(not row.caption for row in rows), tables)
