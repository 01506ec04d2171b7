"""The flexible strategy: a video and an audio track, each generated or frozen, each with its conditions.

Every built-in mode is a configuration of it (``conf/experiment/``): text-to-video+audio, image-to-video,
extension, IC-LoRA references, audio-to-video, video-to-audio, inpainting, outpainting, text-to-audio.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Sequence
from typing import Any, ClassVar

import torch

from ltxtune.data.batch import Batch, Clip
from ltxtune.data.needs import TRACK_ROLES, DataNeeds
from ltxtune.diffusion.inputs import Modality, ModalityInputs, ModelInputs
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens
from ltxtune.errors import ConfigError
from ltxtune.strategies.base import Given, MaskCoverage, TrainingStrategy, audio_modality, video_modality
from ltxtune.strategies.conditions import Condition, Mask, Stream


class Track:
    """One modality of the flexible strategy.

    Args:
        is_generated: True = noised, predicted and scored; False = a frozen condition (clean, sigma 0,
            timestep 0, no target, no loss) that the generated track attends to.
        latents_dir: its latents under ``data.root``.
        conditions: ``Condition`` objects, applied in order (only on a generated track).
    """

    name: ClassVar[str]
    tokens: ClassVar[Callable[[Clip], VideoTokens | AudioTokens]]
    modality: ClassVar[Callable[..., Modality]]
    accepts_video_only: ClassVar[bool]

    def __init__(self, is_generated: bool = True, latents_dir: str = "", conditions: Sequence[Condition] = ()) -> None:
        if not latents_dir:
            raise ConfigError("latents_dir", latents_dir, "a directory under data.root")
        self.is_generated, self.latents_dir = bool(is_generated), latents_dir
        self.conditions = list(conditions)

    def check(self) -> None:
        """Refuse conditions this track cannot take; keys are relative to the strategy (``audio.conditions[0]``)."""
        if self.conditions and not self.is_generated:
            raise ConfigError(
                f"{self.name}.conditions",
                [type(c).__name__ for c in self.conditions],
                f"[] while {self.name}.is_generated is false (a frozen track is all condition already)",
            )
        for i, condition in enumerate(self.conditions):
            if condition.video_only and not self.accepts_video_only:
                raise ConfigError(
                    f"{self.name}.conditions[{i}]",
                    type(condition).__name__,
                    f"a condition for {self.name} (Prefix, Suffix, Mask, Reference): it has no frames or pixels",
                )

    def needs(self) -> DataNeeds:
        """The track's clip and what its conditions read; two of them reading one role (two references on a
        track) are refused, naming the second."""
        needs = DataNeeds.of_track(self.name, latents=self.latents_dir)
        for i, condition in enumerate(self.conditions):
            try:
                needs = needs.merged(condition.needs(self.name))
            except ConfigError as exc:
                already = f"{exc.key} from {getattr(needs, exc.key)}/: a batch holds one"
                allowed = f"a condition reading no second {exc.key} (the track reads {already})"
                raise ConfigError(f"{self.name}.conditions[{i}]", type(condition).__name__, allowed) from None
        return needs

    def givens(self) -> tuple[Given, ...]:
        """A frozen track is given whole; a generated one gives what its conditions give."""
        if not self.is_generated:
            what = f"the whole {self.name} track ({self.name}.is_generated=false)"
            return (Given(f"{self.name}.is_generated", TRACK_ROLES[self.name].target, what, 1.0),)
        return tuple(c.gives(self.name, f"{self.name}.conditions[{i}]") for i, c in enumerate(self.conditions))

    def with_givens(self, keys: Collection[str]) -> Track:
        """A copy whose conditions in ``keys`` always apply and the others never (a frozen track stays given)."""
        conditions = []
        for i, condition in enumerate(self.conditions):
            condition = copy.copy(condition)
            condition.probability = 1.0 if f"{self.name}.conditions[{i}]" in keys else 0.0
            conditions.append(condition)
        track = copy.copy(self)
        track.conditions = conditions
        return track

    def prepare(self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None) -> ModalityInputs:
        target = self.tokens(batch.target(self.name))
        if not self.is_generated:
            stream = Stream.frozen(target)
        else:
            # The sigma follows this track's own token count (the sampler's shift), references excluded.
            stream = Stream.generated(target, sampler.sample_for(target.tokens, generator), generator)
        for i, condition in enumerate(self.conditions):
            try:
                stream = condition.apply(stream, batch, generator)
            except ConfigError as exc:
                raise exc.within(f"{self.name}.conditions[{i}]") from None
        modality = self.modality(stream.noised, stream.positions, batch.text)
        return stream.inputs(self.name, modality, self.is_generated)


class VideoTrack(Track):
    """Video latents ``[B, 128, F, H, W]`` -> ``[B, F*H*W, 128]`` tokens, attending to the video text features."""

    name = "video"
    tokens = VideoTokens.from_clip
    modality = staticmethod(video_modality)
    accepts_video_only = True

    def __init__(
        self, is_generated: bool = True, latents_dir: str = "latents", conditions: Sequence[Condition] = ()
    ) -> None:
        super().__init__(is_generated, latents_dir, conditions)


class AudioTrack(Track):
    """Audio latents ``[B, 8, T, 16]`` -> ``[B, T, 128]`` tokens, attending to the audio text features."""

    name = "audio"
    tokens = AudioTokens.from_clip
    modality = staticmethod(audio_modality)
    accepts_video_only = False

    def __init__(
        self, is_generated: bool = True, latents_dir: str = "audio_latents", conditions: Sequence[Condition] = ()
    ) -> None:
        super().__init__(is_generated, latents_dir, conditions)


class Flexible(TrainingStrategy):
    """Any mix of a video and an audio track; each generated track draws its own sigma.

    The loss is the sum of the generated tracks' per-sample losses. At least one track must be generated.
    """

    def __init__(
        self, video: VideoTrack | None = None, audio: AudioTrack | None = None, conditions_dir: str = "conditions"
    ) -> None:
        self.video, self.audio, self.conditions_dir = video, audio, conditions_dir
        tracks = self.tracks
        if not tracks:
            raise ConfigError("video", None, "a VideoTrack or an AudioTrack (audio=null and video=null leave nothing)")
        if not any(t.is_generated for t in tracks):
            names = ", ".join(f"{t.name}.is_generated" for t in tracks)
            allowed = f"true (at least one of {names} must be true: frozen tracks have nothing to learn)"
            raise ConfigError(f"{tracks[-1].name}.is_generated", False, allowed)
        for track in tracks:
            track.check()
        self.data_needs()  # two conditions of a track reading one role are refused here, before any data

    @property
    def tracks(self) -> list[Track]:
        return [t for t in (self.video, self.audio) if t is not None]

    def data_needs(self) -> DataNeeds:
        needs = DataNeeds(text=self.conditions_dir)
        for track in self.tracks:
            needs = needs.merged(track.needs())
        return needs

    def prepare_training_inputs(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator | None = None
    ) -> ModelInputs:
        return ModelInputs.of(*(track.prepare(batch, sampler, generator) for track in self.tracks))

    def mask_coverage(self, batch: Batch) -> list[MaskCoverage]:
        covered = []
        for track in (t for t in self.tracks if t.is_generated):
            target = track.tokens(batch.target(track.name))
            for i, condition in enumerate(track.conditions):
                if isinstance(condition, Mask):
                    given, values = condition.region(target, batch), condition.values(batch, track.name)
                    key, generated = f"{track.name}.conditions.{i}.threshold", 1.0 - given.float().mean(dim=1)
                    covered.append(MaskCoverage(key, condition.threshold, condition.mask_dir, generated, values, False))
        return covered

    def givens(self) -> tuple[Given, ...]:
        return tuple(given for track in self.tracks for given in track.givens())

    def with_givens(self, keys: Collection[str]) -> Flexible:
        strategy = copy.copy(self)
        strategy.video = self.video.with_givens(keys) if self.video is not None else None
        strategy.audio = self.audio.with_givens(keys) if self.audio is not None else None
        return strategy

    def get_checkpoint_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        for track in self.tracks:
            for condition in track.conditions:
                meta.update(condition.get_checkpoint_metadata())
        return meta
