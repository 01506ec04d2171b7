"""Real LTX-2 checkpoints, loaded through ltx-core's own builder, with the frozen text connectors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltxtune.errors import ConfigError, DataError, check_choice, check_range
from ltxtune.ltx_core_api import build, check_buildable, fp8_cast_policy, model_family
from ltxtune.model.base import CHECKPOINT_PREFIX, InputNeeds, LoadedModel, ModelSpec
from ltxtune.model.quantize import check_quantization, quantize_int8

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
_CONNECTOR_PREFIXES = {
    "video_connector.": CHECKPOINT_PREFIX + "video_embeddings_connector.",
    "audio_connector.": CHECKPOINT_PREFIX + "audio_embeddings_connector.",
}


def read_checkpoint_config(path: Path) -> dict[str, Any]:
    """The model config stored in a checkpoint's metadata; ``DataError`` naming the file when unreadable, or when
    the installed ltx-core cannot build its architecture (saying which one can, and how to install it)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
    except Exception as exc:  # safetensors raises its own error types for bad headers and truncation
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    if "config" not in meta:
        raise DataError(f"{path}: no model config in its metadata (is it an LTX-2 checkpoint?)")
    if not any(k.startswith(CHECKPOINT_PREFIX + "transformer_blocks.") for k in keys):
        raise DataError(f"{path}: holds no '{CHECKPOINT_PREFIX}transformer_blocks.*' weights")
    config = json.loads(meta["config"])
    check_buildable(str(path), config, {k: v for k, v in meta.items() if k != "config"})
    return config


def checkpoint_version(path: Path) -> str:
    """``LTX-2``, ``LTX-2.3`` or ``LTX-2.5``: the metadata's ``model_version`` where it has one, else the
    architecture in its config (``ltx_core_api.model_family``)."""
    from safetensors import safe_open

    config = read_checkpoint_config(path)  # a file it cannot read is named there
    with safe_open(str(path), "pt") as f:
        return model_family(config, f.metadata() or {})


