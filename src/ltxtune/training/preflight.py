"""What the first training step would hit, checked on one sample before any weights are loaded.

The model's config says what it takes (``ModelSpec.input_needs``: latent channels, the text features' width
and, for a real checkpoint, the multiple of its text connectors' learnable registers; its depth, which the
validation's STG blocks should fit: a warning otherwise); one collated sample
says what the data holds. Both a run and ``trainer.dry_run=true`` call ``check_model_inputs``, so a dry run
that passes is a run whose first step does not fail on these.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from ltxtune.data.batch import Batch
from ltxtune.diffusion.guidance import Guidance
from ltxtune.errors import ConfigError, DataError
from ltxtune.ltx_core_api import model_family, text_encoder_for
from ltxtune.model.base import InputNeeds, ModelSpec


def check_model_inputs(
    model: ModelSpec, data_root: Path, batch: Batch, guidance: Guidance | None, text_tokens_key: bool = False
) -> None:
    """Raise ``ConfigError`` / ``DataError`` (one line: the key, the value, what is allowed) on a mismatch.

    ``guidance``: the validation clips' guidance, when clips are sampled (its STG blocks should fit the
    model's depth: a warning otherwise); ``text_tokens_key``: the data option sets the text length itself
    (``data.text_tokens``, the synthetic dataset), so that key is the one to change.
    """
    needs = model.input_needs()
    source = _model_source(model)
    if _checkpoint(model):
        check_text_encoder(model, data_root)
    separate = "audio_caption_channels" in inspect.signature(type(model)).parameters
    keys = ("model.caption_channels", "model.audio_caption_channels" if separate else "model.caption_channels")
    where = str(data_root / "conditions")
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
                f"{where}: {name} are {width} wide, but {key}={wanted}"
                f" (allowed: text features from the text encoder {source} was trained with)"
            )
    if needs.text_multiple and length % needs.text_multiple:
        multiple = needs.text_multiple
        why = f"a multiple of {multiple}: {source}'s text connectors tile their {multiple} learnable registers over it"
        if text_tokens_key:
            raise ConfigError("data.text_tokens", length, why)
        raise DataError(
            f"{where}: text features have {length} tokens; allowed: {why} (preprocess with"
            f" encoders.text.max_tokens={multiple * -(-length // multiple)}; LTX-2's Gemma features have 1024)"
        )
    if needs.blocks is not None and guidance is not None:
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
                "model.checkpoint" if _checkpoint(model) else "model",
                str(_checkpoint(model) or f"{type(model).__module__}.{type(model).__name__}"),
                f"a model whose {kind} stream takes the data's {channels} latent channels (it takes {wanted})",
            )


def check_text_encoder(model: ModelSpec, data_root: Path) -> None:
    """``DataError`` when the data's text features come from another Gemma than the model's (LTX-2.5 reads Gemma 4's,
    LTX-2 and LTX-2.3 Gemma 3's): their widths can agree, so only the dataset's ``preprocess.json`` tells."""
    try:
        record = json.loads((data_root / "preprocess.json").read_text())["encoders"]["text"]
    except (OSError, ValueError, KeyError, TypeError):  # no record (synthetic or hand-made data): nothing to compare
        return
    if not isinstance(record, dict) or record.get("class") != "GemmaText":
        return
    used = str(record.get("gemma", "gemma3"))  # a record without the family was written when only Gemma 3 existed
    wanted = text_encoder_for(model.config())
    if not used.startswith(wanted):
        raise DataError(
            f"{data_root / 'conditions'}: text features from {used} (preprocess.json), but"
            f" model.checkpoint={_checkpoint(model)} ({model_family(model.config())}) reads {wanted}'s: re-encode the"
            f" captions: python preprocess.py encoders=ltx2 encoders.checkpoint={_checkpoint(model)}"
            f" encoders.text_encoder_path=<a local {wanted} directory> ..."
        )


def _hint(needs: InputNeeds) -> str:
    """LTX-2.3 stores video and audio text features of different widths: name both knobs."""
    video, audio = needs.text_widths
    if video == audio:
        return ""
    return f" (an LTX-2.3-style checkpoint: model.caption_channels={video} model.audio_caption_channels={audio})"


def _checkpoint(model: ModelSpec) -> Path | None:
    return getattr(model, "path", None)


def _model_source(model: ModelSpec) -> str:
    return f"model.checkpoint={_checkpoint(model)}" if _checkpoint(model) else "the model"
