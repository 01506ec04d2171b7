"""Validation clips: short clips for the user's prompts and fixed held-out samples, written into the run directory.

At each validation the first ``num_prompts`` held-out samples (after the user's prompts) are sampled with their
own conditioning (the strategy's, see ``ltxtune.evaluation.sampling``), decoded with ltx-core's VAE decoder
and written as ``<run_dir>/samples/step_<step>/prompt<i>.mp4``. A mode with audio decodes it with ltx-core's
audio VAE decoder and vocoder into the clip's sound; an audio-only mode (t2a) writes ``prompt<i>.wav``. The
same samples, seeds and starting noise are used at every step, so the clips show what training changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ltxtune.data.batch import Batch, TextEncoder
from ltxtune.evaluation.decoding import Decoders
from ltxtune.evaluation.previews import PreviewGrid, PreviewMap
from ltxtune.evaluation.prompts import Prompts
from ltxtune.evaluation.sampling import ClipSampler, SampledClip
from ltxtune.evaluation.settings import VideoSettings
from ltxtune.strategies.base import TrainingStrategy


@dataclass(frozen=True)
class RenderedClips:
    """What one validation's clips wrote (none where ``write`` is off) and ``val/preview_distance`` (``None``
    when there was nothing to compare)."""

    files: tuple[Path, ...]
    preview_distance: float | None


class ValidationClips:
    """Samples, decodes and writes the clips of the user's prompts and the first ``num_prompts`` held-out samples.

    Args:
        sampler: how each clip is sampled; ``decoders``: how it becomes a file; ``prompts``: the user's prompts
            and the negative prompt.
        preview: the latent preview's map (``preview.png`` and ``val/preview_distance``); ``None``: no previews.
        run_dir: clips go to ``samples/step_<step>/`` under it; ``write``: false on the ranks that only sample
            (under FSDP every rank samples: the forward gathers shards).
    """

    def __init__(
        self,
        sampler: ClipSampler,
        decoders: Decoders,
        prompts: Prompts,
        preview: PreviewMap | None,
        num_prompts: int,
        run_dir: Path,
        write: bool = True,
    ) -> None:
        self.sampler, self.decoders, self.prompts, self.preview = sampler, decoders, prompts, preview
        self.num_prompts, self.run_dir, self.write = num_prompts, run_dir, write

    @torch.no_grad()
    def __call__(
        self,
        transformer: nn.Module,
        encode_text: TextEncoder,
        batches: Sequence[Batch],
        strategy: TrainingStrategy,
        step: int,
    ) -> RenderedClips:
        """The clips of ``step`` from ``batches`` (the held-out samples), sampled with ``strategy``.

        ``transformer`` is the unwrapped model, its train/eval mode restored; ``encode_text`` its text path.
        """
        was_training = transformer.training
        transformer.eval()
        self.sampler.fit(len(transformer.transformer_blocks))  # the preflight said what it drops
        previews = PreviewGrid(self.preview) if self.preview is not None else None
        folder = self.run_dir / "samples" / f"step_{step:06d}"
        files = []
        try:
            given = self.prompts.batches(batches[0].take(0))
            held_out = [batch.take(j) for batch in batches for j in range(len(batch))][: self.num_prompts]
            for i, one in enumerate([*given, *held_out]):
                sampled_with = self.prompts.strategy(i, strategy) if i < len(given) else strategy
                clip = self.sample(transformer, encode_text, sampled_with, one, i)
                if previews is not None and clip.grid is not None:
                    own = clean_latents(one)
                    generated = clip.grid.latents(clip.sampled.video)[0]
                    previews.add(generated, None if own is None else own[0], scored=i >= len(given))
                if self.write:
                    files.append(self.decoders.render(clip, folder / f"prompt{i}"))
            distance = previews.distance() if previews is not None and previews.rows else None
            if self.write and previews is not None and previews.rows:
                files.append(previews.write(folder / "preview.png"))
        finally:
            transformer.train(was_training)
            self.decoders.park()
        return RenderedClips(tuple(files), distance)

    def sample(
        self, transformer: nn.Module, encode_text: TextEncoder, strategy: TrainingStrategy, one: Batch, index: int
    ) -> SampledClip:
        """Clip ``index``: the sample's text through the model's text path, the negative prompt when guided."""
        negative = None
        if one.text is not None and self.sampler.uses_negative:
            negative = self.prompts.negative(one.text, encode_text)
        return self.sampler(transformer, strategy, one.encoded(encode_text), index, negative)


def clean_latents(batch: Batch) -> Tensor | None:
    """The batch's own video latents ``[B, 128, F, H, W]`` (the clip a caption describes), if it has them."""
    return batch.video_latents.latents if batch.video_latents is not None else None


def build_clips(
    settings: VideoSettings, batches: Sequence[Batch], run_dir: Path, write: bool = True
) -> ValidationClips | None:
    """The clips ``settings`` ask for (``None`` when disabled), previews fitted to ``batches`` (the held-out
    samples): one map for the whole run, so step 0 and the last step are drawn alike."""
    if not settings.enabled:
        return None
    sampler = ClipSampler(settings.num_steps, settings.guidance_params(), settings.seed)
    decoders = Decoders(
        settings.decoder_checkpoint,
        settings.audio_decoder_checkpoint,
        getattr(torch, settings.decoder_dtype),
        settings.decoder_seed,
        settings.audio_decoder_seed,
        settings.offload_decoders,
    )
    prompts = Prompts(
        settings.user_prompts(), settings.encoders, settings.negative_prompt, settings.negative_conditions, run_dir
    )
    if batches:  # encoded now, before the caller builds the transformer: the encoders are freed by then
        prompts.prepare(batches[0].take(0), sampler.uses_negative)
    preview = None
    if settings.previews:
        latents = [clip for batch in batches if (x := clean_latents(batch)) is not None for clip in x]
        preview = PreviewMap.fit(latents or [torch.zeros(128, 1, 1, 1)])
    return ValidationClips(sampler, decoders, prompts, preview, settings.num_prompts, run_dir, write)
