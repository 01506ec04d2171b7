"""Text-to-video (optionally with audio), with first-frame conditioning drawn per sample."""

from __future__ import annotations

import copy
from collections.abc import Collection

import torch

from ltxtune.data.batch import Batch
from ltxtune.data.needs import DataNeeds
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens
from ltxtune.strategies.base import Given, TrainingStrategy, audio_modality, check_probability, video_modality
from ltxtune.strategies.conditions import FirstFrame, Stream


class TextToVideo(TrainingStrategy):
    """Generate the clip from its caption; with ``first_frame_p`` the first frame is given (i2v).

    With ``with_audio`` the audio track is generated too, at the video's sigma with its own noise.
    """

    TRAINING_KNOBS = ("first_frame_p",)

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

    def data_needs(self) -> DataNeeds:
        audio = self.audio_latents_dir if self.with_audio else None
        return DataNeeds(text=self.conditions_dir, video_latents=self.latents_dir, audio_latents=audio)

    def givens(self) -> tuple[Given, ...]:
        p = self.first_frame_p
        return (Given("first_frame_p", "video_latents", "the first frame", p, "first_frame_p", one_frame=True),)

    def with_givens(self, keys: Collection[str]) -> TextToVideo:
        strategy = copy.copy(self)
        strategy.first_frame_p = 1.0 if "first_frame_p" in keys else 0.0
        return strategy

    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs:
        video = VideoTokens.from_clip(batch.video_latents)
        sigma = sampler.sample_for(video.tokens, generator)
        first_frame = FirstFrame(self.first_frame_p).draw(video, batch, generator)  # drawn before the noise
        stream = Stream.generated(video, sigma, generator).condition(first_frame)
        streams = [stream.inputs("video", video_modality(stream.noised, stream.positions, batch.text))]
        if self.with_audio:  # at the video's sigma, with its own noise
            audio = Stream.generated(AudioTokens.from_clip(batch.audio_latents), sigma, generator)
            streams.append(audio.inputs("audio", audio_modality(audio.noised, audio.positions, batch.text)))
        return ModelInputs.of(*streams)
