"""From dataset rows to the precomputed layout (docs/data.md): one sample at a time, atomically, resumably.

A sample's files are written one by one, each atomically (a temporary name, then ``os.replace``), and
``latents/`` last: the trainer lists samples from ``latents/``, so an interrupted sample is never seen as
complete, and a re-run (which skips a sample only when all its files exist) redoes it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from ltxtune.data.checks import VIDEO_CHANNELS
from ltxtune.data.dropout import EMPTY_CONDITIONS
from ltxtune.data.preprocess.buckets import mask_fraction_grid, parse_buckets
from ltxtune.data.preprocess.encoders import AudioVAE, VideoVAE
from ltxtune.data.preprocess.inputs import InputReader, Inputs, Skip
from ltxtune.data.preprocess.manifest import Row
from ltxtune.data.preprocess.media import MediaError, probe
from ltxtune.data.preprocess.records import (
    clip_record,
    merge_records,
    read_settings,
    skip_record,
    write_skip_report,
)
from ltxtune.data.preprocess.spans import First, Spans
from ltxtune.data.preprocess.text import TextFeatures
from ltxtune.errors import ConfigError, DataError, check_choice, check_range

FORMAT_VERSION = 1
# What white means in a mask video: ours (the region to generate) or ltx-trainer's (the region kept as a condition);
# auto = the convention of the trainer whose column name the dataset file uses.
MASK_WHITE = ("auto", "generate", "keep")
REFERENCE_MASK_COLUMN = "video_mask"  # ltx-trainer's mask column: its masks are white = keep
CAPTIONING_COMMAND = "python -m ltxtune.data.captioning <folder>"


class TextEncoder(Protocol):
    def encode(self, caption: str) -> TextFeatures: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Encoders:
    video: VideoVAE
    audio: AudioVAE | None  # None when audio is off
    text: TextEncoder

    def describe(self) -> dict[str, Any]:
        audio = self.audio.describe() if self.audio is not None else None
        return {"video": self.video.describe(), "audio": audio, "text": self.text.describe()}


@dataclass
class Summary:
    """What one run did; ``skipped`` holds ``(row, Skip)`` in row order, ``records`` each row's record
    (``ltxtune.data.preprocess.records``) by the row's name."""

    done: int = 0
    samples: int = 0  # samples written: several per clip with frames=chunks, sliding or uniform
    already: int = 0
    silent: int = 0
    seconds: float = 0.0
    skipped: list[tuple[Row, Skip]] = field(default_factory=list)
    buckets: Counter = field(default_factory=Counter)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self, rank: int = 0, world: int = 1) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        share = f" (process {rank} of {world}: its share of the rows)" if world > 1 else ""
        if not self.done and not self.skipped:
            return f"nothing to do{share}: {self.already} samples already done (overwrite=true redoes them)"
        made = f" into {self.samples} samples" if self.samples != self.done else ""
        parts = [f"preprocessed {self.done} clips{made} in {self.seconds:.1f} s ({rate:.2f} clips/s){share}"]
        if self.already:
            parts.append(f"{self.already} already done")
        if self.skipped:
            kinds = Counter(skip.kind for _, skip in self.skipped)
            parts.append(
                f"skipped {len(self.skipped)} (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")"
            )
        if self.silent:
            parts.append(f"{self.silent} without an audio track (no audio_latents/: audio strategies leave them out)")
        return "; ".join(parts)


class Partial(Skip):
    """A row of which some spans were made before one could not be read: ``record`` tells those made."""

    def __init__(self, skip: Skip, record: dict[str, Any], made: int) -> None:
        super().__init__(skip.kind, skip.detail)
        self.record, self.made = record | {"skipped": {"reason": skip.kind, "detail": skip.detail}}, made


