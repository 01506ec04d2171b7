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
class Inputs:
    """A row's decoded inputs at its bucket's size: frames ``[F, 3, H, W]`` uint8, the mask ``[F, 1, H, W]``,
    the reference at its own size, and the sound ``[2, S]`` (``None``: the clip has none, or audio is off)."""

    info: MediaInfo
    bucket: Bucket
    framing: Framing
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

    def read(self, row: Row, sample_rate: int, steps_per_second: float) -> Inputs:
        """Every input of ``row``, decoded; raises ``Skip`` naming the first bad file.

        A separate audio file must cover the clip (within one audio latent step, ``1 / steps_per_second``); the
        clip's own track and a reference audio shorter than the clip are padded with silence.
        """
        self.check(row)
        with reading(row.media):
            info = probe(row.media, self.image_fps)
        bucket = choose_bucket(self.buckets, info.width, info.height, info.frames, info.is_image)
        if bucket is None:
            shortest = min(b.frames for b in self.buckets)
            raise Skip("too short", f"{row.media}: {info.frames} frames, the shortest bucket needs {shortest}")
        # Decode every input before encoding anything: a bad reference or mask must not cost a VAE pass.
        try:
            frames = read_frames(row.media, bucket.frames, bucket.width, bucket.height)
        except TooShort as exc:  # the bucket fits the frames the header promised: the file breaks off early
            promised = "an image" if info.is_image else f"{info.frames} frames"
            raise Skip("truncated", f"{row.media}: the header promises {promised}, but {exc}") from exc
        except MediaError as exc:
            raise Skip("unreadable", f"{row.media}: {exc}") from exc
        reference = self.read_reference(row, bucket)
        mask = None
        if row.mask is not None:
            with reading(row.mask, "mask"):
                mask = read_frames(row.mask, bucket.frames, bucket.width, bucket.height, gray=True)
        seconds = bucket.frames / info.fps
        waveform = self.read_sound(row, seconds, sample_rate, steps_per_second)
        ref_wave = self.read_reference_audio(row, seconds, sample_rate)
        framing = Framing.of(info.width, info.height, bucket.width, bucket.height)
        sound = str(row.audio or row.media) if waveform is not None else None
        return Inputs(info, bucket, framing, frames, reference, mask, waveform, ref_wave, sound)

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

    def read_reference(self, row: Row, bucket: Bucket) -> Tensor | None:
        if row.reference is None:
            return None
        frames = (bucket.frames - 1) // self.stride + 1
        size = (bucket.width // self.downscale, bucket.height // self.downscale)
        with reading(row.reference, "reference"):
            return read_frames(row.reference, frames, *size, stride=self.stride)

    def read_sound(self, row: Row, seconds: float, sample_rate: int, steps_per_second: float) -> Tensor | None:
        """The clip's sound: its ``audio`` file (which must hold sound and cover the clip), else its own track."""
        if not self.audio:
            return None
        if row.audio is None:
            with reading(row.media, "the audio track of"):
                return read_audio(row.media, seconds, sample_rate)
        with reading(row.audio, "audio"):
            wave = read_audio(row.audio, seconds, sample_rate, at_least=seconds - 1 / steps_per_second)
        if wave is None:
            raise Skip("unreadable", f"audio {row.audio}: no audio stream")
        return wave

    def read_reference_audio(self, row: Row, seconds: float, sample_rate: int) -> Tensor | None:
        if row.reference_audio is None:
            return None
        with reading(row.reference_audio, "reference audio"):
            wave = read_audio(row.reference_audio, seconds, sample_rate)
        if wave is None:
            raise Skip("unreadable", f"reference audio {row.reference_audio}: no audio stream")
        return wave
