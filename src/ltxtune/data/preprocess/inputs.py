"""One row's input files, checked and decoded before anything is encoded.

Every problem with an input is a ``Skip`` that names the file and its role in the row (the media itself, its
``reference``, ``mask``, ``audio`` or ``reference audio``), so a bad mask is never reported against the clip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from ltxtune.data.preprocess.buckets import Bucket, choose_bucket
from ltxtune.data.preprocess.manifest import Row
from ltxtune.data.preprocess.media import Framing, MediaError, MediaInfo, TooShort, probe, read_audio, read_frames
from ltxtune.data.preprocess.spans import Span


class Skip(Exception):
    """A sample that cannot be made; ``kind`` groups the summary, ``detail`` names the file and the cause."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind, self.detail = kind, detail
        super().__init__(f"{kind}: {detail}")


@contextmanager
def reading(path: Path, role: str = "") -> Iterator[None]:
    """Turn a media error of ``path`` into a ``Skip`` naming the file, after its ``role`` in the row."""
    label = f"{role} {path}" if role else str(path)
    try:
        yield
    except TooShort as exc:
        raise Skip("too short", f"{label}: {exc}") from exc
    except MediaError as exc:
        raise Skip("unreadable", f"{label}: {exc}") from exc


@dataclass(frozen=True)
class Clip:
    """A row's media as its header describes it, and the bucket it goes to; nothing is decoded yet."""

    info: MediaInfo
    bucket: Bucket
    framing: Framing

    @property
    def seconds(self) -> float:
        """The length of one span (the bucket's frames) in seconds."""
        return self.bucket.frames / self.info.fps


@dataclass(frozen=True)
class Track:
    """Sound read once for all of a row's spans: ``wave`` ``[2, S]`` is ``source`` from ``start`` seconds on."""

    wave: Tensor
    start: float
    rate: int
    source: str

    def cut(self, start: float, seconds: float) -> Tensor:
        """``[2, round(seconds * rate)]`` from ``start`` seconds: the samples ``read_audio(start=start)`` gives."""
        first = round(start * self.rate) - round(self.start * self.rate)
        return self.wave[:, first : first + round(seconds * self.rate)]


@dataclass(frozen=True)
class Inputs:
    """One span's decoded inputs at its bucket's size: frames ``[F, 3, H, W]`` uint8, the mask ``[F, 1, H, W]``,
    the reference at its own size, and the sound ``[2, S]`` (``None``: the clip has none, or audio is off), all
    from the span's first frame (and its time) on."""

    info: MediaInfo
    bucket: Bucket
    framing: Framing
    span: Span
    frames: Tensor
    reference: Tensor | None
    mask: Tensor | None
    waveform: Tensor | None
    ref_wave: Tensor | None
    sound: str | None  # the file the sound came from

    @property
    def seconds(self) -> float:
        return self.bucket.frames / self.info.fps


