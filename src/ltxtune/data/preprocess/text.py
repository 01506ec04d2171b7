"""Caption encoders: a small deterministic one of ours (the default), and LTX-2's Gemma path.

Both return what ``conditions/`` holds (docs/data.md): the text features *before* the transformer's embeddings
connectors, padded to a fixed token count, with the attention mask.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ltxtune.data.preprocess.encoders import parse_dtype, resolve_device
from ltxtune.errors import ConfigError, check_range
from ltxtune.ltx_core_api import gemma_family, gemma_hidden_states, load_gemma_text


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
    """LTX-2's text path: Gemma 3 hidden states -> the checkpoint's feature extractor (no connectors).

    Loaded through ltx-core's loader exactly as the reference trainer does. Needs the LTX-2 checkpoint (for
    the feature extractor) and a local Gemma directory; features are stored in ``dtype`` (bfloat16 keeps a
    1,024-token caption at about 7.5 MiB). Untested here: no weights can be downloaded on this machine.
    """

    def __init__(self, checkpoint: str, gemma_root: str, device: str = "auto", dtype: str = "bfloat16") -> None:
        if not Path(checkpoint).is_file():
            raise ConfigError("checkpoint", checkpoint, "the LTX-2 .safetensors file")
        if not Path(gemma_root).is_dir():
            raise ConfigError(
                "text_encoder_path", gemma_root, "a local Gemma 3 directory (model*.safetensors, tokenizer)"
            )
        self.checkpoint, self.gemma_root = checkpoint, gemma_root
        self.device, self.dtype = resolve_device(device), parse_dtype(dtype)
        self.encoder, self.processor = load_gemma_text(gemma_root, checkpoint, self.device, self.dtype)

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
