"""What the first training step would hit, checked on one sample before any weights are loaded.

The model's config says what it takes (``ModelSpec.input_needs``: latent channels, the text features' width
and, for a real checkpoint, the multiple of its text connectors' learnable registers; its depth, which the
validation's STG blocks should fit: a warning otherwise); one collated sample
says what the data holds. Both a run and ``trainer.dry_run=true`` call ``check_model_inputs``, so a dry run
that passes is a run whose first step does not fail on these.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ltxtune.data.batch import Batch
from ltxtune.diffusion.guidance import Guidance
from ltxtune.errors import ConfigError, DataError
from ltxtune.model.base import InputNeeds, ModelSpec


def check_model_inputs(cfg: DictConfig, model: ModelSpec, batch: Batch) -> None:
    """Raise ``ConfigError`` / ``DataError`` (one line: the key, the value, what is allowed) on a mismatch."""
    needs = model.input_needs()
    source = _model_source(cfg)
    audio_key = "model.audio_caption_channels" if "audio_caption_channels" in cfg.model else "model.caption_channels"
    keys = ("model.caption_channels", audio_key)
    text = batch.text
    # A strategy without audio reads no audio text features (its batches have none): no width to check.
    stored = {"video_prompt_embeds": text.video_embeds, "audio_prompt_embeds": text.audio_embeds}
    streams = zip(keys, stored, model.text_widths, needs.text_widths, strict=True)
    read = [(key, name, ours, theirs) for key, name, ours, theirs in streams if stored[name] is not None]
    for key, _, ours, theirs in read:
        if ours != theirs:
            raise ConfigError(key, ours, f"{theirs}, the text width {source} takes{_hint(needs)}")
    length = text.video_embeds.shape[1]
    for key, name, wanted, _ in read:
        width = stored[name].shape[2]
        if width != wanted:
            raise DataError(
                f"{_where(cfg, 'conditions')}: {name} are {width} wide, but {key}={wanted}"
                f" (allowed: text features from the text encoder {source} was trained with)"
            )
    if needs.text_multiple and length % needs.text_multiple:
        multiple = needs.text_multiple
        why = f"a multiple of {multiple}: {source}'s text connectors tile their {multiple} learnable registers over it"
        if "text_tokens" in cfg.data:
            raise ConfigError("data.text_tokens", length, why)
        raise DataError(
            f"{_where(cfg, 'conditions')}: text features have {length} tokens; allowed: {why} (preprocess with"
            f" encoders.text.max_tokens={multiple * -(-length // multiple)}; LTX-2's Gemma features have 1024)"
        )
    videos = cfg.get("validation_videos")
    if needs.blocks is not None and videos is not None and videos.get("enabled") and "guidance" in videos:
        guidance = Guidance.from_config(videos.guidance, "validation_videos.guidance")
        for line in guidance.fit(needs.blocks, "validation_videos.guidance")[1]:
            print(line, flush=True)
    for clip in batch.clips().values():
        latents = clip.latents
        if latents.dim() not in (4, 5):
            continue
        channels = latents.shape[1] if latents.dim() == 5 else latents.shape[1] * latents.shape[3]
        wanted = needs.video_channels if latents.dim() == 5 else needs.audio_channels
        kind = "video" if latents.dim() == 5 else "audio"
        if channels != wanted:
            raise ConfigError(
                _model_key(cfg),
                _model_value(cfg),
                f"a model whose {kind} stream takes the data's {channels} latent channels (it takes {wanted})",
            )


def _hint(needs: InputNeeds) -> str:
    """LTX-2.3 stores video and audio text features of different widths: name both knobs."""
    video, audio = needs.text_widths
    if video == audio:
        return ""
    return f" (an LTX-2.3-style checkpoint: model.caption_channels={video} model.audio_caption_channels={audio})"


def _model_source(cfg: DictConfig) -> str:
    return f"model.checkpoint={cfg.model.checkpoint}" if "checkpoint" in cfg.model else "the model"


def _model_key(cfg: DictConfig) -> str:
    return "model.checkpoint" if "checkpoint" in cfg.model else "model"


def _model_value(cfg: DictConfig) -> str:
    return str(cfg.model.checkpoint) if "checkpoint" in cfg.model else str(cfg.model._target_)


def _where(cfg: DictConfig, directory: str) -> str:
    return str(Path(str(cfg.data.root)) / directory)