def atomic_save(data: dict[str, Any], path: Path) -> None:
    """``torch.save`` under a temporary name in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(data, tmp)
    os.replace(tmp, path)


class Preprocessor:
    """Turns rows into samples under ``output``. ``rank``/``world`` split the rows between processes."""

    def __init__(
        self,
        output: str,
        buckets: Sequence[str],
        audio: bool = True,
        image_fps: float = 24.0,
        reference_downscale: int = 1,
        reference_frame_stride: int = 1,
        mask_white: str = "auto",
        frames: Spans | None = None,
        caption_prefix: str = "",
        allow_empty_captions: bool = False,
        overwrite: bool = False,
        strict: bool = False,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        check_range("image_fps", image_fps, 0.0, lo_open=True)
        check_range("reference_downscale", reference_downscale, 1)
        check_range("reference_frame_stride", reference_frame_stride, 1)
        check_choice("mask_white", mask_white, MASK_WHITE)
        self.buckets = parse_buckets(buckets)
        for b in self.buckets:
            if b.width % (32 * reference_downscale) or b.height % (32 * reference_downscale):
                raise ConfigError(
                    "reference_downscale", reference_downscale, f"one that keeps bucket {b} a multiple of 32"
                )
            if (b.frames - 1) % (8 * reference_frame_stride):
                raise ConfigError(
                    "reference_frame_stride",
                    reference_frame_stride,
                    f"one with (F-1) of bucket {b} a multiple of 8*stride",
                )
        self.root = Path(output).expanduser()
        self.audio, self.image_fps, self.overwrite, self.strict = audio, image_fps, overwrite, strict
        self.downscale, self.stride = reference_downscale, reference_frame_stride
        self.mask_setting = mask_white
        self.caption_prefix, self.allow_empty_captions = str(caption_prefix or ""), bool(allow_empty_captions)
        self.mask_white = self.use_mask_column(None)
        self.rank, self.world = rank, world
        if frames is not None and not isinstance(frames, Spans):
            raise ConfigError("frames", frames, "first, chunks, sliding or uniform (frames=chunks)")
        self.spans = frames if frames is not None else First()
        self.reader = InputReader(self.buckets, audio, image_fps, reference_downscale, reference_frame_stride)

    def use_mask_column(self, column: str | None) -> str:
        """Settle ``mask_white=auto`` for masks read from ``column``: ltx-trainer's column means its convention."""
        if self.mask_setting == "auto":
            self.mask_white = "keep" if column == REFERENCE_MASK_COLUMN else "generate"
        else:
            self.mask_white = self.mask_setting
        return self.mask_white

    def text(self, row: Row) -> str:
        """What ``row``'s text features are encoded from: ``caption_prefix`` (a trigger word), then its caption."""
        return (self.caption_prefix + row.caption).strip()

    def check_caption(self, row: Row) -> None:
        """Raise ``Skip`` for a row without a caption, unless ``allow_empty_captions``."""
        if row.caption or self.allow_empty_captions:
            return
        where = f"{row.media.with_suffix('.txt').name} beside it in a folder, its caption column in a dataset file"
        raise Skip(
            "no caption",
            f"{row.media}: write its caption ({where}), make captions with `{CAPTIONING_COMMAND}`, "
            "or set allow_empty_captions=true",
        )

    def empty_prompt_path(self) -> Path:
        return self.root / EMPTY_CONDITIONS

    def check_prefix(self, done: int) -> None:
        """Refuse a ``caption_prefix`` other than the one the samples already made were encoded with: a re-run
        would mix the two in one dataset."""
        recorded = read_settings(self.root)
        earlier = str(recorded.get("caption_prefix") or "")
        if recorded and earlier != self.caption_prefix and not self.overwrite:
            raise ConfigError(
                "caption_prefix",
                self.caption_prefix,
                f"{earlier!r}, the prefix the {done} samples already under {self.root} were encoded with; "
                "overwrite=true encodes every sample again with the new one",
            )

    def outputs(self, row: Row, name: str) -> list[Path]:
        """Every file sample ``name`` of ``row`` becomes, ``latents/`` last (it marks the sample complete)."""
        dirs = ["conditions"]
        if self.audio:
            dirs.append("audio_latents")
        if row.reference is not None:
            dirs.append("reference_latents")
        if row.reference_audio is not None:
            dirs.append("reference_audio_latents")
        if row.mask is not None:
            dirs += ["video_masks", "mask_latents"]
        return [self.root / d / name for d in [*dirs, "latents"]]

    def plan(self, rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
        """This rank's rows still to do, and those of its rows already complete."""
        mine = [row for row in rows if row.index % self.world == self.rank]
        done = [not self.overwrite and self.complete(row) for row in mine]
        return [r for r, d in zip(mine, done, strict=True) if not d], [r for r, d in zip(mine, done, strict=True) if d]

    def sample_names(self, row: Row) -> list[str] | None:
        """The samples ``row`` becomes (its span samples: the header is read); ``None`` when the row cannot be
        read (``process`` says why)."""
        if not self.spans.named:
            return [row.name]
        try:
            clip = self.reader.open(row)
        except Skip:
            return None
        return [
            name for name, _ in self.spans.samples(row.name, clip.info.frames, clip.bucket.frames, clip.info.is_image)
        ]

    def complete(self, row: Row) -> bool:
        """Whether every sample of ``row`` is complete (``sample_complete``)."""
        names = self.sample_names(row)
        return names is not None and all(self.sample_complete(row, name) for name in names)

    def sample_complete(self, row: Row, name: str) -> bool:
        """Whether every file of a sample exists; a clip without an audio track has no ``audio_latents/`` file."""
        missing = [p for p in self.outputs(row, name) if not p.is_file()]
        if missing != [self.root / "audio_latents" / name] or row.audio is not None:
            return not missing
        try:  # only the audio file is missing: by design when the clip has no sound
            return not probe(row.media, self.image_fps).has_audio
        except MediaError:
            return False

    def run(self, rows: Sequence[Row], load_encoders: Callable[[], Encoders], source: str = "") -> Summary:
        """Process this rank's share of ``rows``; encoders are built only when there is work. The records are
        written even when a row stops the run (``strict=true``, an encoder failing): what was made is told."""
        todo, already = self.plan(rows)
        if already:
            self.check_prefix(len(already))
        summary = Summary(already=len(already))
        # The empty prompt's features (caption dropout) are written once, by the first process, with the samples.
        empty = self.empty_prompt_path() if self.rank == 0 else None
        if not todo and (empty is None or empty.is_file()):
            return summary
        encoders = load_encoders()
        if empty is not None and (self.overwrite or not empty.is_file()):
            atomic_save(encoders.text.encode("").to_file(), empty)
        start = time.perf_counter()
        bar = tqdm(todo, desc="preprocess", unit="clip", disable=self.rank != 0, ascii=True)
        try:
            for row in bar:
                try:
                    record, made = self.process(row, encoders)
                except Skip as skip:
                    partial = isinstance(skip, Partial)
                    summary.records[row.name] = skip.record if partial else skip_record(row, skip)
                    summary.samples += skip.made if partial else 0
                    if self.strict:
                        raise DataError(f"row {row.index} ({row.media}): {skip} (strict=true stops here)") from skip
                    summary.skipped.append((row, skip))
                    bar.set_postfix(skipped=len(summary.skipped))
                    continue
                summary.records[row.name] = record
                summary.done += 1
                summary.samples += made
                summary.silent += self.audio and not record["audio"]
                summary.buckets[record["bucket"]] += 1
        finally:
            summary.seconds = time.perf_counter() - start
            self.write_records(summary, todo, already, encoders, source)
        return summary

    def process(self, row: Row, enc: Encoders) -> tuple[dict[str, Any], int]:
        """Encode and write the samples of ``row`` not complete yet; its record and how many samples were made.
        Raises ``Skip`` before writing anything when an input is bad, ``Partial`` when a later span is."""
        self.check_caption(row)
        rate, steps = (enc.audio.sample_rate, enc.audio.latents_per_second) if enc.audio is not None else (0, 25.0)
        clip = self.reader.open(row)
        info = clip.info
        samples = self.spans.samples(row.name, info.frames, clip.bucket.frames, info.is_image)
        todo = [(name, span) for name, span in samples if self.overwrite or not self.sample_complete(row, name)]
        taken = [sample for sample in samples if sample not in todo]  # made by an earlier run
        spans = self.reader.read(row, clip, [span for _, span in todo], rate, steps)
        text: dict[str, Any] | None = None  # the caption's features: every span of the row shares them
        try:
            for (name, span), inputs in zip(todo, spans, strict=True):
                text = text if text is not None else enc.text.encode(self.text(row)).to_file()
                self.write(name, inputs, text, enc)
                taken.append((name, span))
        except Skip as skip:
            if not taken:
                raise
            # The header promised more frames than the file holds (or a reference or mask ends early): keep
            # the samples made, and tell the rest as skipped.
            made = len(taken) - (len(samples) - len(todo))
            record = clip_record(row, clip, sorted(taken, key=lambda sample: sample[1].start), self.audio)
            raise Partial(skip, record, made) from skip
        return clip_record(row, clip, samples, self.audio), len(todo)

    def write(self, name: str, inputs: Inputs, text: dict[str, Any], enc: Encoders) -> None:
        """Encode one span and write its files as sample ``name`` with the row's ``text`` features (a
        ``conditions/`` file), ``latents/`` last."""
        info, frames, reference, mask = inputs.info, inputs.frames, inputs.reference, inputs.mask
        waveform, ref_wave, seconds = inputs.waveform, inputs.ref_wave, inputs.seconds

        files: dict[str, dict[str, Any]] = {"conditions": text}
        # No audio latents for a clip without sound (as ltx-trainer): silence would teach that its scene is silent.
        if waveform is not None:
            latents = enc.audio.encode(waveform, seconds)
            files["audio_latents"] = {"latents": latents, "num_time_steps": latents.shape[1], "duration": seconds}
        if ref_wave is not None:  # the same span as the target's audio: the IC-LoRA pairs them step for step
            ref_audio = enc.audio.encode(ref_wave, seconds)
            files["reference_audio_latents"] = {
                "latents": ref_audio,
                "num_time_steps": ref_audio.shape[1],
                "duration": seconds,
            }
        if reference is not None:
            ref = enc.video.encode(reference)
            files["reference_latents"] = self._latent_file(ref, info.fps / self.stride)
        if mask is not None:
            # Per latent cell, the fraction of it the mask marks to generate: what a threshold can read. (Not the
            # VAE latents of the mask video: their channel means sit near 0 whatever the mask.)
            fraction = mask_fraction_grid(self.generated_region(mask))
            files["video_masks"] = {"mask": 1.0 - fraction}  # 1 = kept as a condition
            cells = fraction.expand(VIDEO_CHANNELS, -1, -1, -1).contiguous()
            files["mask_latents"] = self._latent_file(cells, info.fps)
        files["latents"] = self._latent_file(enc.video.encode(frames), info.fps)
        for directory, data in files.items():  # insertion order: latents/ last
            atomic_save(data, self.root / directory / name)

    def generated_region(self, mask: Tensor) -> Tensor:
        """``[F, 1, H, W]`` uint8 mask frames -> ``[F, H, W]`` True where the clip is to be generated."""
        white = mask[:, 0] > 127
        return white if self.mask_white == "generate" else ~white

    @staticmethod
    def _latent_file(latents: Tensor, fps: float) -> dict[str, Any]:
        _, f, h, w = latents.shape
        return {"latents": latents, "num_frames": f, "height": h, "width": w, "fps": float(fps)}

    def report_path(self) -> Path:
        return self.root / ("skipped.jsonl" if self.world == 1 else f"skipped.rank{self.rank}.jsonl")

    def write_records(
        self, summary: Summary, todo: Sequence[Row], already: Sequence[Row], encoders: Encoders, source: str
    ) -> None:
        """The skip report, and what made the data and became of each row (``records``)."""
        write_skip_report(self.report_path(), summary.skipped)
        settings = {
            "format": FORMAT_VERSION,
            "input": source,
            "buckets": [str(b) for b in self.buckets],
            "audio": self.audio,
            "image_fps": self.image_fps,
            "reference_downscale": self.downscale,
            "reference_frame_stride": self.stride,
            "mask_white": self.mask_white,
            "frames": self.spans.describe(),
            "caption_prefix": self.caption_prefix,
            "allow_empty_captions": self.allow_empty_captions,
            "empty_prompt": EMPTY_CONDITIONS,  # the text features of "", for data.caption_dropout
            "encoders": encoders.describe(),
        }
        records = {row.name: summary.records.get(row.name, {}) for row in todo}
        captions: dict[str, str | None] = {row.name: None for row in todo if "bucket" not in records[row.name]}
        captions |= {name: self.text(row) for row in todo for name in records[row.name].get("spans", {})}
        earlier = {name: self.text(row) for row in already for name in self.sample_names(row) or []}
        merge_records(self.root, settings, summary.records, captions, earlier, shared=self.world > 1)
