"""Caption encoders: a small deterministic one of ours (the default), and LTX-2's Gemma path.

Both return what ``conditions/`` holds (docs/data.md): the text features *before* the transformer's embeddings
connectors, padded to a fixed token count, with the attention mask.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.preprocess.encoders import loading, parse_dtype, resolve_device
from ltxtune.errors import ConfigError, DataError, check_range
from ltxtune.ltx_core_api import (
    built_gemma_size,
    check_gemma_processor,
    check_transformers,
    gemma_encoder_builder,
    gemma_family,
    gemma_hidden_states,
    gemma_kinds,
    gemma_name,
    gemma_needed_files,
    gemma_weight_files,
    packed_text_encoder,
    text_processor_builder,
)


@dataclass(frozen=True)
class TextFeatures:
    """One caption's ``conditions/`` entry: features ``[L, D]`` and mask ``[L]`` (int64, 1 = token)."""

    video: Tensor
    audio: Tensor
    mask: Tensor

    def to_file(self) -> dict[str, Tensor]:
        return {
            "video_prompt_embeds": self.video,
            "audio_prompt_embeds": self.audio,
            "prompt_attention_mask": self.mask,
        }


class HashTextEncoder:
    """Hashed words -> fixed random embeddings, plus a small position signal; left-padded like Gemma.

    Deterministic across processes and machines (blake2b, not Python's salted ``hash``): the same caption
    always gives the same features, and captions that share words share feature rows, which is all the tiny
    transformer needs to learn a caption-dependent mapping. ``dim`` must equal ``model.caption_channels``.
    Audio features are the video features, as LTX-2's first feature extractor (V1) returns them.
    """

    def __init__(self, dim: int = 32, max_tokens: int = 32, vocab_size: int = 8192, seed: int = 0) -> None:
        for key, value in (("dim", dim), ("max_tokens", max_tokens), ("vocab_size", vocab_size)):
            check_range(key, value, 1)
        self.dim, self.max_tokens, self.vocab_size, self.seed = dim, max_tokens, vocab_size, seed
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(vocab_size, dim, generator=g)
        pos = torch.arange(max_tokens).view(-1, 1) / max_tokens
        freq = torch.arange(1, dim + 1).view(1, -1)
        self.position = 0.1 * torch.sin(math.pi * pos * freq)

    def tokens(self, caption: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", caption.lower())[: self.max_tokens]
        return [
            int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") % self.vocab_size
            for w in words
        ]

    def encode(self, caption: str) -> TextFeatures:
        ids = self.tokens(caption)
        n, pad = len(ids), self.max_tokens - len(ids)
        features = torch.zeros(self.max_tokens, self.dim)
        features[pad:] = self.table[ids] + self.position[:n]
        mask = torch.zeros(self.max_tokens, dtype=torch.long)
        mask[pad:] = 1
        return TextFeatures(features, features.clone(), mask)

    def describe(self) -> dict[str, Any]:
        return {"class": "HashTextEncoder", "dim": self.dim, "max_tokens": self.max_tokens, "seed": self.seed}


class GemmaText:
    """LTX-2's text path: Gemma hidden states -> the checkpoint's feature extractor (no connectors). Gemma 3 for
    LTX-2 and LTX-2.3; ltx-core 1.2 also loads LTX-2.5's Gemma 4 (``ltxtune.ltx_core_api`` holds the differences).

    Loaded through ltx-core's loader exactly as the reference trainer does. Needs the LTX-2 checkpoint (for
    the feature extractor) and a local Gemma directory; features are stored in ``dtype`` (bfloat16 keeps a
    1,024-token caption at about 7.5 MiB). ltx-core 1.0.0 builds the configuration of Gemma 3 12B (it reads
    no ``config.json``): a directory whose ``config.json`` says otherwise is refused before anything loads;
    ltx-core 1.2 builds what the directory's ``config.json`` says, and also reads LTX-2.5's split release, whose
    ``gemma_root`` is the packed text encoder file (Gemma with the projection; ``checkpoint`` the transformer).
    """

    def __init__(self, checkpoint: str, gemma_root: str, device: str = "auto", dtype: str = "bfloat16") -> None:
        if not Path(checkpoint).is_file():
            raise ConfigError("checkpoint", checkpoint, "the LTX-2 .safetensors file")
        if not (Path(gemma_root).is_dir() or packed_text_encoder(gemma_root)):
            packed = " or a split release's packed text encoder (.safetensors)" if built_gemma_size() is None else ""
            raise ConfigError(
                "text_encoder_path",
                gemma_root,
                f"a local {gemma_kinds()} directory (model*.safetensors, tokenizer){packed}",
            )
        check_transformers()
        weights = gemma_files(gemma_root)
        check_gemma_config(gemma_root, weights[0].parent / "config.json")
        check_gemma_processor(gemma_root)
        self.checkpoint, self.gemma_root = checkpoint, gemma_root
        self.device, self.dtype = resolve_device(device), parse_dtype(dtype)
        # The small feature extractor first: a checkpoint without it is refused before Gemma's minutes of loading.
        self.processor = load_feature_extractor(checkpoint, gemma_root, self.device, self.dtype)
        size = sum(p.stat().st_size for p in weights)
        name = gemma_name(gemma_root)
        with loading(name, gemma_root, f" ({len(weights)} files, {size / 2**30:.1f} GiB) onto {self.device}"):
            self.encoder = gemma_encoder_builder(gemma_root, weights).build(device=self.device, dtype=self.dtype)
        if missing := meta_tensors(self.encoder):
            raise DataError(
                f"{gemma_root}: no Gemma weights for {len(missing)} tensors (first: {missing[0]}); ltx-core reads a "
                f"{name} release as published (keys language_model.model.*, vision_tower.*, multi_modal_projector.*)"
            )

    @torch.inference_mode()
    def encode(self, caption: str) -> TextFeatures:
        hidden, mask = gemma_hidden_states(self.encoder, caption)
        video, audio = self.processor.feature_extractor(hidden, mask, "left")
        audio = video if audio is None else audio
        return TextFeatures(video[0].cpu().contiguous(), audio[0].cpu().contiguous(), mask[0].long().cpu())

    def describe(self) -> dict[str, Any]:
        return {
            "class": "GemmaText",
            "checkpoint": self.checkpoint,
            "gemma_root": self.gemma_root,
            "gemma": gemma_family(self.gemma_root),
        }


def load_feature_extractor(checkpoint: str, gemma_root: str, device: torch.device, dtype: torch.dtype) -> Any:
    """ltx-core's embeddings processor from ``checkpoint``, for its feature extractor; a file without one, or
    with one sized for another Gemma than ``gemma_root``, is refused naming it."""
    builder = text_processor_builder(checkpoint, gemma_root)
    with loading("the text feature extractor", checkpoint):
        try:
            processor = builder.build(device=device, dtype=dtype)
        except RuntimeError as exc:  # a projection sized for another Gemma: load_state_dict's size mismatch
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            detail = next((line for line in lines if line.startswith("size mismatch")), lines[0] if lines else "")
            raise DataError(f"{checkpoint}: its text feature extractor does not fit {gemma_root}: {detail}") from None
        except ValueError as exc:  # ltx-core 1.2: the checkpoint was trained on another Gemma than this one
            raise DataError(
                f"{checkpoint}: {exc} (encoders.text_encoder_path: the Gemma this checkpoint was trained with;"
                " LTX-2.5's is its own Gemma 4, LTX-2 and LTX-2.3's Gemma 3)"
            ) from None
    if missing := meta_tensors(processor.feature_extractor):
        raise DataError(
            f"{checkpoint}: no text feature extractor (text_embedding_projection.*, {len(missing)} tensors); "
            "give the LTX-2 checkpoint that holds it (a split release: its connectors file; LTX-2.5's: its packed "
            "text encoder .safetensors as encoders.text_encoder_path)"
        )
    return processor


def gemma_files(gemma_root: str) -> list[Path]:
    """The weight files of the Gemma directory (or the packed text encoder itself); a directory without them, or
    without the tokenizer or processor files the installed ltx-core loads, is refused naming what is missing."""
    if packed_text_encoder(gemma_root):  # its Hugging Face files are inside it
        return gemma_weight_files(gemma_root)
    root = Path(gemma_root)
    for pattern in gemma_needed_files():
        if next(root.rglob(pattern), None) is None:
            raise ConfigError("text_encoder_path", gemma_root, f"a {gemma_kinds()} directory: it has no {pattern}")
    return gemma_weight_files(gemma_root)


def check_gemma_config(gemma_root: str, path: Path) -> None:
    """Refuse a Gemma whose ``config.json`` (``path``, beside the weights) differs in size from what ltx-core
    builds (ltx-core 1.0: Gemma 3 12B, reading no ``config.json``); without one, or with an ltx-core that builds
    the directory's own configuration, there is nothing to check."""
    built = built_gemma_size()
    if built is None or not path.is_file():
        return
    text = json.loads(path.read_text()).get("text_config", {})
    given = (text.get("hidden_size"), text.get("num_hidden_layers"))
    if given != built:
        raise ConfigError(
            "text_encoder_path",
            gemma_root,
            f"Gemma 3 with hidden size {built[0]} and {built[1]} layers, as ltx-core builds "
            f"it (gemma-3-12b-it); this one has {given[0]} and {given[1]} ({path})",
        )


def meta_tensors(module: torch.nn.Module) -> list[str]:
    """Tensors ltx-core's loader left on the meta device: it only warns when a file lacks their weights."""
    return [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
