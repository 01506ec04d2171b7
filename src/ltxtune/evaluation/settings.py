"""What validation is asked for (the ``validation`` and ``validation_videos`` nodes), checked before anything is
built: the fixed-draw loss, and the clips rendered beside it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ltxtune.diffusion.guidance import Guidance
from ltxtune.errors import ConfigError, check_choice, check_range, check_types
from ltxtune.evaluation.prompts import Prompt, parse_prompts
from ltxtune.ltx_core_api import inference_negative_prompt

DECODER_DTYPES = ("float32", "bfloat16")
DEFAULT_GUIDANCE = 3.0  # classifier-free guidance alone, when the model option brings no inference settings
AUTO = "auto"  # num_steps / stg_blocks: what inference uses for the model's version; negative_prompt: for ltx-core
# Inference's defaults per model version (ltx-pipelines 1.0: LTX_2_PARAMS, LTX_2_3_PARAMS; 1.2 gives 2.4 on
# LTX-2.3's steps and STG block): Euler steps, STG block.
VERSION_DEFAULTS = {"LTX-2": (40, [29]), "LTX-2.3": (30, [28]), "LTX-2.5": (30, [28])}


@dataclass(frozen=True)
class ValidationSettings:
    """Validation loss at fixed sigmas with fixed noise, so that two runs compare on the same draws."""

    every: int = 20
    sigmas: Sequence[float] = field(default=(0.1, 0.3, 0.5, 0.7, 0.9))
    seed: int = 1234
    strategy: Mapping[str, Any] = field(default_factory=dict)  # read by parts.evaluation_strategy
    offload_optimizer: bool = False  # the optimizer state waits in host memory while validation runs (GPU)

    def __post_init__(self) -> None:
        check_types(self)
        check_range("every", self.every, 0)
        if not self.sigmas:
            raise ConfigError("sigmas", list(self.sigmas), "a non-empty list of noise levels in [0, 1]")
        for sigma in self.sigmas:
            check_range("sigmas", sigma, 0.0, 1.0)


@dataclass(frozen=True)
class VideoSettings:
    """The validation clips: ``enabled=false`` renders none.

    Args:
        num_prompts: held-out samples to render (the first ones, in the validation set's order), after ``prompts``.
        prompts: the user's prompts (``ltxtune.evaluation.prompts``): a text, or ``{text, image|video|audio}``
            with an optional ``width``, ``height``, ``frames`` (``ltxtune.evaluation.clip_size``), encoded once
            with ``encoders`` (the ``encoders`` group's node: tiny, or ltx2 for a real checkpoint).
        num_steps: Euler steps on LTX-2's sigma schedule; ``auto``: inference's for the model's version
            (``for_model``).
        guidance: each modality's guider parameters, ltx-core's names (``video: {cfg_scale, stg_scale,
            stg_blocks, rescale_scale, modality_scale, skip_step}``, ``audio: {...}``); the model option
            brings inference's defaults (``conf/inference/``); ``stg_blocks: auto`` is inference's block for
            the model's version. See ``ltxtune.diffusion.guidance``.
        negative_prompt: a text encoded with ``encoders`` (like ``prompts``) as the negative prompt of
            classifier-free guidance; ``auto`` (the config's default): inference's for the installed ltx-core
            (``ltx_core_api.inference_negative_prompt``); ``null`` = the empty prompt.
        seed: the starting noise and condition draws of clip i come from ``seed + i``.
        negative_conditions: a ``.pt`` file in the ``conditions/`` layout holding the negative prompt's text
            features (``preprocess.py`` writes them for a caption), used instead of ``negative_prompt``.
        decoder_checkpoint: a safetensors file with LTX-2's video VAE (``vae.decoder.*``); ``null`` = a tiny
            decoder with seeded random weights (a file without a VAE falls back to it, with a warning).
        decoder_dtype: the real decoders' weights, video and audio (``bfloat16`` on a GPU halves their memory).
        decoder_seed: the tiny decoder's weights.
        previews: also write ``preview.png``, the latent preview of every clip beside its sample's own latents
            (``ltxtune.evaluation.previews``), and log ``val/preview_distance`` between the two.
        audio_decoder_checkpoint: a safetensors file with LTX-2's audio VAE decoder and vocoder
            (``audio_vae.decoder.*``, ``vocoder.*``); ``null`` = tiny ones with seeded random weights (a file
            without them falls back to those, with a warning). Used by the modes that have audio.
        audio_decoder_seed: the tiny audio decoder's and vocoder's weights.
        offload_decoders: between validations the decoders wait in host memory (on a GPU they would hold
            their weights, float32 by default, for the whole run); they move to the GPU for each call.
    """

    enabled: bool = True
    num_prompts: int = 2
    num_steps: int | str = 8
    guidance: Mapping[str, Any] | None = None
    negative_prompt: str | None = None
    seed: int = 42
    negative_conditions: str | None = None
    decoder_checkpoint: str | None = None
    decoder_dtype: str = "float32"
    decoder_seed: int = 0
    previews: bool = True
    audio_decoder_checkpoint: str | None = None
    audio_decoder_seed: int = 0
    prompts: Sequence[str | Mapping[str, str]] = ()
    encoders: Mapping[str, Any] | None = None
    offload_decoders: bool = True

    def __post_init__(self) -> None:
        check_range("num_prompts", self.num_prompts, 0)
        self.user_prompts()
        if self.num_steps != AUTO:
            check_range("num_steps", self.num_steps, 1)
        # With auto in place, checked as it will be for a version.
        (self.for_model("LTX-2") if self.has_auto() else self).guidance_params()
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise ConfigError("negative_prompt", self.negative_prompt, "a text, auto, or null for the empty prompt")
        if self.negative_prompt == AUTO:
            object.__setattr__(self, "negative_prompt", inference_negative_prompt())
        check_range("seed", self.seed, 0)
        check_choice("decoder_dtype", self.decoder_dtype, DECODER_DTYPES)
        check_range("decoder_seed", self.decoder_seed, 0)
        check_range("audio_decoder_seed", self.audio_decoder_seed, 0)
        files = {
            "negative_conditions": self.negative_conditions,
            "decoder_checkpoint": self.decoder_checkpoint,
            "audio_decoder_checkpoint": self.audio_decoder_checkpoint,
        }
        for key, value in files.items():
            if value is not None and not Path(value).expanduser().is_file():
                raise ConfigError(key, value, "an existing file, or null")

    def user_prompts(self) -> list[Prompt]:
        """``prompts`` parsed; a bad entry or a missing file raises ``ConfigError`` naming it."""
        return parse_prompts(self.prompts)

    def has_auto(self) -> bool:
        """Whether a value waits for the model's version (``for_model``)."""
        nodes = (self.guidance or {}).values()
        return self.num_steps == AUTO or any(isinstance(n, Mapping) and n.get("stg_blocks") == AUTO for n in nodes)

    def for_model(self, version: str) -> VideoSettings:
        """These settings with every ``auto`` replaced by inference's default for the model ``version``
        (``LTX-2``: 40 steps, STG on block 29; ``LTX-2.3`` and ``LTX-2.5``: 30 steps, block 28)."""
        steps, blocks = VERSION_DEFAULTS[version]
        guidance = self.guidance
        if guidance is not None:
            guidance = {
                name: {**node, "stg_blocks": blocks}
                if isinstance(node, Mapping) and node.get("stg_blocks") == AUTO
                else node
                for name, node in guidance.items()
            }
        return replace(self, num_steps=steps if self.num_steps == AUTO else self.num_steps, guidance=guidance)

    def guidance_params(self) -> Guidance:
        """``guidance`` parsed (classifier-free guidance at ``DEFAULT_GUIDANCE`` when none is given)."""
        return Guidance.from_config(self.guidance) if self.guidance is not None else Guidance.cfg(DEFAULT_GUIDANCE)
