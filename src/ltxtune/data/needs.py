"""What a strategy reads: the directory under ``data.root`` of each role it fills in the batch."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

from ltxtune.errors import ConfigError


class TrackRoles(NamedTuple):
    """The roles of one track (``video`` or ``audio``): its clip, its IC-LoRA reference, its per-cell mask."""

    target: str
    reference: str
    mask: str


# A condition on a track reads the roles of that track: a reference on the audio track is an audio reference.
TRACK_ROLES = {
    "video": TrackRoles("video_latents", "reference_latents", "video_masks"),
    "audio": TrackRoles("audio_latents", "reference_audio_latents", "audio_masks"),
}


@dataclass(frozen=True)
class DataNeeds:
    """The directories under ``data.root`` a strategy reads, one per role (``None``: the role is not read).

    Roles are named after their usual directory; each is a field of ``ltxtune.data.batch.Batch``:

    - ``text``: text features (``video_prompt_embeds``, ``audio_prompt_embeds`` ``[L, D]``, ``prompt_attention_mask``);
    - ``video_latents`` ``[128, F, H, W]`` and ``audio_latents`` ``[8, T, 16]``: the clips, generated or given;
    - ``reference_latents``, ``reference_audio_latents``: IC-LoRA references of the video and the audio track;
    - ``video_masks`` ``{"mask": [F, H, W]}``, ``audio_masks`` ``{"mask": [T]}``: per-cell masks (1 = given);
    - ``mask_latents`` ``[128, F, H, W]``: inpainting's mask videos, encoded like the clips;
    - ``extra``: a custom strategy's own directories, read as they are (``Batch.extra[directory]``).
    """

    text: str | None = None
    video_latents: str | None = None
    audio_latents: str | None = None
    reference_latents: str | None = None
    reference_audio_latents: str | None = None
    video_masks: str | None = None
    audio_masks: str | None = None
    mask_latents: str | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def of_track(
        cls, track: str, latents: str | None = None, reference: str | None = None, mask: str | None = None
    ) -> DataNeeds:
        """The roles of ``track`` (``video`` or ``audio``) read from the given directories."""
        roles = TRACK_ROLES[track]
        given = {roles.target: latents, roles.reference: reference, roles.mask: mask}
        return cls(**{role: directory for role, directory in given.items() if directory is not None})

    def roles(self) -> dict[str, str]:
        """Role -> directory, for every role read (``extra`` aside)."""
        return {f.name: value for f in fields(self) if f.name != "extra" and (value := getattr(self, f.name))}

    def directories(self) -> list[str]:
        """Every directory read, once each: the roles' in role order, then ``extra``."""
        return list(dict.fromkeys([*self.roles().values(), *self.extra]))

    @property
    def has_audio(self) -> bool:
        """Whether the strategy feeds the audio stream (and so reads the audio text features)."""
        return self.audio_latents is not None

    @property
    def audio_dirs(self) -> frozenset[str]:
        """The directories a clip without sound has no file in: the audio clip and its reference. Audio masks are
        not sound: a missing one stays an error."""
        return frozenset(d for d in (self.audio_latents, self.reference_audio_latents) if d is not None)

    def merged(self, other: DataNeeds) -> DataNeeds:
        """Both declarations; a role both read from different directories raises ``ConfigError``."""
        changes = {}
        for role, directory in other.roles().items():
            mine = getattr(self, role)
            if mine is not None and mine != directory:
                raise ConfigError(role, directory, f"{mine!r}, the directory it is read from already (one per role)")
            changes[role] = directory
        return replace(self, **changes, extra=tuple(dict.fromkeys([*self.extra, *other.extra])))