def check_connector_keys(path: Path) -> None:
    """``DataError`` naming ``path`` when it holds no text connector weights (reads the header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types for bad headers and truncation
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    wanted = tuple(_CONNECTOR_PREFIXES.values())
    if not any(k.startswith(wanted) for k in keys):
        raise DataError(f"{path}: holds no text connector weights ('{wanted[0]}*'; model.connectors_checkpoint)")


class TextConnectors(nn.Module):
    """LTX-2's embeddings connectors: stored text-encoder features -> the context the transformer attends to.

    Frozen: they belong to the base model and are not trained (the reference trainer left them trainable
    but never optimized, which only costs memory).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        from ltx_core.text_encoders.gemma.embeddings_connector import (
            AudioEmbeddings1DConnectorConfigurator,
            Embeddings1DConnectorConfigurator,
        )

        super().__init__()
        self.video_connector = build(Embeddings1DConnectorConfigurator, config)
        self.audio_connector = build(AudioEmbeddings1DConnectorConfigurator, config)

    @torch.no_grad()
    def forward(self, conditions: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Without ``audio_prompt_embeds`` (a strategy without audio, or a video-only checkpoint's features)
        only the video connector runs."""
        from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor, convert_to_additive_mask

        with_audio = "audio_prompt_embeds" in conditions
        audio_connector = self.audio_connector if with_audio else None
        processor = EmbeddingsProcessor(video_connector=self.video_connector, audio_connector=audio_connector)
        videos, audios, masks = [], [], []
        # ltx-core's register replacement handles one sample at a time.
        for i in range(conditions["video_prompt_embeds"].shape[0]):
            dtype = self.video_connector.learnable_registers.dtype
            mask = convert_to_additive_mask(conditions["prompt_attention_mask"][i : i + 1], dtype)
            audio_features = conditions["audio_prompt_embeds"][i : i + 1].to(dtype) if with_audio else None
            video, audio, binary = processor.create_embeddings(
                conditions["video_prompt_embeds"][i : i + 1].to(dtype), audio_features, mask
            )
            videos.append(video)
            audios.append(audio)
            masks.append(binary)
        out = {"video_prompt_embeds": torch.cat(videos), "prompt_attention_mask": torch.cat(masks).long()}
        if with_audio:
            out["audio_prompt_embeds"] = torch.cat(audios)
        return out


def existing_file(key: str, value: str | None, what: str) -> Path | None:
    """``value`` as a path to an existing file (``None`` stays ``None``), else ``ConfigError(key)``."""
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ConfigError(key, str(value), what)
    return path


def connector_needs(config: dict[str, Any]) -> InputNeeds:
    """What a model whose stored text features go through the text connectors takes: their widths and register
    count, read from ``config`` the way ltx-core builds the connectors (on the meta device: no weights). LTX-2's
    connectors are as wide as its features (the transformer projects them); LTX-2.3's take each stream's own."""
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )

    with torch.device("meta"):
        video = build(Embeddings1DConnectorConfigurator, config)
        audio = build(AudioEmbeddings1DConnectorConfigurator, config)
    t = config["transformer"]
    return InputNeeds(
        t.get("in_channels", 128),
        t.get("audio_in_channels", 128),
        video.inner_dim,
        video.num_learnable_registers or None,
        audio.inner_dim,
        blocks=t.get("num_layers"),
    )


class LTX2Checkpoint(ModelSpec):
    """``model=ltx2 model.checkpoint=/path/ltx-2-19b.safetensors``: the transformer and its text connectors.

    Any checkpoint whose config ltx-core's configurator understands: LTX-2 (caption projection in the
    transformer, one text width) and LTX-2.3 (gated attention, cross-attention AdaLN, the projection moved
    before the connectors, so video and audio text features have their own widths). One file holds it all, or
    a split release points at its parts: ``checkpoint`` (the transformer, with the config in its metadata),
    ``connectors_checkpoint`` (the text connectors), ``vae_checkpoint`` / ``audio_vae_checkpoint`` (what the
    validation clips are decoded with; each defaults to the file before it in conf/model/ltx2.yaml).
    """

    def __init__(
        self,
        checkpoint: str,
        dtype: str = "bfloat16",
        caption_channels: int = 3840,
        audio_caption_channels: int | None = None,
        quantization: str | None = None,
        connectors_checkpoint: str | None = None,
        vae_checkpoint: str | None = None,
        audio_vae_checkpoint: str | None = None,
    ) -> None:
        path = existing_file("checkpoint", checkpoint, "an existing LTX-2 .safetensors checkpoint file")
        connectors = existing_file("connectors_checkpoint", connectors_checkpoint, "an existing .safetensors file")
        self.connectors_path = connectors or path
        for key, value in (("vae_checkpoint", vae_checkpoint), ("audio_vae_checkpoint", audio_vae_checkpoint)):
            existing_file(key, value, "an existing .safetensors file with the VAE (or the checkpoint's own)")
        check_choice("dtype", dtype, tuple(_DTYPES))
        check_range("caption_channels", caption_channels, 1)
        if audio_caption_channels is not None:
            check_range("audio_caption_channels", audio_caption_channels, 1)
        check_quantization(quantization)
        if quantization and dtype != "bfloat16":
            raise ConfigError("dtype", dtype, f"bfloat16 with quantization={quantization} (the base is bf16 first)")
        self.path, self.dtype, self.caption_channels = path, dtype, caption_channels
        self.audio_caption_channels = audio_caption_channels
        self.quantization = quantization

    def config(self) -> dict[str, Any]:
        return read_checkpoint_config(self.path)

    def version(self) -> str:
        return checkpoint_version(self.path)

    def input_needs(self) -> InputNeeds:
        config = self.config()
        check_connector_keys(self.connectors_path)  # a split release's wrong file: named before any weight is read
        return connector_needs(config)

    def build(self, seed: int, device: torch.device) -> LoadedModel:
        from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
        from ltx_core.model.transformer.model_configurator import (
            LTXV_MODEL_COMFY_RENAMING_MAP,
            LTXModelConfigurator,
        )

        # Several CPU processes each get device "cpu:<rank>", a name safetensors refuses to load onto: one CPU.
        device = torch.device("cpu") if device.type == "cpu" else device
        config = self.config()
        dtype = _DTYPES[self.dtype]
        sd_ops, module_ops, build_dtype = LTXV_MODEL_COMFY_RENAMING_MAP, (), dtype
        if self.quantization == "fp8_cast":
            # ltx-core's own policy: transformer-block linears stored as float8_e4m3fn and upcast in forward,
            # which halves the frozen base's memory; the LoRA weights stay float32 (Adapter.apply).
            policy = fp8_cast_policy()
            sd_ops = replace(sd_ops, mapping=sd_ops.mapping + policy.sd_ops.mapping)
            module_ops, build_dtype = policy.module_ops, None  # a dtype here would undo the downcast
        builder = SingleGPUModelBuilder(
            model_class_configurator=LTXModelConfigurator,
            model_path=str(self.path),
            model_sd_ops=sd_ops,
            module_ops=module_ops,
        )
        try:
            transformer = builder.build(device=device, dtype=build_dtype)
        except Exception as exc:
            raise DataError(f"{self.path}: could not be loaded by ltx-core ({type(exc).__name__}: {exc})") from exc
        missing = [n for n, p in transformer.named_parameters() if p.is_meta]
        if missing:
            raise DataError(f"{self.path}: {len(missing)} transformer weights are missing, e.g. {missing[:3]}")
        if self.quantization == "int8":
            quantize_int8(transformer)
        connectors = load_connectors(self.connectors_path, config, device, dtype)
        return LoadedModel(transformer=transformer, config=config, encode_text=connectors)


def load_connectors(path: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype) -> TextConnectors:
    """The frozen text connectors from ``path`` (the checkpoint, or a split release's connectors file), keyed
    as ltx-core's embeddings processor reads them (``model.diffusion_model.{video,audio}_embeddings_connector.``)."""
    from safetensors import safe_open

    with torch.device("meta"):
        connectors = TextConnectors(config)
    wanted = {name for name, _ in connectors.named_parameters()}
    state = {}
    try:
        with safe_open(str(path), "pt", device=str(device)) as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is no dict)
                for ours, theirs in _CONNECTOR_PREFIXES.items():
                    if key.startswith(theirs):
                        state[ours + key[len(theirs) :]] = f.get_tensor(key).to(dtype)
    except Exception as exc:  # safetensors raises its own error types for bad headers and truncation
        raise DataError(f"{path}: not a readable safetensors file ({exc})") from exc
    missing = sorted(wanted - set(state))
    if missing:
        raise DataError(f"{path}: {len(missing)} text connector weights are missing, e.g. {missing[:3]}")
    connectors.load_state_dict(state, strict=True, assign=True)
    return connectors.requires_grad_(False).eval()
