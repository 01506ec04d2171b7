"""A tiny random Gemma 3 in the Hugging Face directory layout that ltx-core's Gemma loader reads, for tests and tries.

``write_tiny_gemma(directory)`` writes what a Gemma 3 release holds and ltx-core 1.0 and 1.2 open:
``config.json``, the weights as two ``model-*.safetensors`` shards with their index (keys in the release's
layout: ``language_model.model.*``, ``vision_tower.vision_model.*``, ``multi_modal_projector.*``, no
``lm_head``), a real SentencePiece ``tokenizer.model`` (a unigram model) with the matching ``tokenizer.json``,
``tokenizer_config.json`` and ``special_tokens_map.json``, the image processor's ``preprocessor_config.json`` and
the processor's ``processor_config.json``. The files are the same with transformers 4 and 5 (the random weights
are not: the two initialize in another order). Everything is made here from a seed (a few hundred kB): nothing
is downloaded. ltx-core reads ``tokenizer.json`` as it is; transformers 5's own ``GemmaTokenizer`` class reads
BPE models only, so ``AutoTokenizer`` under transformers 5 splits this one's words into letters.

Its hidden size is the tiny transformer's ``caption_channels`` (32) and it has ``TINY_GEMMA_LAYERS`` layers, so
the feature extractor that ``write_tiny_checkpoint`` stores (``text_embedding_projection.*``) takes its
``TINY_GEMMA_LAYERS + 1`` stacked hidden states.

ltx-core 1.0.0 builds Gemma 3 12B's configuration whatever the directory holds (``GEMMA3_CONFIG_FOR_LTX``, read
where the encoder and the text feature extractor are built); ``substitute_gemma_config(directory)`` puts this
directory's configuration there instead (``gemma_config_from(directory)``: for as long as it is open); with
ltx-core 1.2, which builds what ``config.json`` says, both change nothing. Everything
else is ltx-core's own loading, as ltxtune's ``GemmaText`` and ltx-pipelines run it.

``write_tiny_gemma4(directory)`` writes LTX-2.5's text encoder in small: a Gemma 4 "unified" (``model_type``
``gemma4_unified``) as transformers 5 saves one (``config.json`` with the ``gemma_version`` that the tiny LTX-2.5
checkpoint's ``gemma_source_checkpoint`` names, ``model-*.safetensors`` under ``model.language_model.*``,
``model.vision_embedder.*``, ``model.embed_vision.*``, ``model.embed_audio.*``; ``tokenizer.json``,
``tokenizer_config.json`` and ``processor_config.json``). ltx-core 1.2 builds it from that ``config.json`` and
checks the ``gemma_version``; it needs transformers 5 (and torchvision, which its processor imports).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ltxtune.ltx_core_api import built_gemma_size

TINY_GEMMA_LAYERS = 2
# The ``gemma_version`` of the tiny Gemma 4, which the tiny LTX-2.5 checkpoint's ``gemma_source_checkpoint`` names.
TINY_GEMMA4_VERSION = "tiny-gemma-4"
_SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")
_IMAGE = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
_WORDS = (
    "a the and of in on with to is at by from his her its their man woman dog cat car bird red blue green white "
    "black small big slow fast walks runs drives flies sits looks camera street city park river sky sun night day "
    "water tree road house light close up shot wide view moving scene bunny bike disc grey gradient over"
)


def tiny_gemma_config(hidden_size: int = 32, num_layers: int = TINY_GEMMA_LAYERS) -> dict[str, Any]:
    """The tiny Gemma 3's ``config.json``: every field a Gemma 3 release's holds (as transformers 4.51 wrote
    gemma-3-12b-it's; transformers 4 and 5 both read it into their ``Gemma3Config``), at a tiny size."""
    ids = {token: i for i, token in enumerate(vocabulary())}
    heads = 2
    text = {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "cache_implementation": "hybrid",
        "final_logit_softcapping": None,
        "head_dim": hidden_size // heads,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": 2 * hidden_size,
        "max_position_embeddings": 2048,
        "model_type": "gemma3_text",
        "num_attention_heads": heads,
        "num_hidden_layers": num_layers,
        "num_key_value_heads": 1,
        "query_pre_attn_scalar": hidden_size // heads,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000,
        "sliding_window": 64,  # shorter than the 1,024 tokens ltx-core pads to: the local layers see a window
        "sliding_window_pattern": 2,  # one local and one global layer, like the 12B's 5:1 pattern in small
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": len(ids),
    }
    vision = {
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 16,
        "image_size": 28,
        "intermediate_size": 32,
        "layer_norm_eps": 1e-06,
        "model_type": "siglip_vision_model",
        "num_attention_heads": 2,
        "num_channels": 3,
        "num_hidden_layers": 1,
        "patch_size": 14,
        "torch_dtype": "float32",
        "vision_use_head": False,
    }
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "boi_token_index": ids[_IMAGE["boi_token"]],
        "eoi_token_index": ids[_IMAGE["eoi_token"]],
        "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
        "image_token_index": ids[_IMAGE["image_token"]],
        "initializer_range": 0.02,
        "mm_tokens_per_image": 1,  # the 2 x 2 patches pooled to one soft token
        "model_type": "gemma3",
        "text_config": text,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "vision_config": vision,
    }


