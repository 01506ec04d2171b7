"""Demo clips: short real ``.mp4`` files with sound and a caption each, so the whole path can be tried.

Each caption names a colour, a motion and a tone, and the clip shows and plays exactly that, so a model
that reads the caption has something to learn. Two frame sizes (landscape and square) exercise bucketing.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import torch
from torch import Tensor

from ltxtune.data.preprocess.media import write_clip

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 70), "blue": (50, 80, 230), "yellow": (235, 210, 40)}
MOTIONS = {"left to right": (1, 0), "top to bottom": (0, 1), "right to left": (-1, 0), "bottom to top": (0, -1)}
TONES = {"a low hum": 220.0, "a high whistle": 880.0, "a middle tone": 440.0, "a rising chirp": 330.0}
SIZES = ((256, 160), (160, 160))  # (width, height): one landscape and one square aspect ratio


def clip_pixels(
    width: int, height: int, frames: int, colour: tuple[int, int, int], motion: tuple[int, int], phase: float
) -> Tensor:
    """``[F, H, W, 3]`` uint8: a disc of ``colour`` crossing a soft grey gradient along ``motion``."""
    yy = torch.arange(height).view(-1, 1).float()
    xx = torch.arange(width).view(1, -1).float()
    background = (60 + 80 * (xx / width) + 40 * (yy / height)).expand(height, width)
    radius = min(width, height) / 6
    video = torch.empty(frames, height, width, 3)
    for i in range(frames):
        t = (i / max(frames - 1, 1) + phase) % 1.0
        cx = width / 2 + motion[0] * (t - 0.5) * (width - 2 * radius)
        cy = height / 2 + motion[1] * (t - 0.5) * (height - 2 * radius)
        disc = (((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2).float()
        for c in range(3):
            video[i, :, :, c] = background * (1 - disc) + colour[c] * disc
    return video.round().clamp(0, 255).to(torch.uint8)


def tone(freq: float, seconds: float, sample_rate: int, rising: bool) -> Tensor:
    """``[2, S]`` stereo sine at ``freq`` (a sweep up one octave when ``rising``), gently faded in and out."""
    t = torch.arange(round(seconds * sample_rate)) / sample_rate
    f = freq * (1 + t / seconds) if rising else torch.full_like(t, freq)
    phase = 2 * math.pi * torch.cumsum(f, 0) / sample_rate
    fade = torch.clamp(torch.minimum(t, seconds - t) / 0.05, 0, 1)
    wave = 0.3 * torch.sin(phase) * fade
    return torch.stack([wave, 0.8 * wave])


def make_demo(directory: Path, num_clips: int = 12, frames: int = 30, fps: int = 24, sample_rate: int = 44100) -> Path:
    """Write ``num_clips`` clips and ``dataset.csv`` (``media_path,caption``) under ``directory``; return the csv.

    Clips are reused when they already exist, so a second ``python preprocess.py`` costs no encoding.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(num_clips):
        colour, motion, sound = (list(d)[i % len(d)] for d in (COLOURS, MOTIONS, TONES))
        width, height = SIZES[(i // len(COLOURS)) % len(SIZES)]
        name = f"clips/clip_{i:03d}.mp4"
        caption = f"a {colour} disc moving {motion} over a grey gradient, with {sound}"
        path = directory / name
        if not path.is_file():
            pixels = clip_pixels(width, height, frames, COLOURS[colour], MOTIONS[motion], phase=0.05 * (i // 4))
            audio = tone(TONES[sound], frames / fps, sample_rate, rising=sound == "a rising chirp")
            tmp = path.with_name(f".{path.name}.{os.getpid()}.mp4")  # several processes may make the demo at once
            write_clip(tmp, pixels, fps, audio, sample_rate)
            tmp.replace(path)
        rows.append({"media_path": name, "caption": caption})
    dataset, tmp = directory / "dataset.csv", directory / f".dataset.{os.getpid()}.csv"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["media_path", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(dataset)
    return dataset
