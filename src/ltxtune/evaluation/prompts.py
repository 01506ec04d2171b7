"""The user's validation prompts: text, optionally with an image, a video or an audio file, encoded once.

``validation_videos.prompts`` lists them. Each becomes a sample in the layout the strategy reads, built on a
held-out sample as its template (the clip's size and length, any mask it needs): the text features come from
the configured text encoder, the image from the video VAE encoder as the clip's first latent frame, the video
as the IC-LoRA reference (a strategy that reads ``reference_latents``) or as the clip itself (extension: its
given frames come from it), the audio as the audio track. The strategy's own conditions then decide what is
given and what is generated, exactly as for a held-out sample. The encoders are built, used and freed before
training; the encoded prompts are cached in the run directory (``validation_prompts.pt``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.batch import Batch
from ltxtune.errors import ConfigError, DataError

CACHE_FILE = "validation_prompts.pt"
_MEDIA = ("image", "video", "audio")
# The batch keys a prompt's media go to (the built-in strategies' names).
CLIP_KEYS = ("latents", "video_latents")
REFERENCE_KEY, AUDIO_KEY = "reference_latents", "audio_latents"


@dataclass(frozen=True)
class Prompt:
    text: str
    image: str | None = None
    video: str | None = None
    audio: str | None = None


def parse_prompts(entries: Sequence[Any]) -> list[Prompt]:
    """``["a prompt", {"text": ..., "image": ...}, ...]`` -> prompts; a bad entry or a missing file is refused."""
    prompts = []
    for i, entry in enumerate(entries or []):
        key = f"prompts[{i}]"
        if isinstance(entry, str):
            entry = {"text": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ConfigError(key, entry, "a text prompt, or {text: ..., image|video|audio: <file>}")
        if unknown := sorted(set(entry) - {"text", *_MEDIA}):
            raise ConfigError(f"{key}.{unknown[0]}", entry[unknown[0]], "one of text, image, video, audio")
        for media in _MEDIA:
            if (path := entry.get(media)) is not None and not Path(path).expanduser().is_file():
                raise ConfigError(f"{key}.{media}", path, "an existing file")
        prompts.append(Prompt(**{k: str(v) if v is not None else None for k, v in entry.items()}))
    return prompts


def encode_prompts(prompts: list[Prompt], template: Batch, encoders: Any, run_dir: Path) -> list[Batch]:
    """One single-sample batch per prompt, built on ``template`` (a held-out sample); cached in ``run_dir``."""
    cache = run_dir / CACHE_FILE
    wanted = [asdict(p) for p in prompts]
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("prompts") == wanted:
            return [as_batch(sources, f"prompt{i}") for i, sources in enumerate(stored["sources"])]
    built = encoders()  # the text encoder and the VAE encoders, loaded now and freed below
    try:
        sources = [prompt_sources(p, i, template, built) for i, p in enumerate(prompts)]
    finally:
        del built
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"prompts": wanted, "sources": sources}, cache)
    return [as_batch(s, f"prompt{i}") for i, s in enumerate(sources)]


NEGATIVE_CACHE_FILE = "validation_negative_prompt.pt"


def encode_negative(text: str, text_encoder: Callable[[], Any], run_dir: Path) -> dict[str, Tensor]:
    """The negative prompt's text features ``{key: [1, L, D]}``, encoded once and cached in ``run_dir``.

    Only the text encoder is built (and freed). Every rank may encode it (each renders under FSDP); the cache
    is written under a temporary name and renamed, so a reader never sees half a file.
    """
    cache = run_dir / NEGATIVE_CACHE_FILE
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("text") == text:
            return stored["features"]
    encoder = text_encoder()
    try:
        features = {k: v.unsqueeze(0) for k, v in encoder.encode(text).to_file().items()}
    finally:
        del encoder
        gc.collect()
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    torch.save({"text": text, "features": features}, partial)
    partial.replace(cache)
    return features


def as_batch(sources: dict[str, dict[str, Any]], name: str) -> Batch:
    return Batch(names=(name,), sources=sources)


def prompt_sources(prompt: Prompt, index: int, template: Batch, encoders: Any) -> dict[str, dict[str, Any]]:
    """The template's sources (one sample, on the CPU) with the prompt's text and media in place."""
    sources = {key: {k: v[:1].cpu() if isinstance(v, Tensor) else v[:1] for k, v in fields.items()}
               for key, fields in template.sources.items()}  # fmt: skip
    features = encoders.text.encode(prompt.text).to_file()
    sources["conditions"] = {k: v.unsqueeze(0) for k, v in features.items()}
    clip_key = next((k for k in CLIP_KEYS if k in sources), None)
    if clip_key is not None:
        clip = sources[clip_key]["latents"]
        sources[clip_key] = {**sources[clip_key], "latents": torch.zeros_like(clip)}
        _, _, frames, height, width = clip.shape
        pixels = (8 * (frames - 1) + 1, 32 * height, 32 * width)
        if prompt.image is not None:
            image = read_media(prompt, index, "image", 1, pixels[2], pixels[1])
            sources[clip_key]["latents"][0, :, :1] = encoders.video.encode(image)[:, :1]
        if prompt.video is not None:
            if REFERENCE_KEY in sources:
                ref = sources[REFERENCE_KEY]["latents"]
                _, _, rf, rh, rw = ref.shape
                video = read_media(prompt, index, "video", 8 * (rf - 1) + 1, 32 * rw, 32 * rh)
                sources[REFERENCE_KEY] = {**sources[REFERENCE_KEY], "latents": encoders.video.encode(video)[None]}
            else:
                video = read_media(prompt, index, "video", pixels[0], pixels[2], pixels[1])
                sources[clip_key]["latents"] = encoders.video.encode(video)[None]
    elif prompt.image is not None or prompt.video is not None:
        raise ConfigError(f"prompts[{index}]", asdict(prompt), "no image or video: this strategy renders no video")
    if AUDIO_KEY in sources:
        steps = sources[AUDIO_KEY]["latents"].shape[2]
        seconds = steps / encoders.audio.latents_per_second if encoders.audio is not None else 0.0
        if prompt.audio is not None and encoders.audio is not None:
            from ltxtune.data.preprocess.media import MediaError, read_audio

            try:
                wave = read_audio(Path(prompt.audio).expanduser(), seconds, encoders.audio.sample_rate)
            except MediaError as exc:
                raise DataError(f"validation prompt {index}: {prompt.audio}: {exc}") from exc
            if wave is None:
                raise DataError(f"validation prompt {index}: {prompt.audio} has no audio stream")
            latents = encoders.audio.encode(wave, seconds)[None]
        else:
            latents = torch.zeros_like(sources[AUDIO_KEY]["latents"])
        sources[AUDIO_KEY] = {**sources[AUDIO_KEY], "latents": latents}
    return sources


def read_media(prompt: Prompt, index: int, media: str, frames: int, width: int, height: int) -> Tensor:
    """``frames`` frames of the prompt's ``media`` file, resized and centre-cropped to the clip's size."""
    from ltxtune.data.preprocess.media import MediaError, read_frames

    path = Path(getattr(prompt, media)).expanduser()
    try:
        return read_frames(path, frames, width, height)
    except MediaError as exc:  # TooShort included: a video with fewer frames than the clip needs
        raise DataError(
            f"validation prompt {index}: {path}: {exc} (the clip is {frames} frames of {width}x{height})"
        ) from None
