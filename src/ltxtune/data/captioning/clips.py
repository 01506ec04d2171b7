"""What a captioning model is shown of a video: frames sampled at a low rate, and its sound, decoded with PyAV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

SAMPLE_RATE = 16000  # what Qwen2.5-Omni's audio encoder (Whisper's features) expects, mono
_DECODE_ERRORS = (av.FFmpegError, ValueError, IndexError, StopIteration)


class ClipError(Exception):
    """A video that cannot be decoded, or holds no frames."""


@dataclass(frozen=True)
class Clip:
    """A video as a model sees it: ``frames`` ``[F, H, W, 3]`` uint8 RGB at ``fps``, and ``audio`` ``[S]`` float32
    mono at 16 kHz over the same span (``None`` when the video has no sound or the model is not given it)."""

    path: Path
    frames: np.ndarray
    fps: float
    audio: np.ndarray | None


def load_clip(path: Path, fps: float, max_frames: int, max_side: int, with_audio: bool) -> Clip:
    """Frames at ``fps`` (fewer per second when the video is longer than ``max_frames / fps``, so the whole of
    it is seen), scaled so the longer side is at most ``max_side``; and its sound when ``with_audio``."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            seconds = duration(container, stream)
            rate = min(fps, max_frames / seconds) if seconds > 0 else fps
            scale = min(1.0, max_side / max(stream.codec_context.width, stream.codec_context.height))
            width = max(2, round(stream.codec_context.width * scale / 2) * 2)
            height = max(2, round(stream.codec_context.height * scale / 2) * 2)
            start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
            frames, due = [], 0.0
            for frame in container.decode(stream):
                if len(frames) == max_frames:
                    break
                if (frame.time or 0.0) - start + 1e-6 < due:
                    continue
                frames.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
                due = len(frames) / rate
            audio = read_sound(path, len(frames) / rate) if with_audio and container.streams.audio else None
    except _DECODE_ERRORS as exc:
        raise ClipError(str(exc) or type(exc).__name__) from exc
    if not frames:
        raise ClipError("no frames")
    return Clip(path, np.stack(frames), rate, audio)


def duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds of video, from the stream's header or else the container's (0 when neither says)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def read_sound(path: Path, seconds: float) -> np.ndarray | None:
    """The first ``seconds`` of ``path``'s sound as ``[S]`` float32 mono at 16 kHz (``None``: a silent track)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    wanted, chunks = round(seconds * SAMPLE_RATE), []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            if sum(len(c) for c in chunks) >= wanted:
                break
    sound = np.concatenate(chunks)[:wanted] if chunks else np.zeros(0, np.float32)
    return sound if sound.size else None
