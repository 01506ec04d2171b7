"""Latent previews: a linear map from the 128 latent channels to RGB, shown without the VAE decoder.

Inference UIs preview LTX-2 latents this way while sampling. Here the map is fitted once per run to the
validation samples' own latents (their three principal directions, scaled to their spread), so it shows
whatever structure the data has, and it stays fixed for the whole run, so step 0 and the last step are drawn
alike. A validation writes one grid image: a row per prompt, the generated latent frames and then, after a
gap, the sample's own latent frames (what the caption's clip looks like).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

CELL_PIXELS = 12  # each latent cell is drawn as a CELL_PIXELS square
GAP_PIXELS = 6


@dataclass(frozen=True)
class PreviewMap:
    """``rgb = clamp(0.5 + 0.5 * (x - mean) @ basis / (2.5 * spread), 0, 1)`` for a latent vector ``x [128]``."""

    mean: Tensor  # [C]
    basis: Tensor  # [C, 3]
    spread: Tensor  # [3]

    @classmethod
    def fit(cls, latents: list[Tensor]) -> PreviewMap:
        """The principal directions of the channel vectors of ``latents`` (each ``[C, F, H, W]``)."""
        vectors = torch.cat([x.detach().float().cpu().flatten(1).T for x in latents])  # [N, C]
        mean = vectors.mean(0)
        _, _, v = torch.linalg.svd(vectors - mean, full_matrices=False)
        basis = v[:3].T.contiguous()  # [C, 3]; fewer than 3 directions when the data has fewer
        if basis.shape[1] < 3:
            basis = torch.cat([basis, torch.zeros(basis.shape[0], 3 - basis.shape[1])], dim=1)
        # One vector (an audio-only mode has no video to fit to) has no spread: population std, 0, floored.
        spread = ((vectors - mean) @ basis).std(0, correction=0 if len(vectors) == 1 else 1).clamp_min(1e-6)
        return cls(mean, basis, spread)

    def project(self, latents: Tensor) -> Tensor:
        """``[C, F, H, W]`` -> ``[F, H, W, 3]`` in preview units (about -1..1 for the data the map was fitted to)."""
        x = latents.detach().float().cpu().permute(1, 2, 3, 0)
        return (x - self.mean) @ self.basis / (2.5 * self.spread)

    def rgb(self, latents: Tensor) -> Tensor:
        """``[C, F, H, W]`` -> uint8 ``[F, H, W, 3]``."""
        return ((0.5 + 0.5 * self.project(latents)).clamp(0, 1) * 255).round().to(torch.uint8)

    def distance(self, latents: Tensor, reference: Tensor) -> float:
        """Root mean square distance between two latents' previews (0 = drawn the same)."""
        return float((self.project(latents) - self.project(reference)).pow(2).mean().sqrt())


@dataclass
class PreviewGrid:
    """The rows of one validation's preview image: per prompt, generated latents and the sample's own."""

    preview: PreviewMap
    rows: list[tuple[Tensor, Tensor | None]] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)  # the rows whose reference is the sample's own clip

    def add(self, generated: Tensor, reference: Tensor | None, scored: bool = True) -> None:
        """``generated`` and ``reference`` are ``[C, F, H, W]`` latents of one prompt (reference: same grid);
        ``scored=False`` shows the reference (a user prompt's given media) without counting it in ``distance``."""
        if reference is not None and reference.shape != generated.shape:
            reference = None
        self.rows.append((generated, reference))
        if scored and reference is not None:
            self.scored.append(len(self.rows) - 1)

    def distance(self) -> float | None:
        """The mean preview distance between generated and reference latents, over the scored rows."""
        pairs = [self.rows[i] for i in self.scored]
        return sum(self.preview.distance(g, r) for g, r in pairs) / len(pairs) if pairs else None

    def image(self) -> Tensor:
        """uint8 ``[H, W, 3]``: the rows one under the other, frames left to right, on a dark background."""
        rendered = [self._row(g, r) for g, r in self.rows]
        width = max(r.shape[1] for r in rendered)
        padded = [torch.nn.functional.pad(r, (0, 0, 0, width - r.shape[1], 0, GAP_PIXELS), value=24) for r in rendered]
        return torch.cat(padded)

    def _row(self, generated: Tensor, reference: Tensor | None) -> Tensor:
        frames = [self._frames(generated)]
        if reference is not None:
            gap = torch.full((frames[0].shape[0], 2 * GAP_PIXELS, 3), 24, dtype=torch.uint8)
            frames += [gap, self._frames(reference)]
        return torch.cat(frames, dim=1)

    def _frames(self, latents: Tensor) -> Tensor:
        """``[C, F, H, W]`` -> ``[H*k, F*(W*k + gap), 3]``: the frames side by side, each cell k x k pixels."""
        rgb = self.preview.rgb(latents)  # [F, H, W, 3]
        big = rgb.repeat_interleave(CELL_PIXELS, dim=1).repeat_interleave(CELL_PIXELS, dim=2)
        gap = torch.full((big.shape[1], GAP_PIXELS, 3), 24, dtype=torch.uint8)
        return torch.cat([torch.cat([frame, gap], dim=1) for frame in big], dim=1)

    def write(self, path: Path) -> Path:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.image().numpy()).save(path)
        return path