@dataclass(frozen=True)
class InputReader:
    """Reads rows for ``Preprocessor``: its buckets, audio switch and reference settings."""

    buckets: Sequence[Bucket]
    audio: bool
    image_fps: float
    downscale: int
    stride: int

    def open(self, row: Row) -> Clip:
        """``row``'s media probed and bucketed; raises ``Skip`` for a bad row or a clip shorter than every bucket."""
        self.check(row)
        with reading(row.media):
            info = probe(row.media, self.image_fps)
        bucket = choose_bucket(self.buckets, info.width, info.height, info.frames, info.is_image)
        if bucket is None:
            shortest = min(b.frames for b in self.buckets)
            raise Skip("too short", f"{row.media}: {info.frames} frames, the shortest bucket needs {shortest}")
        return Clip(info, bucket, Framing.of(info.width, info.height, bucket.width, bucket.height))

    def read(
        self, row: Row, clip: Clip, spans: Sequence[Span], sample_rate: int, steps_per_second: float
    ) -> Iterator[Inputs]:
        """Every input of each of ``spans`` (ascending), decoded span by span; raises ``Skip`` naming the first bad
        file. The sound of all spans is read first, in one pass (a late span's audio is the track at its time).

        A separate audio file must cover each span (within one audio latent step, ``1 / steps_per_second``); the
        clip's own track and a reference audio shorter than the clip are padded with silence.
        """
        if not spans:
            return
        info, bucket = clip.info, clip.bucket
        start = spans[0].seconds(info.fps)
        seconds = (spans[-1].start + bucket.frames) / info.fps - start
        sound = self.read_sound(row, start, seconds, sample_rate, steps_per_second)
        ref_sound = self.read_reference_audio(row, start, seconds, sample_rate)
        for span in spans:
            # Decode every input of the span before encoding anything: a bad reference or mask must not cost a
            # VAE pass.
            try:
                frames = read_frames(row.media, bucket.frames, bucket.width, bucket.height, start=span.start)
            except TooShort as exc:  # the bucket fits the frames the header promised: the file breaks off early
                promised = "an image" if info.is_image else f"{info.frames} frames"
                raise Skip("truncated", f"{row.media}: the header promises {promised}, but {exc}") from exc
            except MediaError as exc:
                raise Skip("unreadable", f"{row.media}: {exc}") from exc
            reference = self.read_reference(row, bucket, span)
            mask = None
            if row.mask is not None:
                with reading(row.mask, "mask"):
                    mask = read_frames(
                        row.mask, bucket.frames, bucket.width, bucket.height, gray=True, start=span.start
                    )
            at = span.seconds(info.fps)
            waveform = sound.cut(at, clip.seconds) if sound is not None else None
            ref_wave = ref_sound.cut(at, clip.seconds) if ref_sound is not None else None
            source = sound.source if sound is not None else None
            yield Inputs(info, bucket, clip.framing, span, frames, reference, mask, waveform, ref_wave, source)

    def check(self, row: Row) -> None:
        """What is wrong with ``row``'s files before any is opened: one that is not there, or is empty."""
        roles = {"": row.media, "reference": row.reference, "mask": row.mask, "audio": row.audio}
        for role, path in {**roles, "reference audio": row.reference_audio}.items():
            label = f"{role} {path}" if role else str(path)
            if path is not None and not path.is_file():
                raise Skip("missing file", label)
            if path is not None and path.stat().st_size == 0:  # FFmpeg would only say "Invalid data"
                raise Skip("unreadable", f"{label}: the file is empty (0 bytes)")
        if row.reference_audio is not None and not self.audio:
            raise Skip("reference audio with audio=false", f"{row.reference_audio}: set audio=true to encode it")

    def read_reference(self, row: Row, bucket: Bucket, span: Span) -> Tensor | None:
        """The reference's frames of ``span``: from its first frame, every ``stride``-th."""
        if row.reference is None:
            return None
        frames = (bucket.frames - 1) // self.stride + 1
        size = (bucket.width // self.downscale, bucket.height // self.downscale)
        with reading(row.reference, "reference"):
            return read_frames(row.reference, frames, *size, stride=self.stride, start=span.start)

    def read_sound(
        self, row: Row, start: float, seconds: float, sample_rate: int, steps_per_second: float
    ) -> Track | None:
        """The clip's sound from ``start`` seconds on: its ``audio`` file (which must hold sound and cover the
        spans), else its own track."""
        if not self.audio:
            return None
        if row.audio is None:
            with reading(row.media, "the audio track of"):
                wave = read_audio(row.media, seconds, sample_rate, start=start)
            return Track(wave, start, sample_rate, str(row.media)) if wave is not None else None
        with reading(row.audio, "audio"):
            wave = read_audio(row.audio, seconds, sample_rate, at_least=seconds - 1 / steps_per_second, start=start)
        if wave is None:
            raise Skip("unreadable", f"audio {row.audio}: no audio stream")
        return Track(wave, start, sample_rate, str(row.audio))

    def read_reference_audio(self, row: Row, start: float, seconds: float, sample_rate: int) -> Track | None:
        if row.reference_audio is None:
            return None
        with reading(row.reference_audio, "reference audio"):
            wave = read_audio(row.reference_audio, seconds, sample_rate, start=start)
        if wave is None:
            raise Skip("unreadable", f"reference audio {row.reference_audio}: no audio stream")
        return Track(wave, start, sample_rate, str(row.reference_audio))