def vocabulary() -> list[str]:
    """The pieces in id order: Gemma's special tokens, the 256 byte pieces (any text encodes), words, letters."""
    pieces = [*_SPECIAL, *_IMAGE.values()]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["\u2581"] + ["\u2581" + w for w in _WORDS.split()] + list("abcdefghijklmnopqrstuvwxyz0123456789.,")
    return pieces


def write_tiny_gemma(
    directory: Path, hidden_size: int = 32, num_layers: int = TINY_GEMMA_LAYERS, seed: int = 0
) -> Path:
    """Write the tiny Gemma 3 into ``directory`` (created); returns it. ``hidden_size`` must be the tiny
    checkpoint's ``caption_channels`` for LTX-2 (its feature extractor keeps Gemma's width)."""
    from safetensors.torch import save_file
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_gemma_config(hidden_size, num_layers)
    (directory / "config.json").write_text(json.dumps(config, indent=1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(json.loads(json.dumps(config))))
    shards: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in model.state_dict().items():
        name = release_key(key)
        if name is not None:  # the language model in the first shard, the vision tower and projector in the second
            shard = 1 if name.startswith("language_model.") else 2
            shards.setdefault(f"model-{shard:05d}-of-00002.safetensors", {})[name] = value.to(torch.bfloat16)
    index = {"metadata": {}, "weight_map": {}}
    for filename, tensors in shards.items():
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / filename), metadata={"format": "pt"})
        index["weight_map"].update(dict.fromkeys(tensors, filename))
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    write_tokenizer(directory)
    write_image_processor(directory, config["vision_config"]["image_size"], config["mm_tokens_per_image"])
    return directory


