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
from pathlib import Path
from typing import Any

from ltxtune.errors import DataError

# The one extra command of README's set-up, for LTX-2.5 (torchvision: Gemma 4's processor imports it, and
# ltx-core 1.2 builds that processor with the encoder; 0.26.0 is the release for ltxtune's torch 2.11.0).
INSTALL_LTX_CORE_12 = (
    'pip install "ltx-core @ git+https://github.com/Lightricks/LTX-2@v1.2.0#subdirectory=packages/ltx-core"'
    ' "transformers>=5.8,<5.15" torchvision==0.26.0'
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
    return _version_numbers(text)


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


LTX2, LTX23, LTX25 = "LTX-2", "LTX-2.3", "LTX-2.5"  # the releases (inference samples each with its own defaults)


def model_family(config: dict[str, Any], metadata: dict[str, str] | None = None) -> str:
    """``LTX-2``, ``LTX-2.3`` or ``LTX-2.5``: the release a checkpoint is.

    Its metadata's ``model_version`` where it has one, read as ltx-pipelines reads it (the newest release at or
    below it: "2.5..." LTX-2.5; "2.3...", "2.4..." LTX-2.3, whose lineage 2.4 continues; older LTX-2), else the
    architecture in its config: LTX-2.5's own flags, and only LTX-2.3 on projects the captions before the text
    connectors.
    """
    version = _version_numbers((metadata or {}).get("model_version", ""))
    if version:
        return LTX25 if version >= (2, 5) else LTX23 if version >= (2, 3) else LTX2
    if ltx25_features(config):
        return LTX25
    return LTX23 if config.get("transformer", {}).get("caption_proj_before_connector", False) else LTX2


# ltx-pipelines' DEFAULT_NEGATIVE_PROMPT, what inference guides against: 1.0's, and the tags 1.2's puts in front.
NEGATIVE_PROMPT = (
    "blurry, out of focus, overexposed, underexposed, low contrast, washed out colors, excessive noise, grainy "
    "texture, poor lighting, flickering, motion blur, distorted proportions, unnatural skin tones, deformed facial "
    "features, asymmetrical face, missing facial features, extra limbs, disfigured hands, wrong hand count, "
    "artifacts around text, inconsistent perspective, camera shake, incorrect depth of field, background too sharp, "
    "background clutter, distracting reflections, harsh shadows, inconsistent lighting direction, color banding, "
    "cartoonish rendering, 3D CGI look, unrealistic materials, uncanny valley effect, incorrect ethnicity, wrong "
    "gender, exaggerated expressions, wrong gaze direction, mismatched lip sync, silent or muted audio, distorted "
    "voice, robotic voice, echo, background noise, off-sync audio, incorrect dialogue, added dialogue, repetitive "
    "speech, jittery movement, awkward pauses, incorrect timing, unnatural transitions, inconsistent framing, "
    "tilted camera, flat lighting, inconsistent tone, cinematic oversaturation, stylized filters, or AI artifacts."
)
NEGATIVE_PROMPT_12_TAGS = (
    "has_subtitles, has_blurbox, transition from black, transition to black, speech_ending_short, "
)


def inference_negative_prompt() -> str:
    """The negative prompt inference uses by default with the installed ltx-core: ltx-pipelines' of the same
    release (1.0's; 1.2's starts with five tags of captioned faults)."""
    return NEGATIVE_PROMPT_12_TAGS + NEGATIVE_PROMPT if builds_ltx25() else NEGATIVE_PROMPT


def _version_numbers(text: str) -> tuple[int, ...]:
    """``"2.3.0"`` -> ``(2, 3, 0)``; pre-release tags ("2.3-rc1", "2.3.rc1") count as their release; ``()`` when
    there is no number."""
    numbers = []
    for part in text.replace("-", ".").split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits or not part[0].isdigit():
            break
        numbers.append(int(digits))
    return tuple(numbers)


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


# The transformers each ltx-core loads Gemma with: 1.0 fills in Gemma 3's modules as transformers 4 lays them out
# (transformers 5 moved them); 1.2 builds Gemma 3 and 4 from transformers 5's classes, below 5.15.
_TRANSFORMERS_FOR_GEMMA = {False: ((4, 52), (5,)), True: ((5, 8), (5, 15))}


def check_transformers() -> None:
    """``DataError`` naming the installed transformers, the ltx-core that needs another, and the fix, when the
    installed ltx-core cannot load Gemma with it (ltxtune's own pin is 1.0's: ``transformers>=4.52,<5``)."""
    installed = metadata.version("transformers")
    low, high = _TRANSFORMERS_FOR_GEMMA[builds_ltx25()]
    if low <= _version_numbers(installed) < high:
        return
    if builds_ltx25():
        core = ".".join(map(str, ltx_core_version()))
        raise DataError(
            f"transformers {installed} is installed: ltx-core {core} loads Gemma with transformers>=5.8,<5.15; "
            f"install them together: {INSTALL_LTX_CORE_12}"
        )
    raise DataError(
        f"transformers {installed} is installed: ltx-core 1.0.0 loads Gemma 3 with transformers 4 only; "
        "install the tested set: pip install -e . -c requirements/tested.txt (or 'transformers>=4.52,<5')"
    )


def gemma_kinds() -> str:
    """The Gemma releases the installed ltx-core loads, in words."""
    return "Gemma 3 or Gemma 4" if builds_ltx25() else "Gemma 3"


def gemma_needed_files() -> tuple[str, ...]:
    """What a Gemma directory must hold for the installed ltx-core: the weights, and the tokenizer and processor
    files it reads (1.0: SentencePiece's ``tokenizer.model`` and the image processor's settings; 1.2: the
    Hugging Face ``config.json``, the tokenizer's and the processor's files)."""
    if builds_ltx25():
        return ("model*.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json")
    return ("model*.safetensors", "tokenizer.model", "preprocessor_config.json")


def gemma_weight_files(gemma_root: str) -> list[Path]:
    """The Gemma weight files ltx-core loads from ``gemma_root`` (1.0: every safetensors file beside the first
    ``model*.safetensors``; 1.2: its own resolution of the directory)."""
    root = Path(gemma_root)
    if builds_ltx25():
        from ltx_core.text_encoders.gemma import resolve_gemma_weight_paths

        return [Path(p) for p in resolve_gemma_weight_paths(gemma_root)]
    weights = next(root.rglob("model*.safetensors")).parent
    return sorted(weights.rglob("*.safetensors"))


def built_gemma_size() -> tuple[int, int] | None:
    """(hidden size, layers) of the Gemma the installed ltx-core builds whatever a directory holds (1.0: Gemma 3
    12B's, or what ``model.tiny_gemma`` substituted); ``None`` where it builds the directory's own configuration
    (1.2)."""
    if builds_ltx25():
        return None
    from ltx_core.text_encoders.gemma.encoders import encoder_configurator

    built = encoder_configurator.GEMMA3_CONFIG_FOR_LTX.text_config
    return built.hidden_size, built.num_hidden_layers


def text_processor_builder(checkpoint: str, gemma_root: str) -> Any:
    """ltx-core's builder of the checkpoint's text feature extractor (the embeddings processor) for the Gemma in
    ``gemma_root`` (1.2 sizes it from the directory; 1.0 from the Gemma it builds)."""
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.text_encoders import gemma

    configurator = gemma.EmbeddingsProcessorConfigurator
    if hasattr(configurator, "with_gemma_model_path"):
        configurator = configurator.with_gemma_model_path(gemma_root)
    # LTX-2.5's split release keeps the projection in the packed text encoder, beside Gemma: both files are read.
    paths = (checkpoint, gemma_root) if packed_text_encoder(gemma_root) else checkpoint
    return SingleGPUModelBuilder(
        model_class_configurator=configurator, model_path=paths, model_sd_ops=gemma.EMBEDDINGS_PROCESSOR_KEY_OPS
    )


def gemma_encoder_builder(gemma_root: str, weights: list[Path]) -> Any:
    """ltx-core's builder of the Gemma text encoder from ``weights``, as its trainer loads it. ltx-core 1.0 knows
    Gemma 3 only, with fixed key and module ops; 1.2 reads the family (Gemma 3, Gemma 4) from the directory's
    Hugging Face configuration and binds its configurator to the directory."""
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.text_encoders import gemma

    if hasattr(gemma, "get_gemma_ops"):
        key_ops, module_ops = gemma.get_gemma_ops(gemma_root)
        configurator = gemma.GemmaTextEncoderConfigurator.with_gemma_model_path(gemma_root)
    else:
        key_ops = gemma.GEMMA_LLM_KEY_OPS
        module_ops = (gemma.GEMMA_MODEL_OPS, *gemma.module_ops_from_gemma_root(gemma_root))
        configurator = gemma.GemmaTextEncoderConfigurator
    return SingleGPUModelBuilder(
        model_class_configurator=configurator,
        model_path=tuple(str(p) for p in weights),
        model_sd_ops=key_ops,
        module_ops=tuple(module_ops),
    )


def gemma_name(gemma_root: str) -> str:
    """``Gemma 3``, ``Gemma 4``: the Gemma in ``gemma_root`` in words (its ``gemma_family``)."""
    kind = gemma_family(gemma_root)
    digits = "".join(c for c in kind.split("_")[0] if c.isdigit())
    return f"Gemma {digits}" if kind.startswith("gemma") and digits else kind


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


def perturbation_keeps(batched: Any, kind: Any, block: int) -> list[bool]:
    """Per sample of ``batched`` (ltx-core's ``BatchedPerturbationConfig``): whether block ``block`` keeps the
    attention ``kind`` skips (1.0 keeps each sample's config; 1.2 only its keep-mask ``[type, block, sample]``)."""
    import torch

    if hasattr(batched, "block_masks"):
        keep = batched.mask(kind, block)
    else:
        keep = batched.mask(kind, block, torch.device("cpu"), torch.float32)
    return [bool(k) for k in keep.flatten().tolist()]


def fp8_cast_policy() -> Any:
    """ltx-core's ``fp8_cast`` policy: the block linears' weights and biases stored as float8_e4m3fn, upcast in
    forward (1.0: ``QuantizationPolicy.fp8_cast()``; 1.2 builds it per checkpoint, for prequantized scales
    ltxtune does not load, from the same two operations)."""
    from ltx_core.quantization.fp8_cast import TRANSFORMER_LINEAR_DOWNCAST_MAP, UPCAST_DURING_INFERENCE
    from ltx_core.quantization.policy import QuantizationPolicy

    return QuantizationPolicy(sd_ops=TRANSFORMER_LINEAR_DOWNCAST_MAP, module_ops=(UPCAST_DURING_INFERENCE,))


def float32_lora_fusion() -> dict[str, Any]:
    """Keyword arguments of ltx-core's ``SingleGPUModelBuilder`` that fuse a LoRA into float32 weights, to compare
    with a trained model exactly (1.0 fuses in the dtype ``build`` asks for: nothing to add; 1.2 sums in bf16 and
    stores the weight's dtype by default)."""
    import inspect

    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder

    if "fuse_rule" not in inspect.signature(SingleGPUModelBuilder).parameters:
        return {}
    import torch
    from ltx_core.loader.fuse_loras import FuseRule

    return {"fuse_rule": FuseRule(torch.float32, lambda key, weight, deltas, _: {key: deltas.add_(weight.float())})}


def skips_in_negative_pass() -> bool:
    """Whether inference switches a stream whose guider skips this step off in the negative prompt's pass too,
    not only in the prompt's (ltx-pipelines 1.2, which goes with ltx-core 1.2, batches every pass of a step
    with one switch per stream; 1.0 switched the prompt's passes only)."""
    return builds_ltx25()


def gemma_family(gemma_root: str) -> str:
    """The Gemma in ``gemma_root`` as its Hugging Face configuration names it (``gemma3``, ``gemma4_unified``...);
    ltx-core 1.0 loads Gemma 3 only."""
    from ltx_core.text_encoders import gemma

    return gemma.gemma_model_type(gemma_root) if hasattr(gemma, "gemma_model_type") else "gemma3"


def text_encoder_for(config: dict[str, Any]) -> str:
    """The Gemma whose features a model of ``config`` was trained on: ``gemma4`` for LTX-2.5, else ``gemma3``."""
    return "gemma4" if model_family(config) == LTX25 else "gemma3"


def gemma_hidden_states(encoder: Any, caption: str) -> tuple[Any, Any]:
    """(hidden states of every layer, attention mask ``[1, L]``) of one caption, left-padded (1.0 encodes one
    caption; 1.2 a list)."""
    import inspect

    if "prompts" in inspect.signature(encoder.encode).parameters:
        return encoder.encode([caption])[0]
    return encoder.encode(caption, padding_side="left")


def packed_text_encoder(gemma_root: str) -> bool:
    """Whether ``gemma_root`` is a packed text encoder: one ``.safetensors`` file with Gemma's weights, its Hugging
    Face files and the checkpoint's text projection (LTX-2.5's split release), which ltx-core 1.2 loads."""
    path = Path(gemma_root)
    return builds_ltx25() and path.is_file() and path.suffix == ".safetensors"


def check_gemma_processor(gemma_root: str) -> None:
    """``DataError`` naming ``gemma_root`` and the fix when the processor its ``processor_config.json`` names does
    not import: ltx-core 1.2 builds it with the encoder, and Gemma 4's (``Gemma4UnifiedProcessor``) imports
    torchvision, which ltx-core does not install. ltx-core 1.0 builds no processor from the directory."""
    if not builds_ltx25():
        return
    import json

    from ltx_core.text_encoders.gemma import GemmaAssets

    try:
        raw = GemmaAssets.load(gemma_root).sidecars.get("processor_config.json", b"{}")
    except (ValueError, KeyError) as exc:  # a packed file without its Hugging Face files
        raise DataError(f"{gemma_root}: not a Gemma ltx-core 1.2 loads ({exc})") from None
    name = json.loads(raw).get("processor_class", "")
    if not name:
        return  # ltx-core names what is missing itself
    import transformers

    try:
        getattr(transformers, name)
    except ImportError as exc:
        cause = exc.__cause__ or exc
        raise DataError(
            f"{gemma_root}: its processor ({name}, processor_config.json) does not import ({cause}); install what"
            f" ltx-core 1.2 loads Gemma 4 with: {INSTALL_LTX_CORE_12}"
        ) from None
    except AttributeError:
        raise DataError(
            f"{gemma_root}: processor_config.json names processor_class={name!r}, which transformers lacks"
        ) from None
