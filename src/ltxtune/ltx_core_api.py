"""What differs between the ltx-core releases ltxtune runs with, in one place.

ltx-core 1.0.0 (the package index) builds LTX-2 and LTX-2.3; ltx-core 1.2 (Lightricks' repository) also builds
LTX-2.5: Gemma 4 text features with their own projection, feed-forward layers without bias, prompt
cross-attention that does not depend on the timestep, a keyframe position embedding. 1.2 builds every model from
the checkpoint's whole metadata (``from_metadata``, where 1.0 took the ``config`` block: ``from_config``), picks the
video decoder's architecture from it, and derives a Gemma's loading from its local Hugging Face configuration.
Everything else ltxtune calls is the same in both. Imports nothing heavy until asked.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterator
from typing import Any

from ltxtune.errors import DataError

# The one extra command of README's set-up, for LTX-2.5.
INSTALL_LTX_CORE_12 = (
    'pip install "ltx-core @ git+https://github.com/Lightricks/LTX-2@v1.2.0#subdirectory=packages/ltx-core"'
    ' "transformers>=5.8,<5.15"'
)

# Transformer config keys only ltx-core 1.2 reads, with the value that changes the architecture. ltx-core 1.0
# ignores unknown keys: it would build the LTX-2.3 transformer and leave these weights unloaded (or missing).
LTX25_TRANSFORMER_FLAGS: dict[str, Any] = {
    "ff_bias": False,
    "audio_ff_bias": False,
    "use_prompt_adaln_single": False,
    "use_keyframes_abs_pos_embedding": True,
}


def ltx_core_version() -> tuple[int, ...]:
    """The installed ltx-core's version as numbers (``(1, 0, 0)``); ``()`` when it is not installed."""
    try:
        text = metadata.version("ltx-core")
    except metadata.PackageNotFoundError:
        return ()
    numbers = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def builds_ltx25() -> bool:
    """Whether the installed ltx-core builds LTX-2.5 (1.2 on)."""
    return ltx_core_version() >= (1, 2)


