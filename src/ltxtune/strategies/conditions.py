"""Conditions: ways of giving the model part of what it must generate, as clean tokens at timestep 0.

Each condition is a config node (``_target_`` + arguments, ``probability`` among them) in a track's
``conditions`` list of the ``flexible`` strategy. It edits a ``Stream`` (one generated track on its way to
the model) through ``flow.py``'s shared math, never its own copy of it:

- intrinsic conditions (``FirstFrame``, ``Prefix``, ``Suffix``, ``SpatialCrop``, ``Mask``) pick target tokens
  per sample, each sample drawn on its own with ``probability``, and make them clean, timestep 0, unscored;
- ``Reference`` prepends clean tokens from another directory (IC-LoRA), drawn once per batch since it
  changes the sequence length.

Settings that depend on the data's shape are checked against each batch, before anything is drawn, so
``TrainingStrategy.check_data`` catches them on the first sample.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ltxtune.data.batch import Batch
from ltxtune.data.needs import TRACK_ROLES, DataNeeds
from ltxtune.diffusion import flow, positions
from ltxtune.diffusion.inputs import Modality, ModalityInputs
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens
from ltxtune.errors import ConfigError, DataError, check_range
from ltxtune.ranks import is_main_rank
from ltxtune.strategies.base import Given, check_probability

Tokens = VideoTokens | AudioTokens


@dataclass(frozen=True)
class Stream:
    """One generated track while its conditions apply: the sequence ``[prepended references | target]``.

    ``target`` holds the clean target tokens ``[B, T, C]`` and their grid; ``x0``, ``noised`` and
    ``positions`` cover the whole sequence (``[B, R+T, ...]``, R = 0 until a reference is prepended).
    """

    target: Tokens
    x0: Tensor
    noised: flow.NoisedTokens
    positions: Tensor

    @classmethod
    def generated(cls, target: Tokens, sigma: Tensor, generator: torch.Generator | None) -> Stream:
        """The target noised at ``sigma [B]``, nothing conditioning yet."""
        x0 = target.tokens
        cond = torch.zeros(x0.shape[:2], dtype=torch.bool, device=x0.device)
        return cls(target, x0, flow.noise_tokens(x0, sigma, cond, generator), target.positions())

    @classmethod
    def frozen(cls, target: Tokens) -> Stream:
        """A conditioning-only track: clean, sigma 0, timestep 0, never scored."""
        return cls(target, target.tokens, flow.clean_tokens(target.tokens), target.positions())

    def condition(self, target_mask: Tensor) -> Stream:
        """Make the ``target_mask [B, T]`` target tokens conditioning (prepended tokens already are)."""
        offset = self.x0.shape[1] - target_mask.shape[1]
        mask = torch.cat([target_mask.new_zeros(target_mask.shape[0], offset), target_mask], dim=1)
        return replace(self, noised=flow.condition_tokens(self.noised, self.x0, mask))

    def inputs(self, name: str, modality: Modality, generated: bool = True) -> ModalityInputs:
        """The stream as the model gets it: ``modality`` (built from ``noised`` and ``positions``), with the
        target and loss mask when ``generated``, and the target's grid."""
        if not generated:
            return ModalityInputs(name, modality, grid=self.target)
        return ModalityInputs(name, modality, self.noised.target, self.noised.loss_mask, self.target)

    def prepend(self, tokens: Tensor, pos: Tensor) -> Stream:
        """Put clean ``tokens [B, R, C]`` at positions ``pos [B, A, R, 2]`` before the sequence."""
        return replace(
            self,
            x0=torch.cat([tokens, self.x0], dim=1),
            noised=flow.prepend_clean(self.noised, tokens),
            positions=torch.cat([pos.to(self.positions.dtype), self.positions], dim=2),
        )


