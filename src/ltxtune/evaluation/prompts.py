"""The user's validation prompts: text, optionally with an image, a video or an audio file, encoded once.

``validation_videos.prompts`` lists them. Each becomes a sample with the roles the strategy reads, built on a
held-out sample as its template (the clip's size and length, any mask it needs; a prompt's own ``width``,
``height`` and ``frames`` resize it, see ``ltxtune.evaluation.clip_size``): the text features come from
the configured text encoder, the image from the video VAE encoder as the clip's first latent frame, the video
as the IC-LoRA reference (a strategy that reads one, whatever its directory) or as the clip itself (extension:
its given frames come from it), the audio likewise as the audio reference or the audio clip. Nothing of the
held-out sample's own media stays.

What is given is what the prompt's media supply, read from the strategy's declaration (``givens()``): a
condition the prompt has the media for is always given, one it lacks is left out (the whole clip is
generated), and a prompt that lacks a part the strategy always gives, or brings media the strategy has no use
for, is refused before training (``check_prompts``), as is a file that cannot be decoded. A strategy that
declares nothing is sampled with its conditions drawn as for a held-out sample. The encoders are built, used
and freed before training; the encoded prompts are cached in the run directory (``validation_prompts.pt``),
keyed by what they were encoded from: the prompts, their media files, the template sample and the encoders'
config (any change encodes them again).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data import legacy
from ltxtune.data.batch import TEXT_MASK_KEY, Batch, Clip, TextEncoder, TextFeatures
from ltxtune.data.dataset import load_sample_file
from ltxtune.data.needs import DataNeeds
from ltxtune.data.preprocess.media import MediaError, read_audio, read_frames
from ltxtune.data.preprocess.pipeline import Encoders
from ltxtune.data.preprocess.pipeline import TextEncoder as PromptEncoder
from ltxtune.errors import ConfigError, DataError
from ltxtune.evaluation.clip_size import SIZE_KEYS, check_size, resized
from ltxtune.ranks import is_main_rank
from ltxtune.strategies.base import Given, TrainingStrategy

CACHE_FILE = "validation_prompts.pt"
_MEDIA = ("image", "video", "audio")
_NAMED = {"image": "an image", "video": "a video", "audio": "an audio file"}


@dataclass(frozen=True)
class Prompt:
    """A validation prompt: its text, its media files, and its clip's size in pixels (``None``: the held-out
    template sample's)."""

    text: str
    image: str | None = None
    video: str | None = None
    audio: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None

    def media(self) -> dict[str, str]:
        """The media it gives, ``{"image": path, ...}``."""
        return {media: path for media in _MEDIA if (path := getattr(self, media)) is not None}


def parse_prompts(entries: Sequence[Any]) -> list[Prompt]:
    """``["a prompt", {"text": ..., "image": ..., "width": ...}, ...]`` -> prompts; a bad entry, a missing file
    or a size off the model's grid is refused."""
    prompts = []
    allowed = f"a text prompt, or {{text: ..., image|video|audio: <file>, {'|'.join(SIZE_KEYS)}: <pixels>}}"
    for i, entry in enumerate(entries or []):
        key = f"prompts[{i}]"
        if isinstance(entry, str):
            entry = {"text": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ConfigError(key, entry, allowed)
        if unknown := sorted(set(entry) - {"text", *_MEDIA, *SIZE_KEYS}):
            raise ConfigError(f"{key}.{unknown[0]}", entry[unknown[0]], f"one of text, {', '.join(_MEDIA + SIZE_KEYS)}")
        for media in _MEDIA:
            if (path := entry.get(media)) is not None and not Path(path).expanduser().is_file():
                raise ConfigError(f"{key}.{media}", path, "an existing file")
        media = {m: str(entry[m]) for m in _MEDIA if entry.get(m) is not None}
        size = {k: check_size(f"{key}.{k}", k, entry.get(k), entry["text"]) for k in SIZE_KEYS}
        prompts.append(Prompt(entry["text"], **media, **size))
    return prompts


def fingerprint(*parts: Any) -> str:
    """A sha256 of plain values and tensors (their dtype, shape and bytes): what a cache was made from."""
    digest = hashlib.sha256()

    def add(value: Any) -> None:
        if isinstance(value, Tensor):
            flat = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, Mapping):
            digest.update(b"{")
            for key in sorted(value, key=str):
                digest.update(f"{key}:".encode())
                add(value[key])
            digest.update(b"}")
        elif isinstance(value, list | tuple):
            digest.update(b"[")
            for item in value:
                add(item)
            digest.update(b"]")
        else:
            digest.update(json.dumps(value, default=str).encode() + b";")

    for part in parts:
        add(part)
    return digest.hexdigest()


