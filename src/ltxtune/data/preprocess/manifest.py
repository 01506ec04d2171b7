"""The dataset file: one row per clip (CSV, JSON list or JSONL), paths relative to the file."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Columns:
    """Column names in the dataset file; ``media`` and ``caption`` are required, the others optional."""

    media: str = "media_path"
    caption: str = "caption"
    reference: str = "reference_path"
    mask: str = "mask_path"
    audio: str = "audio_path"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The raw rows of a CSV (header line), JSON (a list of objects) or JSONL (one object a line) file."""
    if not path.is_file():
        raise ConfigError("input", str(path), "an existing dataset file (" + ", ".join(FORMATS) + ")")
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


def read_rows(path: Path, columns: Columns) -> list[Row]:
    """Every row of the dataset file, with paths resolved against the file's folder.

    Rows are kept even when their files are missing or their caption is empty: those are reported (skipped)
    per sample, not refused here. A missing *column* is an error, since no row could be read.
    """
    records = read_records(path)
    if not records:
        raise DataError(f"{path} holds no rows")
    for key in (columns.media, columns.caption):
        if key not in records[0]:
            found = ", ".join(map(str, records[0])) or "none"
            raise DataError(f"{path}: no column {key!r} (columns found: {found}); set columns.media / columns.caption")
    base, seen, rows = path.parent, set(), []

    def optional(record: Mapping[str, Any], key: str) -> Path | None:
        value = str(record.get(key) or "").strip()
        return base / value if value else None

    for index, record in enumerate(records):
        media = str(record.get(columns.media) or "").strip()
        name = sample_name(media, index)
        if name in seen:  # the same clip twice (two captions, say): keep both samples
            name = f"{name[:-3]}-{index}.pt"
        seen.add(name)
        rows.append(
            Row(
                index=index,
                name=name,
                media=base / media,
                caption=str(record.get(columns.caption) or "").strip(),
                reference=optional(record, columns.reference),
                mask=optional(record, columns.mask),
                audio=optional(record, columns.audio),
            )
        )
    return rows
