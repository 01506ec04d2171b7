"""The batch that crosses from the data loader to a strategy: text features and clips, each in its role."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.needs import TRACK_ROLES

# The keys of a text-feature file (``conditions/``), which the model's text path also reads and returns.
VIDEO_TEXT_KEY, AUDIO_TEXT_KEY, TEXT_MASK_KEY = "video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask"


@dataclass(frozen=True)
class TextFeatures:
    """Stored text features: ``video_embeds`` ``[B, L, D]``, ``audio_embeds`` ``[B, L, D']`` (``None`` for a
    strategy that feeds no audio) and ``attention_mask`` ``[B, L]`` (1 = a token, 0 = padding)."""

    video_embeds: Tensor
    attention_mask: Tensor
    audio_embeds: Tensor | None = None

    @classmethod
    def from_file(cls, data: Mapping[str, Tensor], with_audio: bool = True) -> TextFeatures:
        """From a ``conditions/`` file's keys (its tensors as they are, batched or not)."""
        audio = data.get(AUDIO_TEXT_KEY) if with_audio else None
        return cls(data[VIDEO_TEXT_KEY], data[TEXT_MASK_KEY], audio)

    def to_file(self) -> dict[str, Tensor]:
        """The ``conditions/`` keys (what ``LoadedModel.encode_text`` takes and returns)."""
        out = {VIDEO_TEXT_KEY: self.video_embeds, TEXT_MASK_KEY: self.attention_mask}
        if self.audio_embeds is not None:
            out[AUDIO_TEXT_KEY] = self.audio_embeds
        return out


TextEncoder = Callable[[dict[str, Tensor]], dict[str, Tensor]]  # stored features -> the model's context
CLIP_ROLES = ("video_latents", "audio_latents", "reference_latents", "reference_audio_latents", "mask_latents")


@dataclass(frozen=True)
class Clip:
    """Latents of one role: video ``[B, 128, F, H, W]`` or audio ``[B, 8, T, 16]``; ``fps`` ``[B]`` when the files
    say (video)."""

    latents: Tensor
    fps: Tensor | None = None


@dataclass(frozen=True)
class Batch:
    """Samples of one shape, each role a field (``ltxtune.data.needs.DataNeeds`` names them and their directories).

    ``video_masks`` is ``[B, F, H, W]`` and ``audio_masks`` ``[B, T]`` (1 = given); ``extra[directory]`` holds a
    custom strategy's own files (tensors stacked ``[B, ...]``, numbers as ``[B]`` tensors, other values listed).
    """

    names: tuple[str, ...]
    text: TextFeatures | None = None
    video_latents: Clip | None = None
    audio_latents: Clip | None = None
    reference_latents: Clip | None = None
    reference_audio_latents: Clip | None = None
    video_masks: Tensor | None = None
    audio_masks: Tensor | None = None
    mask_latents: Clip | None = None
    extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def target(self, track: str) -> Clip | None:
        """The clip of ``track`` (``video`` or ``audio``)."""
        return getattr(self, TRACK_ROLES[track].target)

    def reference(self, track: str) -> Clip | None:
        """The IC-LoRA reference of ``track``."""
        return getattr(self, TRACK_ROLES[track].reference)

    def mask(self, track: str) -> Tensor | None:
        """The per-cell mask of ``track``."""
        return getattr(self, TRACK_ROLES[track].mask)

    def clips(self) -> dict[str, Clip]:
        """Role -> clip, for every clip the batch holds."""
        return {f.name: value for f in fields(self) if isinstance(value := getattr(self, f.name), Clip)}

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """``(role.field, tensor)`` for every tensor, in field order."""
        return _tensors(self, "")

    @property
    def device(self) -> torch.device:
        return next(t for _, t in self.tensors()).device

    def with_text(self, text: TextFeatures | None) -> Batch:
        return replace(self, text=text)

    def encoded(self, encode_text: TextEncoder) -> Batch:
        """The batch with its stored text features turned into the model's context (none: as it is)."""
        if self.text is None:
            return self
        return self.with_text(TextFeatures.from_file(encode_text(self.text.to_file())))

    def to(self, device: torch.device) -> Batch:
        # Asynchronous only towards an accelerator: a copy to the host must be complete when it is read.
        return _map(self, lambda t: t.to(device, non_blocking=device.type != "cpu"))

    def pin_memory(self) -> Batch:
        """Page-locked copies (the data loader calls it with ``loader.pin_memory``: faster copies to a GPU)."""
        return _map(self, lambda t: t.pin_memory())

    def take(self, index: int) -> Batch:
        """Sample ``index`` as a batch of one."""
        return _map(self, lambda t: t[index : index + 1], lambda values: [values[index]])

    def to_dict(self) -> dict[str, Any]:
        """Plain containers of tensors (``torch.save`` with ``weights_only`` reads them back): role -> value."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        """The inverse of ``to_dict``."""
        types = {"text": TextFeatures, **dict.fromkeys(CLIP_ROLES, Clip)}
        values = {k: types[k](**v) if k in types and v is not None else v for k, v in data.items()}
        return cls(**{**values, "names": tuple(values["names"])})


def collate(samples: Sequence[Batch]) -> Batch:
    """Batches (of one sample each, as a dataset gives them) as one: tensors joined on dim 0, lists joined."""
    return _join(list(samples))


def _tensors(value: Any, prefix: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        yield prefix, value
    elif isinstance(value, TextFeatures | Clip | Batch):
        for f in fields(value):
            yield from _tensors(getattr(value, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _tensors(item, f"{prefix}.{key}")


def _map(value: Any, on_tensor: Callable[[Tensor], Tensor], on_list: Callable[[list], list] = lambda v: v) -> Any:
    """``value`` with every tensor (and every listed extra value) replaced."""
    if isinstance(value, Tensor):
        return on_tensor(value)
    if isinstance(value, TextFeatures | Clip | Batch):
        changed = {f.name: _map(getattr(value, f.name), on_tensor, on_list) for f in fields(value) if f.name != "names"}
        names = {"names": on_list(list(value.names))} if isinstance(value, Batch) else {}
        return replace(value, **changed, **{k: tuple(v) for k, v in names.items()})
    if isinstance(value, Mapping):
        return {key: _map(item, on_tensor, on_list) for key, item in value.items()}
    if isinstance(value, list):
        return on_list(value)
    return value


def _join(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, Tensor):
        return torch.cat(values)
    if isinstance(first, TextFeatures | Clip | Batch):
        return type(first)(**{f.name: _join([getattr(v, f.name) for v in values]) for f in fields(first)})
    if isinstance(first, Mapping):
        return {key: _join([v[key] for v in values]) for key in first}
    if isinstance(first, list | tuple):
        return type(first)(item for v in values for item in v)
    return first  # None: no sample has it (a shape key tells presence apart, so batches never mix the two)


def _plain(value: Any) -> Any:
    if isinstance(value, TextFeatures | Clip):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return list(value) if isinstance(value, tuple) else value
