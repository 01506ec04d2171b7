"""Text-to-video (optionally with audio), with first-frame conditioning drawn per sample."""

from __future__ import annotations

import torch

from ltxtune.data.batch import Batch
from ltxtune.diffusion import flow, positions
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.strategies.base import (
    ModelInputs,
    TrainingStrategy,
    VideoTokens,
    audio_modality,
    check_probability,
    first_frame_mask,
    video_modality,
)


class TextToVideo(TrainingStrategy):
    """Generate the clip from its caption; with ``first_frame_p`` the first frame is given (i2v).

    With ``with_audio`` the audio track is generated too, at the video's sigma with its own noise.
    """

    def __init__(
        self,
        first_frame_p: float = 0.1,
        with_audio: bool = False,
        latents_dir: str = "latents",
        audio_latents_dir: str = "audio_latents",
        conditions_dir: str = "conditions",
    ) -> None:
        check_probability("first_frame_p", first_frame_p)
        self.first_frame_p, self.with_audio = first_frame_p, with_audio
        self.latents_dir, self.audio_latents_dir, self.conditions_dir = latents_dir, audio_latents_dir, conditions_dir

    def get_data_sources(self) -> dict[str, str]:
        sources = {self.latents_dir: "latents", self.conditions_dir: "conditions"}
        if self.with_audio:
            sources[self.audio_latents_dir] = "audio_latents"
        return sources

    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs:
        video = VideoTokens.from_source(batch["latents"])
        x0 = video.tokens
        b, t, _ = x0.shape
        sigma = sampler.sample_for(x0, generator)
        cond = first_frame_mask(b, t, video.height * video.width, self.first_frame_p, generator, x0.device)
        noised = flow.noise_tokens(x0, sigma, cond, generator)
        inputs = {"video": video_modality(noised, video.positions(), batch["conditions"])}
        inputs.update(video_targets=noised.target, video_loss_mask=noised.loss_mask)
        if self.with_audio:
            a0 = positions.patchify_audio(batch["audio_latents"]["latents"])
            audio_cond = torch.zeros(a0.shape[:2], dtype=torch.bool, device=a0.device)
            noised_audio = flow.noise_tokens(a0, sigma, audio_cond, generator)
            audio_pos = positions.audio_positions(a0.shape[1], b, a0.device)
            inputs["audio"] = audio_modality(noised_audio, audio_pos, batch["conditions"])
            inputs.update(audio_targets=noised_audio.target, audio_loss_mask=noised_audio.loss_mask)
        return ModelInputs(video=inputs.pop("video"), audio=inputs.pop("audio", None), **inputs)