class Condition(ABC):
    """A way of turning part of a generated track into conditioning, applied with ``probability``."""

    # True when the condition needs video frames (a first frame, a pixel box): audio tracks refuse it.
    video_only: ClassVar[bool] = False
    # Validation applies every condition (probability 1): see ltxtune.strategies.evaluation.
    TRAINING_KNOBS: ClassVar[tuple[str, ...]] = ("probability",)

    def __init__(self, probability: float = 1.0) -> None:
        check_probability("probability", probability)
        self.probability = probability

    def needs(self, track: str) -> DataNeeds:
        """The roles this condition reads on ``track`` (``video`` or ``audio``), with their directories."""
        return DataNeeds()

    def get_checkpoint_metadata(self) -> dict[str, Any]:
        """Facts inference needs to use the condition the way it was trained (JSON-serializable)."""
        return {}

    def gives(self, track: str, key: str) -> Given:
        """What the condition gives of ``track`` (``key``: where it sits in the strategy), for validation prompts;
        by default a part of the track's own clip."""
        what = f"part of the {track} ({type(self).__name__})"
        return Given(key, TRACK_ROLES[track].target, what, self.probability, f"{key}.probability")

    @abstractmethod
    def apply(self, stream: Stream, batch: Batch, generator: torch.Generator | None) -> Stream: ...


class IntrinsicCondition(Condition):
    """Conditions a region of the target itself, drawn per sample so a batch's samples stay independent."""

    @abstractmethod
    def region(self, target: Tokens, batch: Batch) -> Tensor:
        """The tokens this condition covers, ``[B, T]`` bool, before the draw; checks the data's shape."""

    def draw(self, target: Tokens, batch: Batch, generator: torch.Generator | None) -> Tensor:
        """``[B, T]`` True on the tokens conditioned this time: the region, for the samples drawn."""
        region = self.region(target, batch)
        drawn = torch.rand(region.shape[0], generator=generator, device=region.device) < self.probability
        return region & drawn.view(-1, 1)

    def apply(self, stream: Stream, batch: Batch, generator: torch.Generator | None) -> Stream:
        return stream.condition(self.draw(stream.target, batch, generator))


def _span_mask(target: Tokens, start: int, stop: int) -> Tensor:
    """``[B, T]`` True on the target frames (or audio steps) ``start:stop``."""
    frame_tokens = target.height * target.width
    mask = torch.zeros(target.tokens.shape[:2], dtype=torch.bool, device=target.tokens.device)
    mask[:, start * frame_tokens : stop * frame_tokens] = True
    return mask


class FirstFrame(IntrinsicCondition):
    """The first latent frame is given (image-to-video). A one-frame clip is left unconditioned."""

    video_only = True

    def gives(self, track: str, key: str) -> Given:
        return replace(super().gives(track, key), what="the first frame", one_frame=True)

    def region(self, target: Tokens, batch: Batch) -> Tensor:
        return _span_mask(target, 0, 1 if target.frames > 1 else 0)


class _TemporalSpan(IntrinsicCondition):
    """The first or last ``temporal_boundary`` latent frames (video) or latent steps (audio) are given."""

    end: ClassVar[str]  # which end of the clip: first, last

    def __init__(self, temporal_boundary: int, probability: float = 1.0) -> None:
        super().__init__(probability)
        check_range("temporal_boundary", temporal_boundary, 1)
        self.temporal_boundary = int(temporal_boundary)

    def gives(self, track: str, key: str) -> Given:
        unit = "latent frames" if track == "video" else "audio latent steps"
        return replace(super().gives(track, key), what=f"the {self.end} {self.temporal_boundary} {unit}")

    def check(self, target: Tokens) -> None:
        if self.temporal_boundary >= target.frames:
            raise ConfigError(
                "temporal_boundary",
                self.temporal_boundary,
                f"< {target.frames}, the {target.time_unit} of the data (the rest is what is generated)",
            )


class Prefix(_TemporalSpan):
    """Extension forward: the start is given, the model continues it."""

    end = "first"

    def region(self, target: Tokens, batch: Batch) -> Tensor:
        self.check(target)
        return _span_mask(target, 0, self.temporal_boundary)


class Suffix(_TemporalSpan):
    """Extension backward: the end is given, the model generates what led to it."""

    end = "last"

    def region(self, target: Tokens, batch: Batch) -> Tensor:
        self.check(target)
        return _span_mask(target, target.frames - self.temporal_boundary, target.frames)