def media_stamps(prompts: list[Prompt]) -> list[list[Any]]:
    """Each media file's path, size and modification time: a file replaced under the same name counts."""
    stamps = []
    for prompt in prompts:
        for media in _MEDIA:
            if (name := getattr(prompt, media)) is not None:
                stat = Path(name).expanduser().stat()
                stamps.append([name, stat.st_size, stat.st_mtime_ns])
    return stamps


def encode_prompts(
    prompts: list[Prompt],
    template: Batch,
    encoders: Callable[[], Encoders],
    run_dir: Path,
    encoders_config: Mapping[str, Any] | None = None,
) -> list[Batch]:
    """One single-sample batch per prompt, built on ``template`` (a held-out sample); cached in ``run_dir``
    under a key of everything they were built from (``encoders_config``: the encoders' node)."""
    cache = run_dir / CACHE_FILE
    wanted = [asdict(p) for p in prompts]
    template = template.to(torch.device("cpu"))
    key = fingerprint(wanted, media_stamps(prompts), template.to_dict(), plain(encoders_config))
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("encoded_from") == key:
            return [Batch.from_dict(sources) for sources in stored["sources"]]
        print(f"validation prompts: {cache} was encoded for other prompts or settings: encoding again", flush=True)
    built = encoders()  # the text encoder and the VAE encoders, loaded now and freed below
    try:
        batches = [prompt_batch(p, i, template, built) for i, p in enumerate(prompts)]
    finally:
        del built
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"prompts": wanted, "encoded_from": key, "sources": [batch.to_dict() for batch in batches]}, cache)
    return batches


def media_roles(needs: DataNeeds) -> dict[str, str]:
    """The batch role each prompt medium fills for a strategy reading ``needs``: the image the clip's first
    frame, the video the reference when the strategy reads one (else the clip), the audio likewise."""
    roles = {}
    if needs.video_latents is not None:
        roles["image"] = "video_latents"
    if needs.reference_latents is not None or needs.video_latents is not None:
        roles["video"] = "reference_latents" if needs.reference_latents is not None else "video_latents"
    if needs.reference_audio_latents is not None or needs.audio_latents is not None:
        roles["audio"] = "reference_audio_latents" if needs.reference_audio_latents is not None else "audio_latents"
    return roles


def suppliers(given: Given, roles: Mapping[str, str]) -> list[str]:
    """The media that supply ``given``: those filling its role (an image only a first frame)."""
    return [media for media, role in roles.items() if role == given.role and (media != "image" or given.one_frame)]


def supplied(prompt: Prompt, givens: Sequence[Given], needs: DataNeeds) -> set[str]:
    """The keys of the ``givens`` that the prompt's media supply."""
    roles, media = media_roles(needs), prompt.media()
    return {given.key for given in givens if any(m in media for m in suppliers(given, roles))}


def check_prompts(prompts: Sequence[Prompt], strategy: TrainingStrategy) -> None:
    """Refuse, before training, prompts that ``strategy`` (the training strategy, whose probabilities say what
    it learnt to do without) cannot render as asked, and media files that cannot be decoded.

    Raises ``ConfigError`` (keys ``prompts[i]``, ``prompts[i].<media>``) or ``DataError`` naming the file.
    """
    name, needs, givens = type(strategy).__name__, strategy.data_needs(), strategy.givens()
    roles = media_roles(needs)
    for i, prompt in enumerate(prompts):
        key, media = f"prompts[{i}]", prompt.media()
        for medium, path in media.items():
            if medium not in roles:
                track = "has no audio track" if medium == "audio" else "renders no video"
                raise ConfigError(f"{key}.{medium}", path, f"none: strategy {name} {track}")
        for axis in ("width", "height"):
            if needs.video_latents is None and (value := getattr(prompt, axis)) is not None:
                allowed = f"none: strategy {name} renders no video (frames sets how long its audio lasts)"
                raise ConfigError(f"{key}.{axis}", value, allowed)
        if givens is not None:
            check_givens(prompt, key, name, givens, roles)
    for i, prompt in enumerate(prompts):
        for medium, path in prompt.media().items():
            probe_media(Path(path).expanduser(), i, medium)