def build(configurator: type, config: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    """``configurator``'s model from a model config (``{"transformer": ...}``, ``{"vae": ...}``...).

    ``extra``: the rest of a checkpoint's metadata (``model_version``...), which only ltx-core 1.2 reads.
    """
    if hasattr(configurator, "from_metadata"):
        return configurator.from_metadata({**(extra or {}), "config": config})
    return configurator.from_config(config)


def ltx25_features(config: dict[str, Any], extra: dict[str, Any] | None = None) -> list[str]:
    """The LTX-2.5 architecture choices a checkpoint's metadata makes (``[]`` for LTX-2 and LTX-2.3)."""
    t = config.get("transformer", {})
    found = [f"{k}={t[k]}" for k, v in LTX25_TRANSFORMER_FLAGS.items() if k in t and t[k] == v]
    if extra and "gemma_source_checkpoint" in extra:
        found.append("a Gemma 4 text encoder")
    return found


def check_buildable(source: str, config: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """``DataError`` naming ``source``, the ltx-core it needs and the command that installs it, when the installed
    ltx-core cannot build this checkpoint's architecture (LTX-2.5 with ltx-core 1.0)."""
    features = ltx25_features(config, extra)
    if features and not builds_ltx25():
        installed = ".".join(map(str, ltx_core_version())) or "none"
        raise DataError(
            f"{source}: an LTX-2.5 checkpoint ({', '.join(features)}) needs ltx-core 1.2 (installed: {installed});"
            f" install it: {INSTALL_LTX_CORE_12}"
        )


def family(config: dict[str, Any]) -> str:
    """``LTX-2``, ``LTX-2.3`` or ``LTX-2.5``: the release a model config describes."""
    if ltx25_features(config):
        return "LTX-2.5"
    return "LTX-2.3" if config.get("transformer", {}).get("caption_proj_before_connector", False) else "LTX-2"


def decode_video(decoder: Any, latents: Any, tiling: Any, generator: Any) -> Iterator[Any]:
    """ltx-core's video decode: uint8 chunks ``[f, h, w, 3]`` (1.0: the function ``decode_video``, uint8; 1.2:
    the decoder's own method, floats in [0, 1], scaled as 1.0 scales them)."""
    if not hasattr(decoder, "decode_video"):
        from ltx_core.model.video_vae import decode_video as decode

        yield from decode(latents, decoder, tiling, generator)
        return
    import torch

    for chunk in decoder.decode_video(latents, tiling, generator):
        yield (chunk * 255.0).to(torch.uint8)


def default_tiling() -> Any:
    """ltx-core's default tiling of a video decode (512 px, 64 frames; 1.2 renamed the class)."""
    from ltx_core.model import video_vae

    return getattr(video_vae, "TileSizeConfig", getattr(video_vae, "TilingConfig", None)).default()


def load_gemma_text(gemma_root: str, checkpoint: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    """(Gemma text encoder, the checkpoint's text projection) through ltx-core's loader, as its trainer loads them.

    ltx-core 1.0 knows Gemma 3 only, with fixed key and module ops; 1.2 reads the family (Gemma 3, Gemma 4) from
    the directory's Hugging Face configuration and binds its configurators to the directory.
    """
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.text_encoders import gemma

    if hasattr(gemma, "get_gemma_ops"):
        key_ops, module_ops = gemma.get_gemma_ops(gemma_root)
        encoder_configurator = gemma.GemmaTextEncoderConfigurator.with_gemma_model_path(gemma_root)
        processor_configurator = gemma.EmbeddingsProcessorConfigurator.with_gemma_model_path(gemma_root)
        weights = gemma.resolve_gemma_weight_paths(gemma_root)
    else:
        from ltx_core.utils import find_matching_file

        key_ops = gemma.GEMMA_LLM_KEY_OPS
        module_ops = (gemma.GEMMA_MODEL_OPS, *gemma.module_ops_from_gemma_root(gemma_root))
        encoder_configurator, processor_configurator = (
            gemma.GemmaTextEncoderConfigurator,
            gemma.EmbeddingsProcessorConfigurator,
        )
        folder = find_matching_file(gemma_root, "model*.safetensors").parent
        weights = tuple(str(p) for p in sorted(folder.rglob("*.safetensors")))
    encoder = SingleGPUModelBuilder(
        model_class_configurator=encoder_configurator,
        model_path=tuple(weights),
        model_sd_ops=key_ops,
        module_ops=tuple(module_ops),
    ).build(device=device, dtype=dtype)
    processor = SingleGPUModelBuilder(
        model_class_configurator=processor_configurator,
        model_path=checkpoint,
        model_sd_ops=gemma.EMBEDDINGS_PROCESSOR_KEY_OPS,
    ).build(device=device, dtype=dtype)
    return encoder, processor


def batched_perturbations(configs: list[Any], model: Any, like: Any) -> Any:
    """ltx-core's per-sample perturbations of one forward (1.2 builds each block's keep-mask up front, on
    the device and in the dtype of ``like``, a latent tensor, for the model's number of blocks)."""
    import inspect

    from ltx_core.guidance.perturbations import BatchedPerturbationConfig

    if "num_blocks" in inspect.signature(BatchedPerturbationConfig).parameters:
        return BatchedPerturbationConfig(
            configs,
            num_blocks=len(getattr(model, "module", model).transformer_blocks),
            device=like.device,
            dtype=like.dtype,
        )
    return BatchedPerturbationConfig(configs)


def gemma_family(gemma_root: str) -> str:
    """The Gemma in ``gemma_root`` as its Hugging Face configuration names it (``gemma3``, ``gemma4_unified``...);
    ltx-core 1.0 loads Gemma 3 only."""
    from ltx_core.text_encoders import gemma

    return gemma.gemma_model_type(gemma_root) if hasattr(gemma, "gemma_model_type") else "gemma3"


def text_encoder_for(config: dict[str, Any]) -> str:
    """The Gemma whose features a model of ``config`` was trained on: ``gemma4`` for LTX-2.5, else ``gemma3``."""
    return "gemma4" if family(config) == "LTX-2.5" else "gemma3"


def gemma_hidden_states(encoder: Any, caption: str) -> tuple[Any, Any]:
    """(hidden states of every layer, attention mask ``[1, L]``) of one caption, left-padded (1.0 encodes one
    caption; 1.2 a list)."""
    import inspect

    if "prompts" in inspect.signature(encoder.encode).parameters:
        return encoder.encode([caption])[0]
    return encoder.encode(caption, padding_side="left")