def release_key(key: str) -> str | None:
    """A ``Gemma3ForConditionalGeneration`` state-dict key as Gemma 3's release files name it (``None``: not
    stored, as ``lm_head`` is tied to the embeddings). transformers 5 dropped the vision tower's inner
    ``vision_model`` module, which the release's keys keep."""
    for ours, theirs in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.vision_model.", "vision_tower.vision_model."),
        ("model.vision_tower.", "vision_tower.vision_model."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return None


def write_tokenizer(directory: Path) -> None:
    """A SentencePiece unigram model (``tokenizer.model``) and the same tokenizer for ``tokenizers``
    (``tokenizer.json``, which puts ``<bos>`` in front), with Gemma's special tokens and its image tokens, and the
    ``tokenizer_config.json`` and ``special_tokens_map.json`` of Gemma 3's release. Written with ``tokenizers``
    alone: transformers 4 and 5 save a tokenizer in different layouts, and a release is read by both."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    pieces = vocabulary()
    scores = [0.0 if is_special(p) else -math.log(2 + i) for i, p in enumerate(pieces)]
    (directory / "tokenizer.model").write_bytes(sentencepiece_model(pieces, scores))
    tok = Tokenizer(models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=3, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = [*_SPECIAL, *_IMAGE.values()]
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in specials])
    bos = pieces.index("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos>:1 $B:1", special_tokens=[("<bos>", bos)]
    )
    tok.save(str(directory / "tokenizer.json"))
    named = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", **_IMAGE}
    extra = [*_SPECIAL[4:], *_IMAGE.values()]
    added = {
        str(pieces.index(p)): {
            "content": p,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for p in specials
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": extra,
        **named,
        "clean_up_tokenization_spaces": False,
        "extra_special_tokens": dict(_IMAGE),
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "GemmaTokenizer",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=1))
    special_map = {"additional_special_tokens": extra, **named}
    (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=1))


def is_special(piece: str) -> bool:
    return piece.startswith("<") and piece.endswith(">") and len(piece) > 2


def sentencepiece_model(pieces: list[str], scores: list[float]) -> bytes:
    """The serialized SentencePiece ``ModelProto``: a unigram model with byte fallback, ids as in ``pieces``."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    kinds = proto.SentencePiece.Type
    for piece, score in zip(pieces, scores, strict=True):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if piece == "<unk>":
            entry.type = kinds.UNKNOWN
        elif piece.startswith("<0x"):
            entry.type = kinds.BYTE
        elif piece in _SPECIAL:
            entry.type = kinds.CONTROL
        else:
            entry.type = kinds.USER_DEFINED if is_special(piece) else kinds.NORMAL
    spec = proto.trainer_spec
    spec.model_type, spec.vocab_size, spec.byte_fallback = spec.UNIGRAM, len(pieces), True
    spec.pad_id, spec.eos_id, spec.bos_id, spec.unk_id = 0, 1, 2, 3
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    return proto.SerializeToString()


def write_image_processor(directory: Path, image_size: int, tokens_per_image: int) -> None:
    """Gemma 3's image processor settings at the tiny vision tower's size, and the processor's own file (its
    soft tokens per image): ltx-core loads them with the tokenizer."""
    settings = {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": "Gemma3Processor",
        "size": {"height": image_size, "width": image_size},
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": None,
        "resample": 2,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(settings, indent=1))
    processor = {"image_seq_length": tokens_per_image, "processor_class": "Gemma3Processor"}
    (directory / "processor_config.json").write_text(json.dumps(processor, indent=1))


def gemma_config_for_ltx(directory: Path) -> Any:
    """``directory``'s ``config.json`` as ltx-core 1.0's ``Gemma3ConfigData`` (only ``substitute_gemma_config``
    asks for it, where ``ltx_core_api.built_gemma_size`` says ltx-core hard-wires a Gemma: 1.2 has no such class)."""
    from ltx_core.text_encoders.gemma.config import (
        Gemma3ConfigData,
        Gemma3RopeScaling,
        Gemma3TextConfig,
        Gemma3VisionConfig,
    )

    raw = json.loads((Path(directory) / "config.json").read_text())
    text, vision = raw.pop("text_config"), raw.pop("vision_config")
    text["rope_scaling"] = Gemma3RopeScaling(**text["rope_scaling"])
    return Gemma3ConfigData(**raw, text_config=Gemma3TextConfig(**text), vision_config=Gemma3VisionConfig(**vision))


def substitute_gemma_config(directory: Path | str) -> Any:
    """From now on ltx-core builds Gemma (and sizes the text feature extractor) from ``directory``'s
    ``config.json`` instead of the 12B configuration it hard-wires; returns the configuration it replaced
    (``None``, changing nothing, with ltx-core 1.2, which reads ``config.json`` itself)."""
    if built_gemma_size() is None:
        return None
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    replaced = encoder_configurator.GEMMA3_CONFIG_FOR_LTX
    encoder_configurator.GEMMA3_CONFIG_FOR_LTX = gemma_config_for_ltx(Path(directory))
    return replaced


@contextmanager
def gemma_config_from(directory: Path | str) -> Iterator[None]:
    """``substitute_gemma_config`` while open."""
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    replaced = substitute_gemma_config(directory)
    try:
        yield
    finally:
        if replaced is not None:
            encoder_configurator.GEMMA3_CONFIG_FOR_LTX = replaced


# Gemma 4's special tokens, with the image, audio and video placeholders its processor expands.
_GEMMA4_SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
_GEMMA4_MEDIA = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}


def gemma4_vocabulary() -> tuple[list[str], list[tuple[str, str]]]:
    """(pieces in id order, BPE merges): the special tokens, the 256 byte pieces, single characters, and the
    merges that spell each of ``_WORDS`` with its leading space (the word's prefixes are pieces too)."""
    pieces = [*_GEMMA4_SPECIAL, *_GEMMA4_MEDIA.values(), "<|video|>", *(f"<0x{b:02X}>" for b in range(256))]
    pieces += list("\u2581abcdefghijklmnopqrstuvwxyz0123456789.,")
    merges = []
    for word in _WORDS.split():
        spelled = "\u2581" + word
        for k in range(2, len(spelled) + 1):
            if spelled[:k] not in pieces:
                pieces.append(spelled[:k])
                merges.append((spelled[: k - 1], spelled[k - 1]))
    return pieces, merges


