"""Patchified latents with their grid: the token view of a sample that strategies and conditions edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from ltxtune.diffusion import positions
from ltxtune.errors import DataError


class LatentClip(Protocol):
    """What tokens are made from (a batch's ``Clip``): latents ``[B, C, ...]`` and, for video, fps ``[B]``."""

    @property
    def latents(self) -> Tensor: ...

    @property
    def fps(self) -> Tensor | None: ...


@dataclass(frozen=True)
class VideoTokens:
    """Patchified video latents ``[B, F*H*W, 128]`` with their latent grid and per-sample fps ``[B]``."""

    tokens: Tensor
    frames: int
    height: int
    width: int
    fps: Tensor
    name: ClassVar[str] = "video"  # the stream (and track) these tokens belong to
    time_unit: ClassVar[str] = "latent frames"

    @classmethod
    def from_clip(cls, clip: LatentClip) -> VideoTokens:
        """From latents ``[B, 128, F, H, W]``; a clip without fps is at ``positions.DEFAULT_FPS``."""
        latents, fps = clip.latents, clip.fps
        _, _, f, h, w = latents.shape
        if fps is None:
            fps = torch.full((latents.shape[0],), positions.DEFAULT_FPS)
        return cls(positions.patchify_video(latents), f, h, w, fps.float())

    def positions(self) -> Tensor:
        return positions.video_positions(self.frames, self.height, self.width, self.fps, self.tokens.device)

    def reference_scale(self, ref: VideoTokens) -> tuple[int, int]:
        """Integer ``(spatial, temporal)`` factors from the grid of reference latents ``ref`` to this one.

        Spatial: target size / reference size, equal on both axes. Temporal: latent frame groups
        ``(F - 1) / (Fr - 1)`` (the first latent frame holds a single pixel frame); 1 for equal lengths or
        a one-frame reference. Raises ``DataError`` when the shapes are not such multiples.
        """
        h, w = self.height, self.width
        if h % ref.height or w % ref.width or h // ref.height != w // ref.width:
            raise DataError(
                f"reference latents are {ref.height}x{ref.width} cells and the target {h}x{w}: the target must be "
                "the reference times one integer factor on both axes"
            )
        groups, ref_groups = self.frames - 1, ref.frames - 1
        if ref_groups == 0 or groups == ref_groups:
            return h // ref.height, 1
        if groups < ref_groups or groups % ref_groups:
            raise DataError(
                f"reference latents have {ref.frames} frames and the target {self.frames}: (target - 1) must be "
                "(reference - 1) times an integer"
            )
        return h // ref.height, groups // ref_groups

    def reference_positions(self, ref: VideoTokens) -> Tensor:
        """Positions ``[B, 3, R, 2]`` of reference tokens ``ref`` placed on this clip's pixel grid and timeline.

        Height and width grow by the spatial factor, so a reference cell covers the target pixels it was
        downscaled from. With a temporal factor S, reference times (at the reference's own fps) move back by
        ``(S - 1) / fps`` of the target, clamped at 0, so that both clips end together.
        """
        spatial, temporal = self.reference_scale(ref)
        pos = ref.positions()
        pos[:, 1:] = pos[:, 1:] * spatial
        if temporal != 1:
            shift = (temporal - 1) / self.fps.to(device=pos.device, dtype=pos.dtype).view(-1, 1, 1)
            pos[:, 0] = (pos[:, 0] - shift).clamp_min(0)
        return pos


@dataclass(frozen=True)
class AudioTokens:
    """Patchified audio latents ``[B, T, 128]``; ``frames`` is T (latent steps, 25 per second).

    Shares ``VideoTokens``' grid attributes (one token per time step: ``height == width == 1``) so that
    temporal conditions address both modalities alike.
    """

    tokens: Tensor
    frames: int
    height: ClassVar[int] = 1
    width: ClassVar[int] = 1
    name: ClassVar[str] = "audio"
    time_unit: ClassVar[str] = "audio latent steps"

    @classmethod
    def from_clip(cls, clip: LatentClip) -> AudioTokens:
        """From latents ``[B, 8, T, 16]``."""
        tokens = positions.patchify_audio(clip.latents)
        return cls(tokens, tokens.shape[1])

    def positions(self) -> Tensor:
        return positions.audio_positions(self.frames, self.tokens.shape[0], self.tokens.device)

    def reference_scale(self, ref: AudioTokens) -> tuple[int, int]:
        return 1, 1

    def reference_positions(self, ref: AudioTokens) -> Tensor:
        """Audio references keep their own timeline: ``[B, 1, R, 2]``."""
        return ref.positions()
