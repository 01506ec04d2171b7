"""``python -m ltxtune.data.scenes <video or folder> --out <dir>``: one clip per scene, ready to caption and preprocess.

Finds the shot boundaries of each source video (PySceneDetect), drops scenes shorter than ``--min-seconds``,
cuts scenes longer than ``--max-seconds`` into equal pieces, and writes each piece as ``<stem>-sceneNNN.mp4``
(H.264, with its sound as AAC) under ``--out``, keeping a folder's layout. A source's caption (``<stem>.txt``
beside it) is copied beside each of its segments. ``<out>/dataset.csv`` lists every segment (``media_path``,
``caption``, its source and its span), the dataset file ``preprocess.py`` reads. Bad input ends in one
``error: ...`` line and exit code 2; a source that cannot be decoded is reported and skipped.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ltxtune.data.folders import find_videos, read_caption, write_caption
from ltxtune.data.scenes.detect import DETECTORS, Detection, MissingExtra, detect_scenes, require_scenedetect
from ltxtune.data.scenes.plan import Plan, Segment, plan_segments
from ltxtune.errors import ConfigError, DataError, check_range

COLUMNS = ("media_path", "caption", "source", "start_seconds", "end_seconds", "frames")


@dataclass(frozen=True)
class Options:
    out: Path
    min_seconds: float
    max_seconds: float | None
    detector: str
    threshold: float | None

    def __post_init__(self) -> None:
        check_range("--min-seconds", self.min_seconds, 0)
        if self.max_seconds is not None:
            check_range("--max-seconds", self.max_seconds, 0, lo_open=True)
            if self.max_seconds < self.min_seconds:
                raise ConfigError("--max-seconds", self.max_seconds, f"must be >= --min-seconds ({self.min_seconds:g})")
        if self.threshold is not None:
            check_range("--threshold", self.threshold, 0, lo_open=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.data.scenes", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="a video, or a folder of videos (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="the folder the segments and dataset.csv go to")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="drop scenes shorter (default 1.0)")
    parser.add_argument("--max-seconds", type=float, help="cut longer scenes into equal pieces (default: no limit)")
    parser.add_argument(
        "--threshold", type=float, help="cut sensitivity: lower finds more cuts (default 27 content, 3 adaptive)"
    )
    parser.add_argument("--detector", choices=DETECTORS, default="content", help="default content")
    args = parser.parse_args(argv)
    try:
        options = Options(args.out, args.min_seconds, args.max_seconds, args.detector, args.threshold)
        sources = find_videos(args.input, exclude=args.out)
        require_scenedetect()
    except (ConfigError, DataError, MissingExtra) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = args.input if args.input.is_dir() else args.input.parent
    began, rows, failed, dropped, trimmed = time.perf_counter(), [], [], 0, 0.0
    for number, source in enumerate(sources, 1):
        name = source.relative_to(root)
        try:
            detection = detect_scenes(source, options.detector, options.threshold, progress=True)
        except Exception as exc:  # PySceneDetect's and FFmpeg's errors for a file it cannot read
            print(f"[{number}/{len(sources)}] {name}: skipped, cannot be read ({exc})", file=sys.stderr)
            failed.append(source)
            continue
        plan = plan_segments(detection.scenes, float(detection.fps), options.min_seconds, options.max_seconds)
        dropped, trimmed = dropped + plan.dropped, trimmed + plan.trimmed_frames / float(detection.fps)
        try:
            rows += split(source, name, detection, plan, options.out)
        except Exception as exc:
            print(f"[{number}/{len(sources)}] {name}: skipped, decoding failed ({exc})", file=sys.stderr)
            failed.append(source)
            continue
        write_dataset(options.out / "dataset.csv", rows)
        print(f"[{number}/{len(sources)}] {name}: {describe(detection, plan, options.min_seconds)}")
    report(rows, failed, dropped, trimmed, options, time.perf_counter() - began)
    return 0 if rows or not failed else 1


def split(source: Path, name: Path, detection: Detection, plan: Plan, out: Path) -> list[dict[str, object]]:
    """Write ``plan``'s segments of ``source`` (with its caption beside each); their dataset rows."""
    from ltxtune.data.scenes.cut import write_segments  # PyAV: kept off the path of --help

    fps, caption = detection.fps, read_caption(source)
    paths = [out / name.parent / f"{name.stem}-scene{i:03d}.mp4" for i in range(1, len(plan.segments) + 1)]
    frames: dict[int, int] = {}
    with tqdm(total=len(paths), desc=f"cut {name}", unit="clip", leave=False) as bar:

        def done(index: int, count: int) -> None:
            frames[index] = count
            if caption:
                write_caption(paths[index], caption)
            bar.update()

        write_segments(source, plan.segments, fps, paths, done)
    return [row(paths[i], out, caption, source, plan.segments[i], float(fps), frames[i]) for i in sorted(frames)]


def row(path: Path, out: Path, caption: str, source: Path, segment: Segment, fps: float, frames: int) -> dict:
    start = segment.start / fps
    return {
        "media_path": path.relative_to(out).as_posix(),
        "caption": caption,
        "source": str(source.resolve()),
        "start_seconds": f"{start:.3f}",
        "end_seconds": f"{start + frames / fps:.3f}",
        "frames": frames,
    }


def describe(detection: Detection, plan: Plan, min_seconds: float) -> str:
    cuts = len(detection.scenes) - 1
    text = f"{cuts} cut{'s' * (cuts != 1)}, {len(plan.segments)} segment{'s' * (len(plan.segments) != 1)}"
    if plan.dropped:
        text += f" ({plan.dropped} scene{'s' * (plan.dropped != 1)} under {min_seconds:g} s dropped)"
    return text


def report(
    rows: list[dict], failed: list[Path], dropped: int, trimmed: float, options: Options, seconds: float
) -> None:
    footage = sum(float(r["end_seconds"]) - float(r["start_seconds"]) for r in rows)
    print(f"wrote {len(rows)} segments ({footage:.1f} s of video) into {options.out} in {seconds:.1f} s")
    if dropped:
        print(f"dropped {dropped} scene{'s' * (dropped != 1)} shorter than --min-seconds {options.min_seconds:g}")
    if trimmed:
        print(f"dropped {trimmed:.1f} s at the ends of long scenes (--min-seconds is above half of --max-seconds)")
    if failed:
        print(f"skipped {len(failed)} unreadable source{'s' * (len(failed) != 1)}: {', '.join(map(str, failed))}")
    if not rows:
        return
    uncaptioned = sum(not r["caption"] for r in rows)
    if uncaptioned:
        print(f"{uncaptioned} segments have no caption (their source had no .txt beside it): caption them with")
        print(f"  python -m ltxtune.data.captioning {options.out}")
        print(f"then: python preprocess.py input={options.out} output=<root>")
    else:
        print(f"preprocess: python preprocess.py input={options.out / 'dataset.csv'} output=<root>")


def write_dataset(path: Path, rows: list[dict]) -> None:
    """``rows`` as CSV, replaced atomically, so an interrupted run leaves the list of what it finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