class SpatialCrop(IntrinsicCondition):
    """A pixel box ``(y1, x1, y2, x2)`` is given in every frame; the model generates around it (outpainting).

    The box maps to latent cells by ``// 32`` (the VAE's spatial factor) on each edge and is clamped to the
    frame, as the reference trainer does: with several buckets one pixel box meets frames of several sizes.
    A clamped box is said once per frame size; only a box with no whole latent cell left is refused.
    """

    video_only = True

    def __init__(self, y1: int, x1: int, y2: int, x2: int, probability: float = 1.0) -> None:
        super().__init__(probability)
        check_range("y1", y1, 0)
        check_range("x1", x1, 0)
        check_range("y2", y2, y1 + 1)
        check_range("x2", x2, x1 + 1)
        self.box = (int(y1), int(x1), int(y2), int(x2))

    def gives(self, track: str, key: str) -> Given:
        return replace(super().gives(track, key), what=f"the box {self.box} (y1, x1, y2, x2) of every frame")

    def cells(self, target: Tokens) -> tuple[int, int, int, int]:
        """The box in latent cells ``(row1, col1, row2, col2)``, clamped to the frame."""
        sy, sx = positions.VIDEO_SCALE.height, positions.VIDEO_SCALE.width
        y1, x1, y2, x2 = self.box
        h, w = target.height, target.width
        cells = (min(y1 // sy, h), min(x1 // sx, w), min(y2 // sy, h), min(x2 // sx, w))
        frame = f"the frame is {h * sy} x {w * sx} px"
        if cells[2] <= cells[0]:
            key, value = ("y1", y1) if cells[0] == h else ("y2", y2)
            raise ConfigError(key, value, f"a box holding a whole {sy} px latent row inside the frame ({frame})")
        if cells[3] <= cells[1]:
            key, value = ("x1", x1) if cells[1] == w else ("x2", x2)
            raise ConfigError(key, value, f"a box holding a whole {sx} px latent column inside the frame ({frame})")
        self.report(cells, target)
        return cells

    # (box, frame size) pairs already reported: the training and the validation strategy hold copies of one box.
    _reported: ClassVar[set[tuple[tuple[int, ...], tuple[int, int]]]] = set()

    def report(self, cells: tuple[int, int, int, int], target: Tokens) -> None:
        """Say once per frame size that the box reaches past the frame, or covers all of it."""
        sy, sx = positions.VIDEO_SCALE.height, positions.VIDEO_SCALE.width
        frame = (target.height * sy, target.width * sx)
        past = self.box[2] > frame[0] or self.box[3] > frame[1]
        whole = cells == (0, 0, target.height, target.width)
        if not (past or whole) or (self.box, frame) in self._reported:
            return
        self._reported.add((self.box, frame))
        size = f"{frame[0]} x {frame[1]} px frame"
        used = (cells[0] * sy, cells[1] * sx, cells[2] * sy, cells[3] * sx)
        what = f"reaches past the {size}: clamped to {used}" if past else ""
        if whole:
            what = (what + ", all of it" if past else f"covers the whole {size}") + ": nothing left to generate"
        if is_main_rank():
            print(f"warning: spatial_crop box (y1, x1, y2, x2) {self.box} {what}", flush=True)

    def region(self, target: Tokens, batch: Batch) -> Tensor:
        r1, c1, r2, c2 = self.cells(target)
        cell = torch.zeros(target.height, target.width, dtype=torch.bool, device=target.tokens.device)
        cell[r1:r2, c1:c2] = True
        # Token order is frame-major (f*H*W + h*W + w): the same box in every frame.
        return cell.flatten().repeat(target.frames).expand(target.tokens.shape[0], -1)


class Mask(IntrinsicCondition):
    """Per-sample masks from ``mask_dir`` (``{"mask": [F, H, W]}`` or ``[T]``; 1 = given) choose the tokens.

    Values above ``threshold`` are conditioning (inference thresholds its masks the same way).
    """

    TRAINING_KNOBS = ("probability", "threshold")

    def __init__(self, mask_dir: str, probability: float = 1.0, threshold: float = 0.5) -> None:
        super().__init__(probability)
        if not mask_dir:
            raise ConfigError("mask_dir", mask_dir, "a directory under data.root (video_masks, audio_masks, ...)")
        check_range("threshold", threshold, 0.0, 1.0)
        self.mask_dir, self.threshold = mask_dir, threshold

    def needs(self, track: str) -> DataNeeds:
        return DataNeeds.of_track(track, mask=self.mask_dir)

    def gives(self, track: str, key: str) -> Given:
        return replace(super().gives(track, key), what=f"the {track} where its mask ({self.mask_dir}/) gives it")

    def region(self, target: Tokens, batch: Batch) -> Tensor:
        """``[B, T]`` True on the tokens the masks give (before the per-sample draw)."""
        mask = batch.mask(target.name)
        b, t = target.tokens.shape[:2]
        if mask[0].numel() != t:
            raise DataError(
                f"{self.mask_dir}/ masks have shape {tuple(mask.shape[1:])} ({mask[0].numel()} values) but the track "
                f"has {t} tokens: a mask needs one value per latent cell ([F, H, W] video, [T] audio)"
            )
        return mask.reshape(b, t).to(target.tokens.device) > self.threshold

    def values(self, batch: Batch, track: str) -> tuple[float, float]:
        """The lowest and highest value of ``track``'s masks in ``batch``."""
        mask = batch.mask(track)
        return float(mask.min()), float(mask.max())


class Reference(Condition):
    """Clean reference latents from ``latents_dir`` go before the target (IC-LoRA), drawn once per batch.

    Video references may be smaller by an integer factor, or have fewer frames: their positions are
    placed on the target's grid (``VideoTokens.reference_positions``). Both factors come from the shapes of
    the data itself and are written into the checkpoint metadata when they are not 1
    (``reference_spatial_scale_factor`` with ``reference_downscale_factor``, ``reference_temporal_scale_factor``).
    """

    def __init__(self, latents_dir: str, probability: float = 1.0) -> None:
        super().__init__(probability)
        if not latents_dir:
            raise ConfigError("latents_dir", latents_dir, "a directory under data.root (reference_latents, ...)")
        self.latents_dir = latents_dir
        self.scale: tuple[int, int] | None = None  # (spatial, temporal), known once data has been seen

    def needs(self, track: str) -> DataNeeds:
        return DataNeeds.of_track(track, reference=self.latents_dir)

    def gives(self, track: str, key: str) -> Given:
        role = TRACK_ROLES[track].reference
        return Given(key, role, f"the {track} reference ({self.latents_dir}/)", self.probability, f"{key}.probability")

    def get_checkpoint_metadata(self) -> dict[str, Any]:
        spatial, temporal = self.scale or (1, 1)
        meta: dict[str, Any] = {}
        if spatial != 1:
            # ltx-trainer's current key and its older one, which IC-LoRA pipelines still read: both are target
            # size / reference size, what ltx-core's ReferenceVideoConditioning takes as downscale_factor.
            meta["reference_spatial_scale_factor"] = spatial
            meta["reference_downscale_factor"] = spatial
        if temporal != 1:
            meta["reference_temporal_scale_factor"] = temporal
        return meta

    def observe_scale(self, target: Tokens, ref: Tokens) -> None:
        """Record the factors; one LoRA serves one factor, so a dataset mixing them is refused."""
        try:
            scale = target.reference_scale(ref)
        except DataError as exc:
            raise DataError(f"{self.latents_dir}/: {exc}") from None
        if self.scale is not None and scale != self.scale:
            raise DataError(
                f"{self.latents_dir}/: reference scale factors (spatial, temporal) {scale} differ from {self.scale} "
                "seen earlier: a LoRA records one pair, so every sample needs the same"
            )
        self.scale = scale

    def apply(self, stream: Stream, batch: Batch, generator: torch.Generator | None) -> Stream:
        target = stream.target
        ref = type(target).from_clip(batch.reference(target.name))
        self.observe_scale(target, ref)
        device = target.tokens.device
        if float(torch.rand((), generator=generator, device=device)) >= self.probability:
            return stream
        return stream.prepend(ref.tokens.to(device), target.reference_positions(ref))
