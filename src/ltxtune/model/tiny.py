"""The embedded default: ltx-core's real audio-video ``LTXModel`` at a tiny size, with seeded random weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator

from ltxtune.errors import check_range
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, LTX25_TRANSFORMER_FLAGS, build, builds_ltx25
from ltxtune.model.audio_vae import tiny_audio_tensors, write_tiny_audio_checkpoint
from ltxtune.model.base import CHECKPOINT_PREFIX, LoadedModel, ModelSpec
from ltxtune.model.ltx2 import TextConnectors
from ltxtune.model.tiny_gemma import TINY_GEMMA4_VERSION, TINY_GEMMA_LAYERS
from ltxtune.model.vae import init_decoder, tiny_vae_tensors, write_tiny_vae_checkpoint

# Values ltx-core's configurator insists on (it checks each one): the LTX-2 architecture choices.
FIXED_ARCHITECTURE: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
}


def transformer_config(
    num_layers: int,
    num_heads: int,
    head_dim: int,
    audio_num_heads: int,
    audio_head_dim: int,
    caption_channels: int,
) -> dict[str, Any]:
    """The ``{"transformer": ...}`` config that ltx-core's configurator (and checkpoint metadata) uses."""
    return {
        "transformer": {
            "num_layers": num_layers,
            "num_attention_heads": num_heads,
            "attention_head_dim": head_dim,
            "cross_attention_dim": num_heads * head_dim,
            "audio_num_attention_heads": audio_num_heads,
            "audio_attention_head_dim": audio_head_dim,
            "audio_cross_attention_dim": audio_num_heads * audio_head_dim,
            "caption_channels": caption_channels,
            "in_channels": 128,
            "out_channels": 128,
            "audio_in_channels": 128,
            "audio_out_channels": 128,
            **FIXED_ARCHITECTURE,
        }
    }


def build_transformer(config: dict[str, Any], seed: int, device: torch.device) -> torch.nn.Module:
    """Build ``LTXModel`` from ``config`` with every parameter drawn from ``seed`` (no ``torch.empty`` left)."""
    with torch.device("meta"):
        model = build(LTXModelConfigurator, config)
    model = model.to_empty(device=device)
    init_weights(model, seed)
    return model


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Deterministic init: scaled normal for matrices and modulation tables, zeros for biases, ones for gains."""
    g = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters()):
        leaf = name.rsplit(".", 1)[-1]
        if param.dim() >= 2:
            values = torch.randn(param.shape, generator=g) / math.sqrt(param.shape[-1])
        elif leaf == "bias":
            values = torch.zeros(param.shape)
        else:  # norm gains
            values = torch.ones(param.shape)
        # Rounded to bf16 values: a bf16 checkpoint of this model (ltx-core's LoRA fuser needs bf16) is then exact.
        param.copy_(values.to(torch.bfloat16).to(param.dtype))
    for _, buffer in model.named_buffers():
        if buffer.is_floating_point() and not torch.isfinite(buffer).all():
            raise RuntimeError("LTXModel has an uninitialised buffer")


class TinyLTX2(ModelSpec):
    """LTX-2's architecture (video + audio streams, cross-modal attention) small enough for a CPU."""

    def __init__(
        self,
        num_layers: int = 2,
        num_heads: int = 2,
        head_dim: int = 32,
        audio_num_heads: int = 2,
        audio_head_dim: int = 16,
        caption_channels: int = 32,
    ) -> None:
        for key, value in locals().items():
            if key != "self":
                check_range(key, value, 1)
        if head_dim % 2 or audio_head_dim % 2:
            check_range("head_dim", min(head_dim % 2, audio_head_dim % 2), hi=0)
        self._config = transformer_config(
            num_layers, num_heads, head_dim, audio_num_heads, audio_head_dim, caption_channels
        )
        self.caption_channels = caption_channels

    def config(self) -> dict[str, Any]:
        return self._config

    def build(self, seed: int, device: torch.device) -> LoadedModel:
        transformer = build_transformer(self._config, seed, device)
        return LoadedModel(transformer=transformer, config=self._config, encode_text=as_float32)