def tiny_gemma4_config(
    hidden_size: int = 32, num_layers: int = TINY_GEMMA_LAYERS, gemma_version: str = TINY_GEMMA4_VERSION
) -> Any:
    """transformers' ``Gemma4UnifiedConfig`` at a tiny size: one local and one global attention layer (the 12B's
    5:1 pattern in small), a vision embedder for 8 x 8 px patches and an audio embedder, both projecting to the
    text width. ``gemma_version`` is the field ltx-core 1.2 matches against an LTX-2.5 checkpoint."""
    from transformers import Gemma4UnifiedConfig

    ids = {token: i for i, token in enumerate(gemma4_vocabulary()[0])}
    heads = 2
    text = {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 1,
        "head_dim": hidden_size // heads,
        "global_head_dim": hidden_size // heads,
        "sliding_window": 64,  # shorter than the 1,024 tokens ltx-core pads to: the local layers see a window
        "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(num_layers)],
        "max_position_embeddings": 2048,
        "vocab_size": len(ids),
        "pad_token_id": ids["<pad>"],
        "eos_token_id": ids["<eos>"],
        "bos_token_id": ids["<bos>"],
    }
    vision = {"patch_size": 4, "pooling_kernel_size": 2, "mm_embed_dim": 16, "mm_posemb_size": 8}
    config = Gemma4UnifiedConfig(
        text_config=text,
        vision_config={**vision, "output_proj_dims": hidden_size},
        audio_config={"audio_embed_dim": 16},
        boi_token_id=ids[_GEMMA4_MEDIA["boi_token"]],
        eoi_token_id=ids[_GEMMA4_MEDIA["eoi_token"]],
        image_token_id=ids[_GEMMA4_MEDIA["image_token"]],
        video_token_id=ids["<|video|>"],
        boa_token_id=ids[_GEMMA4_MEDIA["boa_token"]],
        eoa_token_index=ids[_GEMMA4_MEDIA["eoa_token"]],
        audio_token_id=ids[_GEMMA4_MEDIA["audio_token"]],
    )
    config.gemma_version = gemma_version
    return config


def write_tiny_gemma4(
    directory: Path,
    hidden_size: int = 32,
    num_layers: int = TINY_GEMMA_LAYERS,
    seed: int = 0,
    gemma_version: str = TINY_GEMMA4_VERSION,
) -> Path:
    """Write the tiny Gemma 4 into ``directory`` (created); returns it. ``hidden_size`` must be the width the
    tiny LTX-2.5 checkpoint's text projection takes per layer (its ``caption_channels``, 32)."""
    from transformers import Gemma4UnifiedForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    config = tiny_gemma4_config(hidden_size, num_layers, gemma_version)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Gemma4UnifiedForConditionalGeneration(config).to(torch.bfloat16)
    # Two shards and their index, as a release is published (transformers 5 writes its own key layout).
    model.save_pretrained(str(directory), max_shard_size="48KB")
    gemma4_processor(config).save_pretrained(str(directory))
    return directory


def gemma4_processor(config: Any) -> Any:
    """Gemma 4's processor at the tiny sizes: the tokenizer, and the image, video and audio settings beside it
    (ltx-core 1.2 builds it with the encoder; it encodes captions with the tokenizer only)."""
    from transformers import (
        Gemma4UnifiedAudioFeatureExtractor,
        Gemma4UnifiedImageProcessor,
        Gemma4UnifiedProcessor,
        Gemma4UnifiedVideoProcessor,
        GemmaTokenizer,
    )

    pieces, merges = gemma4_vocabulary()
    # Gemma's BPE with byte fallback, as transformers 5 builds it; Gemma 4's adds no <bos> (ltx-core puts one in
    # front of every caption).
    tokenizer = GemmaTokenizer(
        vocab={piece: i for i, piece in enumerate(pieces)},
        merges=merges,
        add_bos_token=False,
        extra_special_tokens=dict(_GEMMA4_MEDIA),
    )
    vision, audio = config.vision_config, config.audio_config
    patches = {"patch_size": vision.patch_size, "pooling_kernel_size": vision.pooling_kernel_size}
    return Gemma4UnifiedProcessor(
        feature_extractor=Gemma4UnifiedAudioFeatureExtractor(
            feature_size=audio.audio_embed_dim, audio_samples_per_token=audio.audio_embed_dim
        ),
        image_processor=Gemma4UnifiedImageProcessor(**patches, max_soft_tokens=70),
        tokenizer=tokenizer,
        video_processor=Gemma4UnifiedVideoProcessor(**patches, max_soft_tokens=70),
        image_seq_length=70,
    )
