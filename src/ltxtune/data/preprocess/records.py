"""What preprocessing leaves beside the samples: ``preprocess.json`` (the settings, and what became of every
clip), ``captions.json`` (sample name -> caption) and the skip report.

A re-run and the other processes of a launch add to the same two files: each run merges its own rows into
them (under a lock when several processes write), and keeps the records of the rows it did not touch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ltxtune.data.preprocess.inputs import Clip, Skip
from ltxtune.data.preprocess.manifest import Row
from ltxtune.data.preprocess.spans import Span, covered
from ltxtune.files import exclusive_lock

PREPROCESS_FILE = "preprocess.json"
CAPTIONS_FILE = "captions.json"
LOCK_FILE = ".preprocess.lock"


def clip_record(row: Row, clip: Clip, samples: Sequence[tuple[str, Span]], audio: bool) -> dict[str, Any]:
    """What became of a clip: its bucket, the source's size, rate and length, the spans taken as samples (name ->
    first and last frame) and the frames no span holds, its sound (``audio``: whether audio is on)."""
    info, bucket = clip.info, clip.bucket
    used = covered([span for _, span in samples])
    sound = str(row.audio or row.media) if audio and (row.audio is not None or info.has_audio) else None
    record: dict[str, Any] = {
        "row": row.index,
        "media": str(row.media),
        "bucket": str(bucket),
        "source": {"width": info.width, "height": info.height, "fps": info.fps, "frames": info.frames},
        "spans": {name: [span.start, span.last] for name, span in samples},
        "frames_used": used,
        "frames_dropped": max(0, info.frames - used),
        "resized_to": list(clip.framing.resized),
        "crop_box": list(clip.framing.source_box()),
        "audio": sound is not None,
    }
    if sound is not None:
        record["audio_from"] = sound
    for role in ("reference", "mask", "reference_audio"):
        if (path := getattr(row, role)) is not None:
            record[role] = str(path)
    return record


def skip_record(row: Row, skip: Skip) -> dict[str, Any]:
    return {"row": row.index, "media": str(row.media), "skipped": {"reason": skip.kind, "detail": skip.detail}}


def write_skip_report(path: Path, skipped: list[tuple[Row, Skip]]) -> None:
    """One JSON line per skipped row, rewritten every run; none when nothing was skipped."""
    lines = [
        json.dumps({"row": row.index, "media": str(row.media), "name": row.name, "reason": s.kind, "detail": s.detail})
        for row, s in skipped
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    if lines:
        path.write_text("".join(line + "\n" for line in lines))
    else:  # a report left by an earlier run would describe inputs that are fine now
        path.unlink(missing_ok=True)


def merge_records(
    root: Path,
    settings: Mapping[str, Any],
    clips: Mapping[str, dict[str, Any]],
    captions: Mapping[str, str | None],
    earlier: Mapping[str, str] | None = None,
    shared: bool = False,
) -> None:
    """Write ``settings`` and merge ``clips`` (row name -> record) into ``preprocess.json``, and ``captions``
    into ``captions.json`` (a caption, or ``None`` to drop a sample that was not made). ``earlier``: captions of
    samples made by an earlier run, recorded only where ``captions.json`` has none (what it has is what they
    were encoded from). ``shared``: other processes write the same files, so the merge happens under a lock."""
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / LOCK_FILE) if shared else nullcontext():
        known = _read_json(root / PREPROCESS_FILE).get("clips")
        records = {**(known if isinstance(known, dict) else {}), **clips}
        _write_json(root / PREPROCESS_FILE, {**settings, "clips": dict(sorted(records.items()))})
        written = {**(earlier or {}), **_read_json(root / CAPTIONS_FILE)}
        for name, caption in captions.items():
            if caption is None:
                written.pop(name, None)
            else:
                written[name] = caption
        _write_json(root / CAPTIONS_FILE, dict(sorted(written.items())))


def read_settings(root: Path) -> dict[str, Any]:
    """What the last run recorded in ``preprocess.json`` under ``root`` (empty: none yet)."""
    return _read_json(root / PREPROCESS_FILE)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or a file cut short by a killed run: start it again
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