def check_sizes(prompts: Sequence[Prompt], sample: Batch, strategy: TrainingStrategy) -> None:
    """Each prompt that asks for its own size, applied to ``sample`` (one sample of the data, shaped as the
    template will be) and prepared once by ``strategy`` as the prompt is rendered with it: a size its IC-LoRA
    reference cannot follow, or one the strategy's shape-dependent settings do not fit (a temporal boundary
    past the clip's latent frames), raises ``ConfigError`` (key ``prompts[i]`` or ``prompts[i].<size key>``)."""
    name, needs, givens = type(strategy).__name__, strategy.data_needs(), strategy.givens()
    for i, prompt in enumerate(prompts):
        asked = {k: v for k in SIZE_KEYS if (v := getattr(prompt, k)) is not None}
        if not asked:
            continue
        sized = resized(sample, f"prompts[{i}]", prompt.width, prompt.height, prompt.frames)
        rendering = strategy if givens is None else strategy.with_givens(supplied(prompt, givens, needs))
        try:
            rendering.check_data(sized)
        except ConfigError as exc:
            allowed = f"a size strategy {name} can render with its settings, not this one: {exc}"
            raise ConfigError(f"prompts[{i}]", asked, allowed) from None


def check_givens(prompt: Prompt, key: str, name: str, givens: Sequence[Given], roles: Mapping[str, str]) -> None:
    """The prompt supplies every part the strategy always gives, and each of its media supplies one."""
    media = prompt.media()
    for given in givens:
        sources = suppliers(given, roles)
        if given.probability >= 1 and not any(m in media for m in sources):
            setting = f"; or train with strategy.{given.setting} below 1 to do without" if given.setting else ""
            entries = " or ".join(f"{{text: ..., {m}: <file>}}" for m in sources) or "media it cannot take"
            allowed = f"{entries}: strategy {name} always gives {given.what}{setting}"
            raise ConfigError(key, prompt.text, allowed)
    gives = "; ".join(f"{g.what} from {' or '.join(suppliers(g, roles)) or 'none'}" for g in givens)
    for medium, path in media.items():
        if not any(medium in suppliers(given, roles) for given in givens):
            what = f"it gives {gives}" if givens else "it generates everything from the text"
            allowed = f"none: strategy {name} takes nothing from {_NAMED[medium]} ({what})"
            raise ConfigError(f"{key}.{medium}", path, allowed)
    if "image" in media and roles.get("video") == "video_latents" and "video" in media:
        raise ConfigError(f"{key}.image", media["image"], "none beside a video: the video gives the whole clip")


def probe_media(path: Path, index: int, medium: str) -> None:
    """Decode the start of a prompt's file; one that cannot be decoded raises ``DataError`` naming it."""
    try:
        if medium == "audio":
            if read_audio(path, 0.1, 16000) is None:
                raise MediaError("no audio stream")
        else:
            read_frames(path, 1, 32, 32)
    except MediaError as exc:
        raise DataError(f"validation prompt {index}: {path}: cannot be read as {medium}: {exc}") from None


