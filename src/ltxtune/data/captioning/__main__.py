"""``python -m ltxtune.data.captioning <folder> [--model ...]``: write the missing ``.txt`` caption of every video.

Each video under the folder (recursively) without a caption beside it (``clip.mp4`` -> ``clip.txt``) is shown to a
vision-language model, a few at a time, and its caption written as soon as it is made (atomically: a run stopped
halfway loses nothing, and the next run goes on from there). By default the model is Qwen2.5-Omni, which also
hears each clip's sound; ``--video-only`` uses a model that only sees the frames (Qwen2.5-VL unless ``--model``
names another). Bad input ends in one ``error: ...`` line and exit code 2; a video that cannot be decoded is
reported and left without a caption (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ltxtune.data.folders import find_videos, read_caption, write_caption
from ltxtune.errors import ConfigError, DataError, check_range

OMNI_MODEL = "Qwen/Qwen2.5-Omni-7B"
VIDEO_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.data.captioning", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of videos (searched recursively), or one video")
    parser.add_argument(
        "--model", help=f"a Hugging Face id or a local folder (default {OMNI_MODEL}; {VIDEO_MODEL} with --video-only)"
    )
    parser.add_argument("--video-only", action="store_true", help="caption from the frames alone, not the sound")
    parser.add_argument("--batch-size", type=int, default=4, help="videos per forward pass (default 4)")
    parser.add_argument("--overwrite", action="store_true", help="caption every video, replacing existing captions")
    parser.add_argument("--prompt", help="the instruction given with each video (default: a detailed description)")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second shown to the model (default 2)")
    parser.add_argument("--max-frames", type=int, default=32, help="frames per video at most (default 32)")
    parser.add_argument("--max-side", type=int, default=640, help="frames scaled to this longer side (default 640)")
    parser.add_argument("--max-new-tokens", type=int, default=300, help="caption length limit (default 300)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:1, cpu, ... (default: cuda when present)")
    args = parser.parse_args(argv)
    check_range("--batch-size", args.batch_size, 1)
    check_range("--fps", args.fps, 0, lo_open=True)
    check_range("--max-frames", args.max_frames, 2)
    check_range("--max-side", args.max_side, 28)
    check_range("--max-new-tokens", args.max_new_tokens, 1)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse(argv)
        videos = find_videos(args.folder)
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    todo = videos if args.overwrite else [v for v in videos if not read_caption(v)]
    had = len(videos) - len(todo) if not args.overwrite else 0
    print(f"{len(videos)} videos: {had} have a caption, {len(todo)} to caption")
    if not todo:
        print("nothing to do (--overwrite captions them again)")
        return 0
    from ltxtune.data.captioning.clips import ClipError, load_clip  # PyAV, torch, transformers: off --help's path
    from ltxtune.data.captioning.models import Captioner, MissingExtra

    model = args.model or (VIDEO_MODEL if args.video_only else OMNI_MODEL)
    try:
        captioner = Captioner.load(model, args.video_only, args.prompt, device(args.device), args.max_new_tokens)
    except (MissingExtra, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.video_only and not captioner.hears:
        print(f"{model} does not take sound: captions describe the frames only")
    began, written, failed = time.perf_counter(), 0, []
    with tqdm(total=len(todo), desc="caption", unit="video") as bar:
        for start in range(0, len(todo), args.batch_size):
            clips = []
            for video in todo[start : start + args.batch_size]:
                try:
                    clips.append(load_clip(video, args.fps, args.max_frames, args.max_side, captioner.hears))
                except ClipError as exc:
                    failed.append(f"{video}: cannot be decoded ({exc})")
            for clip, caption in zip(clips, captioner.caption(clips) if clips else [], strict=True):
                if caption:
                    write_caption(clip.path, caption)
                    written += 1
                else:
                    failed.append(f"{clip.path}: the model wrote no caption")
            bar.update(len(todo[start : start + args.batch_size]))
    seconds = time.perf_counter() - began
    print(
        f"captioned {written} of {len(todo)} videos in {seconds:.1f} s ({written / seconds:.2f} videos/s) with {model}"
    )
    for line in failed:
        print(f"  no caption: {line}")
    print(f"preprocess: python preprocess.py input={args.folder} output=<root>")
    return 1 if failed else 0


def device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


if __name__ == "__main__":
    sys.exit(main())
