"""Write a source video's segments as H.264 ``.mp4`` files with their stretch of its sound (AAC), in one pass.

Frames are re-encoded rather than copied: a stream copy can only start at a keyframe, so its first frames would
belong to the previous shot. Each frame is given to the segment whose frame range holds its index, counted from
its timestamp the way PySceneDetect counts it, so a segment starts exactly at the detected cut.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from ltxtune.data.scenes.plan import Segment

CRF = "17"  # visually lossless for training data; the source was lossy already


class AudioCursor:
    """The source's sound decoded front to back alongside the video: ``take(t0, t1)`` gives ``[C, S]`` float
    samples of seconds ``[t0, t1)`` (silence where the track has none), at the track's own rate, in stereo
    (mono kept mono)."""

    def __init__(self, path: Path, offset: float) -> None:
        self.container = av.open(str(path))
        stream = self.container.streams.audio[0]
        self.rate = stream.codec_context.sample_rate
        self.layout = "mono" if stream.codec_context.channels == 1 else "stereo"
        self.channels = 1 if self.layout == "mono" else 2
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.frames: Iterator[av.AudioFrame] = self.container.decode(stream)
        self.offset = offset  # the video's start time: the segments' second 0
        self.buffer = np.zeros((self.channels, 0), np.float32)
        self.start: int | None = None  # the buffer's first sample, in samples from second 0

    def take(self, t0: float, t1: float) -> np.ndarray:
        first, last = round(t0 * self.rate), round(t1 * self.rate)
        while self.start is None or self.start + self.buffer.shape[1] < last:
            if not self._decode_more():
                break
        start = self.start if self.start is not None else first
        if start > first:  # the track starts late: silence before it
            self.buffer = np.pad(self.buffer, ((0, 0), (start - first, 0)))
            start = first
        self.buffer, self.start = self.buffer[:, first - start :], first
        out = self.buffer[:, : last - first]
        return np.pad(out, ((0, 0), (0, last - first - out.shape[1])))

    def _decode_more(self) -> bool:
        frame = next(self.frames, None)
        chunks = [out.to_ndarray() for out in self.resampler.resample(frame)]
        if frame is not None and self.start is None:
            self.start = round(((frame.time or 0.0) - self.offset) * self.rate)
        if chunks:
            self.buffer = np.concatenate([self.buffer, *chunks], axis=1)
        return frame is not None

    def close(self) -> None:
        self.container.close()


class SegmentWriter:
    """One segment's ``.mp4``, written under a temporary name and renamed when complete."""

    def __init__(self, path: Path, fps: Fraction, width: int, height: int, audio: AudioCursor | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.tmp = path, path.with_name(f".{path.stem}.part{path.suffix}")
        self.container = av.open(str(self.tmp), mode="w")
        self.video = self.container.add_stream("libx264", rate=fps)
        # 4:2:0 needs even sides: an odd row or column is dropped by the scaler
        self.width, self.height = width - width % 2, height - height % 2
        self.video.width, self.video.height, self.video.pix_fmt = self.width, self.height, "yuv420p"
        self.video.options = {"crf": CRF, "preset": "fast"}
        self.time_base = Fraction(1) / fps
        self.audio = audio
        self.sound = None
        if audio is not None:
            self.sound = self.container.add_stream("aac", rate=audio.rate, layout=audio.layout)
        self.frames = 0

    def add(self, frame: av.VideoFrame) -> None:
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        out.pts, out.time_base = self.frames, self.time_base
        out.pict_type = PictureType.NONE  # the source's frame type; x264 chooses its own (an I frame first)
        self.container.mux(self.video.encode(out))
        self.frames += 1

    def close(self, t0: float, t1: float) -> None:
        self.container.mux(self.video.encode(None))
        if self.audio is not None and self.sound is not None:
            samples = self.audio.take(t0, t1)
            step = self.sound.codec_context.frame_size or 1024
            for start in range(0, samples.shape[1], step):
                chunk = np.ascontiguousarray(samples[:, start : start + step])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.audio.layout)
                frame.sample_rate, frame.pts = self.audio.rate, start
                self.container.mux(self.sound.encode(frame))
            self.container.mux(self.sound.encode(None))
        self.container.close()
        os.replace(self.tmp, self.path)


def write_segments(
    source: Path, segments: list[Segment], fps: Fraction, paths: list[Path], done: Callable[[int, int], None]
) -> None:
    """Write ``segments`` (in order, not overlapping) of ``source`` to ``paths``; ``done(i, frames)`` is called
    as segment ``i`` is finished."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        offset = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        audio = AudioCursor(source, offset) if container.streams.audio else None
        width, height = stream.codec_context.width, stream.codec_context.height
        k, writer = 0, None
        try:
            for count, frame in enumerate(container.decode(stream)):
                index = round((frame.time - offset) * fps) if frame.time is not None else count
                while k < len(segments) and index >= segments[k].end:
                    if writer is not None:
                        writer.close(float(segments[k].start / fps), float(segments[k].end / fps))
                        done(k, writer.frames)
                        writer = None
                    k += 1
                if k == len(segments):
                    break
                if index < segments[k].start:
                    continue
                if writer is None:
                    writer = SegmentWriter(paths[k], fps, width, height, audio)
                writer.add(frame)
            if writer is not None:  # the video ended inside the last segment
                start = segments[k].start
                writer.close(float(start / fps), float((start + writer.frames) / fps))
                done(k, writer.frames)
                writer = None
        finally:
            if writer is not None:  # a decoding error: leave no partial file behind
                writer.container.close()
                writer.tmp.unlink(missing_ok=True)
            if audio is not None:
                audio.close()
