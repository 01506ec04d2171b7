"""Reading and writing media files with PyAV: frames resized to a bucket, audio resampled, clips written.

PyAV bundles FFmpeg in its wheel, so nothing outside ``pip install`` is needed. Every reader raises
``MediaError`` (with FFmpeg's own message) for a file it cannot decode, so the caller can skip that sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch import Tensor

# Demuxers that hold one still image: such a source becomes a one-frame clip.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")
# What a damaged file raises inside PyAV: FFmpeg's own errors, and ValueError / IndexError where PyAV meets
# a stream it cannot convert or index (a missing stream, an unsupported pixel layout).
_DECODE_ERRORS = (av.FFmpegError, ValueError, IndexError)


class MediaError(Exception):
    """A file that exists but cannot be decoded (corrupt, truncated, or no video stream)."""


class TooShort(MediaError):
    """A file that decodes but holds fewer frames than asked for (its header promised more)."""


@dataclass(frozen=True)
class MediaInfo:
    """What the container says about a file, before any frame is decoded."""

    width: int
    height: int
    frames: int  # frames in the video stream (1 for an image); an estimate when the container does not store it
    fps: float
    is_image: bool
    has_audio: bool


def probe(path: Path, image_fps: float) -> MediaInfo:
    """Read the size, frame count and frame rate of ``path``'s first video stream."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            is_image = container.format.name in _IMAGE_FORMATS and (stream.frames or 1) <= 1
            rate = stream.average_rate or stream.guessed_rate
            fps = image_fps if is_image or not rate else float(rate)
            frames = stream.frames
            if is_image:
                frames = 1
            elif not frames and stream.duration and stream.time_base:
                frames = int(float(stream.duration * stream.time_base) * fps)
            elif not frames and container.duration:
                frames = int(container.duration / av.time_base * fps)
            width, height = stream.codec_context.width, stream.codec_context.height
            if width <= 0 or height <= 0:  # a damaged header: nothing to resize, and no aspect ratio to bucket by
                raise MediaError(f"the video stream has no picture ({width}x{height} pixels)")
            return MediaInfo(width, height, int(frames), fps, is_image, bool(container.streams.audio))
    except _DECODE_ERRORS as exc:
        raise MediaError(_message(exc)) from exc


def _message(exc: Exception) -> str:
    """FFmpeg's own words without the errno and the path the caller names anyway."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def cover_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    """The smallest size with ``width:height``'s aspect that covers ``target_w x target_h``."""
    if width <= 0 or height <= 0:
        raise MediaError(f"the video stream has no picture ({width}x{height} pixels)")
    scale = max(target_w / width, target_h / height)
    return max(target_w, round(width * scale)), max(target_h, round(height * scale))