def plain(node: Mapping[str, Any] | None) -> Any:
    """A config node as plain containers (an OmegaConf node resolved), for a cache key."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


NEGATIVE_CACHE_FILE = "validation_negative_prompt.pt"


def encode_negative(
    text: str, text_encoder: Callable[[], PromptEncoder], run_dir: Path, encoder_config: Any = None
) -> dict[str, Tensor]:
    """The negative prompt's text features ``{key: [1, L, D]}``, encoded once and cached in ``run_dir`` under
    a key of the text and ``encoder_config`` (the text encoder's node).

    Only the text encoder is built (and freed). Every rank may encode it (each renders under FSDP); the cache
    is written under a temporary name and renamed, so a reader never sees half a file.
    """
    cache = run_dir / NEGATIVE_CACHE_FILE
    key = fingerprint(text, plain(encoder_config))
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored.get("encoded_from") == key:
            return stored["features"]
    encoder = text_encoder()
    try:
        features = {k: v.unsqueeze(0) for k, v in encoder.encode(text).to_file().items()}
    finally:
        del encoder
        gc.collect()
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    torch.save({"text": text, "encoded_from": key, "features": features}, partial)
    partial.replace(cache)
    return features


def prompt_batch(prompt: Prompt, index: int, template: Batch, encoders: Encoders) -> Batch:
    """The template (one held-out sample), at the prompt's size where it asks for one (``clip_size.resized``),
    with the prompt's text and media in their roles: the image as the clip's first latent frame, the video as
    the video reference or else the clip, the audio as the audio reference or else the audio clip. What the
    prompt does not give of a generated clip is zeros."""
    features = encoders.text.encode(prompt.text).to_file()
    text = TextFeatures.from_file({k: v.unsqueeze(0) for k, v in features.items()})
    sized = resized(template, f"prompts[{index}]", prompt.width, prompt.height, prompt.frames)
    batch = replace(sized, names=(f"prompt{index}",), text=text)
    if batch.video_latents is None:
        if prompt.image is not None or prompt.video is not None:
            raise ConfigError(f"prompts[{index}]", asdict(prompt), "no image or video: this strategy renders no video")
    else:
        batch = with_video_media(batch, prompt, index, encoders)
    if batch.audio_latents is not None:
        batch = with_audio_media(batch, prompt, index, encoders)
    return batch


def with_video_media(batch: Batch, prompt: Prompt, index: int, encoders: Encoders) -> Batch:
    """The clip and any reference zeroed (nothing of the template's own stays), then the prompt's image (its
    first latent frame) and video (the reference, or the clip)."""
    clip = torch.zeros_like(batch.video_latents.latents)  # [1, 128, F, H, W]
    _, _, frames, height, width = clip.shape
    if prompt.image is not None:
        image = read_media(prompt, index, "image", 1, 32 * width, 32 * height)
        clip[0, :, :1] = encoders.video.encode(image)[:, :1]
    reference = batch.reference_latents
    if reference is not None:
        batch = replace(batch, reference_latents=replace(reference, latents=torch.zeros_like(reference.latents)))
    if prompt.video is not None and reference is not None:
        _, _, rf, rh, rw = reference.latents.shape
        video = read_media(prompt, index, "video", 8 * (rf - 1) + 1, 32 * rw, 32 * rh)
        batch = replace(batch, reference_latents=replace(reference, latents=encoders.video.encode(video)[None]))
    elif prompt.video is not None:
        video = read_media(prompt, index, "video", 8 * (frames - 1) + 1, 32 * width, 32 * height)
        clip = encoders.video.encode(video)[None]
    return replace(batch, video_latents=replace(batch.video_latents, latents=clip))


def with_audio_media(batch: Batch, prompt: Prompt, index: int, encoders: Encoders) -> Batch:
    """The audio clip and any audio reference zeroed, then the prompt's audio as the audio reference when the
    strategy reads one, else as the audio clip; each keeps its length ``[1, 8, T, 16]``."""
    clips = {role: getattr(batch, role) for role in ("audio_latents", "reference_audio_latents")}
    changed = {role: replace(c, latents=torch.zeros_like(c.latents)) for role, c in clips.items() if c is not None}
    if prompt.audio is not None:
        if encoders.audio is None:
            raise ConfigError(f"prompts[{index}].audio", prompt.audio, "none: the encoders option has no audio encoder")
        role = "reference_audio_latents" if batch.reference_audio_latents is not None else "audio_latents"
        clip: Clip = changed[role]
        changed[role] = replace(clip, latents=read_audio_latents(prompt, index, encoders, clip.latents.shape[2]))
    return replace(batch, **changed)


def read_audio_latents(prompt: Prompt, index: int, encoders: Encoders, steps: int) -> Tensor:
    """``steps`` latent steps ``[1, 8, T, 16]`` of the prompt's audio file, encoded."""
    seconds = steps / encoders.audio.latents_per_second
    try:
        wave = read_audio(Path(prompt.audio).expanduser(), seconds, encoders.audio.sample_rate)
    except MediaError as exc:
        raise DataError(f"validation prompt {index}: {prompt.audio}: {exc}") from exc
    if wave is None:
        raise DataError(f"validation prompt {index}: {prompt.audio} has no audio stream")
    return encoders.audio.encode(wave, seconds)[None]


def read_media(prompt: Prompt, index: int, media: str, frames: int, width: int, height: int) -> Tensor:
    """``frames`` frames of the prompt's ``media`` file, resized and centre-cropped to the clip's size."""
    path = Path(getattr(prompt, media)).expanduser()
    try:
        return read_frames(path, frames, width, height)
    except MediaError as exc:  # TooShort included: a video with fewer frames than the clip needs
        raise DataError(
            f"validation prompt {index}: {path}: {exc} (the clip is {frames} frames of {width}x{height})"
        ) from None


class Prompts:
    """The user's prompts as samples, and the negative prompt's text features; each encoded once, on first use.

    Args:
        prompts: the user's prompts (``parse_prompts``).
        encoders: the ``encoders`` group's node (``video``, ``audio``, ``text``: ``_target_`` nodes), built to
            encode and freed.
        negative_prompt: the negative prompt as a text; ``negative_conditions``: a ``conditions/``-layout file
            of its stored features instead (it wins over the text); neither: the empty prompt.
        run_dir: where the encoded prompts are cached (``CACHE_FILE``, ``NEGATIVE_CACHE_FILE``).
    """

    def __init__(
        self,
        prompts: Sequence[Prompt],
        encoders: Mapping[str, Any] | None,
        negative_prompt: str | None,
        negative_conditions: str | None,
        run_dir: Path,
    ) -> None:
        self.prompts, self.encoders = list(prompts), encoders
        self.negative_prompt, self.negative_conditions, self.run_dir = negative_prompt, negative_conditions, run_dir
        self._batches: list[Batch] | None = None
        self._negative: dict[str, Tensor] | None = None  # the negative prompt's stored features [1, L, D]
        self._warned = False  # said once that the negative prompt cannot be encoded for this model

    def prepare(self, template: Batch, negative: bool) -> None:
        """Encode the prompts (on ``template``, a held-out sample) and, when ``negative`` (the sampler guides),
        the negative prompt now, with one load of the encoders, and free them: called before the transformer is
        built, so that a real text encoder's memory is gone by then."""
        loaded: list[Encoders] = []

        def encoders() -> Encoders:
            loaded.append(self.build_encoders())
            return loaded[0]

        def text_encoder() -> PromptEncoder:  # the prompts' text encoder when they loaded one, else it alone
            return loaded[0].text if loaded else self.build_text_encoder()

        try:
            if self.prompts and self._batches is None:
                self._batches = encode_prompts(self.prompts, template, encoders, self.run_dir, self.encoders)
            if negative and self.negative_prompt is not None and self._negative is None:
                text_node = (self.encoders or {}).get("text")
                self._negative = encode_negative(self.negative_prompt, text_encoder, self.run_dir, text_node)
        finally:
            loaded.clear()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def batches(self, template: Batch) -> list[Batch]:
        """The prompts as samples with ``template``'s roles (one held-out sample), on its device."""
        if not self.prompts:
            return []
        if self._batches is None:
            self._batches = encode_prompts(self.prompts, template, self.build_encoders, self.run_dir, self.encoders)
        return [batch.to(template.device) for batch in self._batches]

    def strategy(self, index: int, strategy: TrainingStrategy) -> TrainingStrategy:
        """``strategy`` as prompt ``index`` is rendered with: what its media supply given, the rest generated."""
        givens = strategy.givens()
        if givens is None:  # not declared: its conditions draw as for a held-out sample
            return strategy
        return strategy.with_givens(supplied(self.prompts[index], givens, strategy.data_needs()))

    def negative(self, text: TextFeatures, encode_text: TextEncoder) -> TextFeatures:
        """The negative prompt's features ``[1, L, D]`` through the model's text path ``encode_text``, with the
        streams of ``text`` (a sample's stored features): ``negative_conditions`` when given, else
        ``negative_prompt`` encoded, else the empty prompt. A text encoder whose features do not fit the
        model's (the tiny one beside a real checkpoint) cannot encode it: the empty prompt, with a warning."""
        device, keys = text.attention_mask.device, text.to_file().keys()
        if self.negative_conditions is not None:
            stored = read_negative_conditions(Path(self.negative_conditions).expanduser(), text)
            raw = {k: stored[k].unsqueeze(0).to(device) for k in keys}
        elif self.negative_prompt is not None and (encoded := self.encoded_negative(text)) is not None:
            raw = {k: encoded[k].to(device) for k in keys}
        else:
            raw = empty_prompt(text).to_file()
        return TextFeatures.from_file(encode_text(raw))

    def encoded_negative(self, text: TextFeatures) -> dict[str, Tensor] | None:
        """The encoded negative prompt ``{key: [1, L, D]}`` as long as the sample's features ``text`` (both are
        left-padded: padding added, or cut, at the start), or ``None`` (warned once) when its width is not the
        model's."""
        if self._negative is None:
            text_node = (self.encoders or {}).get("text")
            self._negative = encode_negative(self.negative_prompt, self.build_text_encoder, self.run_dir, text_node)
        width, wanted = self._negative["video_prompt_embeds"].shape[-1], text.video_embeds.shape[-1]
        if width != wanted:
            if not self._warned and is_main_rank():
                print(
                    f"warning: validation_videos.negative_prompt: the encoders' text encoder gives {width}-wide "
                    f"features and the model takes {wanted}: the clips use the empty prompt (to guide against it as "
                    "inference does: encoders@validation_videos.encoders=ltx2 with its checkpoint and "
                    "text_encoder_path, or validation_videos.negative_conditions=<its features>)",
                    flush=True,
                )
            self._warned = True
            return None
        return {k: left_padded(v, text.attention_mask.shape[1]) for k, v in self._negative.items()}

    def build_encoders(self) -> Encoders:
        """The text, video and audio encoders of the ``encoders`` node (built to encode the prompts)."""
        from hydra.utils import instantiate

        node = self.node("the prompts")
        return Encoders(
            video=instantiate(node["video"]), audio=instantiate(node["audio"]), text=instantiate(node["text"])
        )

    def build_text_encoder(self) -> PromptEncoder:
        """The ``encoders`` node's text encoder alone (the negative prompt needs no VAE)."""
        from hydra.utils import instantiate

        return instantiate(self.node("the negative prompt")["text"])

    def node(self, what: str) -> Mapping[str, Any]:
        if self.encoders is None:
            raise ConfigError("encoders", None, f"an encoders group option (tiny, ltx2) to encode {what} with")
        return self.encoders


def left_padded(features: Tensor, length: int) -> Tensor:
    """``features [1, L, ...]`` (left-padded, as the text encoders write them) as ``length`` tokens: zeros added
    at the start, or the first tokens cut (a real checkpoint's text connectors take only their own length)."""
    missing = length - features.shape[1]
    if missing <= 0:
        return features[:, -length:]
    pad = features.new_zeros(features.shape[0], missing, *features.shape[2:])
    return torch.cat([pad, features], dim=1)


def read_negative_conditions(path: Path, text: TextFeatures) -> dict[str, Tensor]:
    """The negative prompt's stored features in ``path`` (``{key: [L, D]}``, the mask ``[L]``) for samples whose
    text features are ``text`` ``[B, L, D]``; a file that does not hold them (latents, another encoder's
    features, no tensors) raises ``ConfigError`` naming it and what it must hold."""
    key, streams = "validation_videos.negative_conditions", text.to_file()
    widths = ", ".join(f"{k} [L, {v.shape[-1]}]" for k, v in streams.items() if v.dim() == 3)
    allowed = (
        f"a conditions/ file with the negative prompt's text features ({widths} and {TEXT_MASK_KEY} [L], "
        "as preprocess.py writes for a caption), or null"
    )
    try:
        stored = legacy.normalise(path, load_sample_file(path))
    except DataError as exc:
        raise ConfigError(key, str(path), f"{allowed}; {str(exc).removeprefix(f'{path}: ')}") from None
    for name, ours in streams.items():
        found = stored.get(name)
        if not isinstance(found, Tensor):
            held = ", ".join(sorted(stored)) or "nothing"
            raise ConfigError(key, str(path), f"{allowed}; this file has no {name} (it holds {held})")
        if found.dim() != ours.dim() - 1 or found.shape[1:] != ours.shape[2:]:
            raise ConfigError(key, str(path), f"{allowed}; its {name} is {list(found.shape)}")
    return stored


def empty_prompt(text: TextFeatures) -> TextFeatures:
    """Text features of an empty prompt shaped like one sample of ``text``: zero features, every token padding."""
    return TextFeatures.from_file({key: torch.zeros_like(value[:1]) for key, value in text.to_file().items()})
