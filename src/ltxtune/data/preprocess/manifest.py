"""The dataset file: one row per clip (CSV, JSON list or JSONL), paths relative to the file."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from ltxtune.errors import ConfigError, DataError

FORMATS = (".csv", ".json", ".jsonl")


@dataclass(frozen=True)
class Row:
    """One clip to preprocess. ``name`` is its sample path under every data directory (``clips/a.pt``)."""

    index: int
    name: str
    media: Path
    caption: str
    reference: Path | None = None
    mask: Path | None = None
    audio: Path | None = None
    reference_audio: Path | None = None


Names = str | Sequence[str]


@dataclass(frozen=True)
class Columns:
    """Column names in the dataset file; ``media`` and ``caption`` are required, the others optional.

    Each field is a name or a list of names a file may use; the defaults take ours and ltx-trainer's
    (``video``, ``reference_video``, ``video_mask``), so either kind of file reads without renaming.
    """

    media: Names = ("media_path", "video")
    caption: Names = ("caption",)
    reference: Names = ("reference_path", "reference_video")
    mask: Names = ("mask_path", "video_mask")
    audio: Names = ("audio_path",)
    reference_audio: Names = ("reference_audio_path",)

    def resolve(self, path: Path, found: Sequence[str]) -> dict[str, str | None]:
        """Field -> the one column of ``found`` it reads (None: an optional column the file lacks)."""
        resolved: dict[str, str | None] = {}
        for f in fields(self):
            names = [value] if isinstance(value := getattr(self, f.name), str) else list(value)
            present = [name for name in names if name in found]
            if len(present) > 1:
                raise DataError(
                    f"{path}: columns {' and '.join(map(repr, present))} both name the {f.name}; "
                    f"keep one, or choose with columns.{f.name}=<column>"
                )
            if not present and f.name in ("media", "caption"):
                shown = ", ".join(map(str, found)) or "none"
                raise DataError(
                    f"{path}: no column {' or '.join(map(repr, names))} (columns found: {shown}); "
                    f"set columns.{f.name}=<column>"
                )
            resolved[f.name] = present[0] if present else None
        return resolved


def read_records(path: Path) -> list[dict[str, Any]]:
    """The raw rows of a CSV (header line), JSON (a list of objects) or JSONL (one object a line) file."""
    if not path.is_file():
        raise ConfigError(
            "input", str(path), "an existing dataset file (" + ", ".join(FORMATS) + "), or a folder of clips"
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        if suffix == ".json":
            records = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(records, list):
                raise DataError(f"{path}: expected a JSON list of objects, found {type(records).__name__}")
            return records
        if suffix == ".jsonl":
            lines = path.read_text(encoding="utf-8").splitlines()
            return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    raise ConfigError("input", str(path), "a file ending in " + ", ".join(FORMATS))


def sample_name(media: str, index: int) -> str:
    """``clips/a.mp4`` -> ``clips/a.pt``; a path that leaves the dataset's folder gets a flat, indexed name."""
    rel = PurePosixPath(media.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.name:
        return f"{index:06d}_{rel.stem or 'sample'}.pt"
    return rel.with_suffix(".pt").as_posix()


def columns_of(path: Path, records: Sequence[Mapping[str, Any]], columns: Columns) -> dict[str, str | None]:
    """Field -> the column of ``records`` it reads (None: an optional column no row has)."""
    if not records:
        raise DataError(f"{path} holds no rows")
    found = list(dict.fromkeys(key for record in records for key in record))  # JSON rows may differ in keys
    return columns.resolve(path, found)


def read_manifest(path: Path, columns: Columns) -> tuple[list[Row], dict[str, str | None]]:
    """Every row of the dataset file, with paths resolved against the file's folder, and the column each
    field was read from (``columns_of``), from one read of the file.

    Rows are kept even when their files are missing or their caption is empty: those are reported (skipped)
    per sample, not refused here. A missing *column* is an error, since no row could be read.
    """
    records = read_records(path)
    column = columns_of(path, records, columns)
    base, seen, rows = path.parent, set(), []

    def value(record: Mapping[str, Any], field: str) -> str:
        key = column[field]
        return str(record.get(key) or "").strip() if key is not None else ""

    def optional(record: Mapping[str, Any], field: str) -> Path | None:
        text = value(record, field)
        return base / text if text else None

    for index, record in enumerate(records):
        media = value(record, "media")
        name = sample_name(media, index)
        if name in seen:  # the same clip twice (two captions, say): keep both samples
            name = f"{name[:-3]}-{index}.pt"
        seen.add(name)
        rows.append(
            Row(
                index=index,
                name=name,
                media=base / media,
                caption=value(record, "caption"),
                reference=optional(record, "reference"),
                mask=optional(record, "mask"),
                audio=optional(record, "audio"),
                reference_audio=optional(record, "reference_audio"),
            )
        )
    return rows, column