@dataclass(frozen=True)
class Framing:
    """How a ``width x height`` source becomes a ``target_w x target_h`` clip: resized to ``resized`` (covering
    the target), then centre-cropped at ``left, top``."""

    width: int
    height: int
    resized: tuple[int, int]
    left: int
    top: int
    target: tuple[int, int]

    @classmethod
    def of(cls, width: int, height: int, target_w: int, target_h: int) -> Framing:
        sw, sh = cover_size(width, height, target_w, target_h)
        return cls(width, height, (sw, sh), (sw - target_w) // 2, (sh - target_h) // 2, (target_w, target_h))

    def source_box(self) -> tuple[int, int, int, int]:
        """The part of the source frame kept, ``(x0, y0, x1, y1)`` in source pixels."""
        sx, sy = self.width / self.resized[0], self.height / self.resized[1]
        right, bottom = self.left + self.target[0], self.top + self.target[1]
        return round(self.left * sx), round(self.top * sy), round(right * sx), round(bottom * sy)


def read_frames(
    path: Path, num_frames: int, width: int, height: int, stride: int = 1, gray: bool = False, start: int = 0
) -> Tensor:
    """Decode frames ``start, start + stride, ...`` (``num_frames`` of them), resized and centre-cropped.

    Returns ``[F, 3, height, width]`` uint8 RGB (``[F, 1, height, width]`` with ``gray``). Raises
    ``MediaError`` when the file cannot be decoded, ``TooShort`` when it holds fewer frames than asked for
    or decoding fails after the first ones.
    """
    fmt = "gray" if gray else "rgb24"
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            framing = Framing.of(stream.codec_context.width, stream.codec_context.height, width, height)
            (sw, sh), top, left = framing.resized, framing.top, framing.left
            for index, frame in numbered_frames(container, stream, start):
                if index < start or (index - start) % stride:
                    continue
                # swscale resizes in C on the decoder's own pixel format: far cheaper than resizing RGB tensors
                array = frame.to_ndarray(width=sw, height=sh, format=fmt, interpolation="AREA")
                frames.append(array[top : top + height, left : left + width])
                if len(frames) == num_frames:
                    break
    except IndexError as exc:
        raise MediaError("no video stream") from exc
    except _DECODE_ERRORS as exc:
        if frames:  # the first frames were fine: the file breaks off (cut short, or damaged from there on)
            raise TooShort(f"decoding stops after {len(frames)} frames ({_message(exc)}), {num_frames} needed") from exc
        raise MediaError(_message(exc)) from exc
    if len(frames) < num_frames:
        at = f" from frame {start}" if start else ""
        raise TooShort(f"decoded {len(frames)} frames{at}, {num_frames} needed")
    video = torch.from_numpy(np.stack(frames))
    return video.unsqueeze(1) if gray else video.permute(0, 3, 1, 2).contiguous()


def numbered_frames(
    container: av.container.InputContainer, stream: av.VideoStream, start: int = 0
) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` in display order from frame ``start`` on (from frame 0 where it counts).

    Index ``i`` is the ``i``-th frame decoded from the file's start. Far into a clip, the decoder starts at the
    key frame before ``start`` and numbers frames by their timestamps (constant frame rate: ``i = (pts - pts of
    frame 0) * fps``); where that cannot be trusted (no timestamps, a variable rate, a seek that lands after
    ``start``), it decodes from frame 0 and counts, as for ``start=0``.
    """
    rate = stream.average_rate or stream.guessed_rate
    if start > 0 and rate and stream.time_base:
        seeked = _seeked_frames(container, stream, start, Fraction(rate) * stream.time_base)
        if seeked is not None:
            yield from seeked
            return
        container.seek(0)
    yield from enumerate(container.decode(stream))


def _seeked_frames(
    container: av.container.InputContainer, stream: av.VideoStream, start: int, frames_per_tick: Fraction
) -> Iterator[tuple[int, av.VideoFrame]] | None:
    """Frames numbered by timestamp after a seek to the key frame before ``start``; ``None``: count instead."""
    first = next(container.decode(stream), None)  # frame 0's timestamp: numbering is relative to it
    if first is None or first.pts is None:
        return None
    zero = first.pts
    container.seek(zero + int((start - 1) / frames_per_tick), stream=stream, backward=True, any_frame=False)
    decoded = container.decode(stream)
    previous = None
    for frame in decoded:  # check the numbering on the frames up to start before trusting it
        if frame.pts is None:
            return None
        index = round((frame.pts - zero) * frames_per_tick)
        landed_after = previous is None and index > start
        if landed_after or (previous is not None and index != previous + 1):
            return None
        if index >= start:
            return _counting_on(index, frame, decoded)
        previous = index  # frames before start are dropped at once: a long key frame interval costs no memory
    return iter(())  # the file ends before start


def _counting_on(
    index: int, frame: av.VideoFrame, rest: Iterator[av.VideoFrame]
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Frame ``index``, then the ``rest`` numbered on from it (a later gap in the timestamps renumbers nothing)."""
    yield index, frame
    yield from enumerate(rest, start=index + 1)


def read_audio(
    path: Path, seconds: float, sample_rate: int, at_least: float = 0.0, start: float = 0.0
) -> Tensor | None:
    """``seconds`` of ``path``'s audio from ``start`` seconds on, as ``[2, seconds * sample_rate]`` float in [-1, 1].

    Mono is duplicated to stereo and other layouts are downmixed by FFmpeg. The sound is decoded from the file's
    start and the first ``round(start * sample_rate)`` samples dropped, so a span's audio is exactly the slice of
    the whole track at its time. Audio shorter than ``start + seconds`` is padded with silence, unless it is
    shorter than ``start + at_least`` seconds (``TooShort``). Returns ``None`` when the file has no audio stream.
    """
    skip, wanted = round(start * sample_rate), round(seconds * sample_rate)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=sample_rate)
            got = 0

            def keep(outs: list[av.AudioFrame]) -> None:
                nonlocal skip, got
                for out in outs:
                    array = out.to_ndarray()
                    if array.shape[1] <= skip:  # wholly before start: only memory, a long clip's late span
                        skip -= array.shape[1]
                        continue
                    chunks.append(array)
                    got += array.shape[1]

            for frame in container.decode(container.streams.audio[0]):
                keep(resampler.resample(frame))
                if got >= skip + wanted:
                    break
            else:
                keep(resampler.resample(None))
    except _DECODE_ERRORS as exc:
        raise MediaError(_message(exc)) from exc
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    if audio.shape[1] < skip + round(at_least * sample_rate):
        have = max(0.0, audio.shape[1] - skip) / sample_rate
        at = f" from {start:.2f} s" if start else ""
        raise TooShort(f"{have:.2f} s of sound{at}, {at_least:.2f} s needed")
    audio = audio[:, skip : skip + wanted]
    if audio.shape[1] < wanted:
        audio = np.pad(audio, ((0, 0), (0, wanted - audio.shape[1])))
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


def write_clip(path: Path, video: Tensor, fps: int, audio: Tensor | None = None, sample_rate: int = 44100) -> None:
    """Write ``video`` ``[F, H, W, 3]`` uint8 as H.264 (and ``audio`` ``[2, S]`` float as AAC) to an ``.mp4``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = video.shape[2], video.shape[1]
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"preset": "ultrafast", "crf": "18"}
        astream = container.add_stream("aac", rate=sample_rate, layout="stereo") if audio is not None else None
        for i, rgb in enumerate(video.numpy()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None:
            samples = audio.numpy().astype(np.float32)
            step = astream.codec_context.frame_size or 1024
            for start in range(0, samples.shape[1], step):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples[:, start : start + step]), format="fltp", layout="stereo"
                )
                frame.sample_rate, frame.pts = sample_rate, start
                container.mux(astream.encode(frame))
            container.mux(astream.encode(None))


def write_audio(path: Path, audio: Tensor, sample_rate: int) -> None:
    """Write ``audio`` ``[2, S]`` float in [-1, 1] as 16-bit stereo PCM: a ``.wav`` that holds exactly S samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (audio.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
    with av.open(str(path), mode="w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=sample_rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s16p", layout="stereo")
        frame.sample_rate, frame.pts = sample_rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