def as_float32(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The stored text features in the tiny transformer's float32 (Gemma's are stored in bfloat16)."""
    return {key: value.float() if value.is_floating_point() else value for key, value in features.items()}


# The LTX-2.3 transformer and connectors, as ltx-core 1.0.0's configurators read them: gated attention (a
# per-head gate, ``to_gate_logits``, in every attention), cross-attention AdaLN (the prompt modulated by the
# timestep), and the caption projection moved out of the transformer, before the connectors (ltx-core's V2
# text path): the stored features are then as wide as each stream's attention, and the connectors' output is
# the context itself.
LTX23_ARCHITECTURE: dict[str, Any] = {
    "apply_gated_attention": True,
    "cross_attention_adaln": True,
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
    "connector_apply_gated_attention": True,
}


# LTX-2.5 on top of LTX-2.3's layout, as ltx-core 1.2 reads it: feed-forward layers without bias, prompt
# cross-attention without the timestep's AdaLN (its keys and values are the same at every step), a learned keyframe
# position embedding; the text features come from Gemma 4 (named in the metadata, ``LTX25_METADATA``).
LTX25_METADATA: dict[str, Any] = {
    "model_version": "2.5.0",
    "gemma_source_checkpoint": {"gemma_version": TINY_GEMMA4_VERSION},  # model/tiny_gemma.py's Gemma 4
}


def checkpoint_config(spec: TinyLTX2, ltx23: bool = False, ltx25: bool = False) -> dict[str, Any]:
    """The tiny model's config with its text connectors (one small layer each), LTX-2, LTX-2.3 or LTX-2.5
    flavoured (LTX-2.5 needs ltx-core 1.2)."""
    config = json.loads(json.dumps(spec.config()))
    t = config["transformer"]
    if not (ltx23 or ltx25):  # LTX-2: the connectors keep the features' width; the transformer projects them
        t.update(connector_num_attention_heads=2, connector_attention_head_dim=spec.caption_channels // 2,
                 connector_num_layers=1)  # fmt: skip
        return config
    del t["caption_channels"]  # no caption projection: each connector is as wide as its stream's attention
    t.update(LTX23_ARCHITECTURE)
    t.update(
        connector_num_attention_heads=t["num_attention_heads"],
        connector_attention_head_dim=t["attention_head_dim"],
        audio_connector_num_attention_heads=t["audio_num_attention_heads"],
        audio_connector_attention_head_dim=t["audio_attention_head_dim"],
        connector_num_layers=1,
    )
    if ltx25:
        if not builds_ltx25():
            raise RuntimeError(f"a tiny LTX-2.5 checkpoint needs ltx-core 1.2: {INSTALL_LTX_CORE_12}")
        t.update(LTX25_TRANSFORMER_FLAGS)
    return config


def checkpoint_metadata(config: dict[str, Any], ltx25: bool) -> dict[str, str]:
    """The safetensors metadata of a checkpoint of ``config`` (values JSON-encoded, as ltx-core writes them)."""
    extra = LTX25_METADATA if ltx25 else {}
    return {"config": json.dumps(config), **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()}}


Tensors = dict[str, torch.Tensor]


def tiny_checkpoint_tensors(config: dict[str, Any], seed: int, gemma_width: int) -> tuple[Tensors, Tensors]:
    """(transformer, text path) weights under their checkpoint keys, bf16, seeded. The text path is the
    feature extractor (for the tiny Gemma, ``gemma_width`` wide) and the text connectors."""
    transformer = build_transformer(config, seed, torch.device("cpu"))
    with torch.device("meta"):
        connectors = TextConnectors(config)
    connectors = connectors.to_empty(device="cpu")
    init_weights(connectors, seed + 1)
    blocks = {CHECKPOINT_PREFIX + k: v for k, v in transformer.state_dict().items()}
    texts = feature_extractor_tensors(config["transformer"], gemma_width, seed + 2)
    for name, value in connectors.state_dict().items():
        stream, rest = name.split(".", 1)
        texts[f"{CHECKPOINT_PREFIX}{stream.replace('_connector', '_embeddings_connector')}.{rest}"] = value
    return _bf16(blocks), _bf16(texts)


def feature_extractor_tensors(transformer: dict[str, Any], gemma_width: int, seed: int) -> Tensors:
    """``text_embedding_projection.*``: the layer that turns the tiny Gemma's stacked hidden states
    (``gemma_width`` x ``TINY_GEMMA_LAYERS + 1``) into the stored text features, shaped as ltx-core's
    embeddings processor builds it for ``transformer`` (LTX-2: one projection to Gemma's width, which is the
    transformer's ``caption_channels``; LTX-2.3: one per stream, to each stream's attention width, with a bias)."""
    flat = gemma_width * (TINY_GEMMA_LAYERS + 1)
    g = torch.Generator().manual_seed(seed)
    prefix = "text_embedding_projection."
    if "caption_proj_before_connector" not in transformer:
        return {prefix + "aggregate_embed.weight": torch.randn(gemma_width, flat, generator=g) / math.sqrt(flat)}
    out = {}
    for stream, heads, dim in (("video", "num_attention_heads", "attention_head_dim"),
                               ("audio", "audio_num_attention_heads", "audio_attention_head_dim")):  # fmt: skip
        width = transformer[heads] * transformer[dim]
        out[f"{prefix}{stream}_aggregate_embed.weight"] = torch.randn(width, flat, generator=g) / math.sqrt(flat)
        out[f"{prefix}{stream}_aggregate_embed.bias"] = torch.zeros(width)
    return out


def duration_head_tensors(config: dict[str, Any], seed: int) -> Tensors:
    """LTX-2.5's duration head (how long a prompt's clip should last; inference only), under ``duration_head.``."""
    from ltx_core.duration_head import DurationHeadConfigurator

    with torch.device("meta"):
        head = build(DurationHeadConfigurator, config)
    head = head.to_empty(device="cpu")
    init_weights(head, seed + 2)
    return _bf16({f"duration_head.{k}": v for k, v in head.state_dict().items()})


def _bf16(tensors: Tensors) -> Tensors:
    """LTX-2's checkpoints are bf16 (and ltx-core's LoRA fuser needs bf16 weights)."""
    return {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}


def write_tiny_checkpoint(
    path: Path,
    spec: TinyLTX2 | None = None,
    seed: int = 0,
    ltx23: bool = False,
    vaes: bool = False,
    ltx25: bool = False,
) -> Path:
    """A tiny LTX-2 checkpoint in the real layout: bf16 weights under ``model.diffusion_model.`` (transformer and
    text connectors), the text feature extractor for the tiny Gemma (``text_embedding_projection.*``,
    ``model/tiny_gemma.py``) and the config in the metadata, so ``model=ltx2``, ``encoders=ltx2`` and ltx-core's
    loader can be tried here. ``ltx23``: the LTX-2.3 architecture (``LTX23_ARCHITECTURE``); ``ltx25``: LTX-2.5's
    (with its duration head and metadata; needs ltx-core 1.2).

    ``vaes``: the whole single-file release, as ltx-pipelines opens it: also the video VAE (encoder and decoder,
    ``vae.*``), the audio VAE decoder (``audio_vae.*``) and the vocoder (``vocoder.*``), their config blocks
    beside the transformer's (float32, as the tiny decoders are made). There is no audio VAE encoder: the
    text/image-to-video and IC-LoRA pipelines do not build one.
    """
    from safetensors.torch import save_file

    spec = spec or TinyLTX2()
    config = checkpoint_config(spec, ltx23, ltx25)
    blocks, texts = tiny_checkpoint_tensors(config, seed, gemma_width=spec.caption_channels)
    tensors = {**blocks, **texts, **(duration_head_tensors(config, seed) if ltx25 else {})}
    if vaes:
        video, config["vae"] = tiny_vae_tensors(seed)
        audio, audio_config = tiny_audio_tensors(seed)
        tensors.update(video | audio)
        config.update(audio_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=checkpoint_metadata(config, ltx25))
    return path


def write_split_checkpoint(
    directory: Path, spec: TinyLTX2 | None = None, seed: int = 0, ltx23: bool = False, ltx25: bool = False
) -> dict[str, Path]:
    """The same tiny model as a split release: ``transformer``, ``connectors``, ``vae`` (video) and
    ``audio_vae`` (audio VAE and vocoder) files, each with its config in the metadata. Returns name -> file.

    ``ltx25``: LTX-2.5's split release instead, whose transformer file keeps the text connectors beside the
    blocks (``connectors`` is that file) and whose ``duration_head`` is a file of its own.
    """
    from safetensors.torch import save_file

    spec = spec or TinyLTX2()
    config = checkpoint_config(spec, ltx23, ltx25)
    blocks, texts = tiny_checkpoint_tensors(config, seed, gemma_width=spec.caption_channels)
    directory.mkdir(parents=True, exist_ok=True)
    names = (
        ("transformer", "duration_head", "vae", "audio_vae")
        if ltx25
        else ("transformer", "connectors", "vae", "audio_vae")
    )
    files = {name: directory / f"{name}.safetensors" for name in names}
    metadata = checkpoint_metadata(config, ltx25)
    if ltx25:
        save_file({**blocks, **texts}, str(files["transformer"]), metadata=metadata)
        save_file(duration_head_tensors(config, seed), str(files["duration_head"]), metadata=metadata)
        files["connectors"] = files["transformer"]
    else:
        save_file(blocks, str(files["transformer"]), metadata=metadata)
        save_file(texts, str(files["connectors"]), metadata=metadata)
    write_tiny_vae_checkpoint(files["vae"], seed)
    write_tiny_audio_checkpoint(files["audio_vae"], seed)
    return files


# LTX-2's spatial latent upsampler (the x2 one the two-stage pipelines take) with 32 channels inside instead of
# 512 (its norms take groups of 32) and one residual block per stage instead of 4.
TINY_UPSAMPLER_CONFIG: dict[str, Any] = {
    "in_channels": 128,
    "mid_channels": 32,
    "num_blocks_per_stage": 1,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


def write_tiny_upsampler(path: Path, seed: int = 0) -> Path:
    """ltx-core's ``LatentUpsampler`` at a tiny size (``TINY_UPSAMPLER_CONFIG``), seeded, in the layout of LTX-2's
    spatial upsampler file (unprefixed keys, the config in the metadata), for ltx-pipelines' two-stage pipelines."""
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator
    from safetensors.torch import save_file

    with torch.device("meta"):
        upsampler = build(LatentUpsamplerConfigurator, TINY_UPSAMPLER_CONFIG)
    upsampler = upsampler.to_empty(device="cpu")
    init_decoder(upsampler, seed)
    tensors = {k: v.contiguous() for k, v in upsampler.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"config": json.dumps(TINY_UPSAMPLER_CONFIG)})
    return path
