"""ltx-core's video and audio VAE encoders: tiny with seeded random weights, or real from a checkpoint.

Both paths build the same ltx-core classes through their configurators from the same kind of config
block (``"vae"`` / ``"audio_vae"``, as the real checkpoint stores it in its safetensors metadata). With a
``checkpoint`` the weights come through ltx-core's loader (``SingleGPUModelBuilder`` with the ComfyUI key
filters); without one, the config given here is built and every tensor is drawn from ``seed``.
"""

from __future__ import annotations

import math
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ltxtune.errors import ConfigError, DataError
from ltxtune.ltx_core_api import build
from ltxtune.ranks import is_main_rank

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``auto`` is the GPU when there is one: under a launcher, the one of this process's ``LOCAL_RANK``."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device(device)


def parse_dtype(dtype: str) -> torch.dtype:
    if dtype not in _DTYPES:
        raise ConfigError("dtype", dtype, "one of " + ", ".join(_DTYPES))
    return _DTYPES[dtype]


@contextmanager
def loading(what: str, source: str | Path, detail: str = "") -> Iterator[None]:
    """Say what loads from where before it starts (a real encoder takes a while), and how long it took; on the
    main process only."""
    main, start = is_main_rank(), time.perf_counter()
    if main:
        print(f"loading {what} from {source}{detail}", flush=True)
    yield
    if main:
        print(f"loaded {what} in {time.perf_counter() - start:.1f} s", flush=True)


def init_seeded(module: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and buffer a value drawn from ``seed`` alone.

    The ltx-core constructors leave the latent statistics as ``torch.empty`` (garbage, sometimes NaN), and
    their default init draws from the global RNG; here weights are ``N(0, 1/fan_in)`` (unit-scale
    activations), biases 0, latent statistics mean 0 and std 1, in a fixed order.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(module.named_parameters()):
            if param.dim() >= 2:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=g) / math.sqrt(fan_in))
            else:
                param.zero_() if name.endswith("bias") else param.fill_(1.0)
        for name, buffer in module.named_buffers():
            if name.endswith("std-of-means"):
                buffer.fill_(1.0)
            elif name.endswith("mean-of-means"):
                buffer.zero_()
    return module


class _LtxEncoder(ABC):
    """Builds one ltx-core encoder, frozen, on ``device``; subclasses name the configurator and key filter."""

    config_key: str
    what: str  # how the user is told what loads

    def __init__(
        self,
        checkpoint: str | None = None,
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        device: str = "auto",
        dtype: str = "float32",
    ) -> None:
        if checkpoint is None and not config:
            raise ConfigError(f"{self.config_key}.config", config, "ltx-core's config block when no checkpoint")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise ConfigError("checkpoint", checkpoint, "an existing .safetensors file")
        self.checkpoint, self.device, self.dtype = checkpoint, resolve_device(device), parse_dtype(dtype)
        configurator, key_filter = self._loader()
        if checkpoint is None:
            with torch.device("cpu"):
                model = build(configurator, {self.config_key: dict(config)})
            model = init_seeded(model, seed).to(self.device, self.dtype)
        else:
            from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder

            builder = SingleGPUModelBuilder(
                model_class_configurator=configurator, model_path=str(checkpoint), model_sd_ops=key_filter
            )
            with loading(f"the {self.what}", checkpoint, f" onto {self.device}"):
                model = builder.build(device=self.device, dtype=self.dtype)
            # ltx-core returns a half-built model (tensors on "meta") when keys are missing, and only warns.
            missing = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
            if missing:
                raise DataError(
                    f"{checkpoint}: no {self.config_key} encoder weights for {len(missing)} tensors "
                    f"(first: {missing[0]}); is this an LTX-2 checkpoint with its VAE?"
                )
        self.model = model.eval().requires_grad_(False)

    @abstractmethod
    def _loader(self) -> tuple[Any, Any]:
        """ltx-core's configurator class and the key filter that picks this encoder out of a checkpoint."""

    def describe(self) -> dict[str, Any]:
        """What produced the latents, for the dataset's ``preprocess.json``."""
        return {"class": type(self.model).__name__, "checkpoint": self.checkpoint, "dtype": str(self.dtype)}


class VideoVAE(_LtxEncoder):
    """ltx-core's ``VideoEncoder``: pixels ``[F, 3, H, W]`` -> latents ``[128, (F-1)/8+1, H/32, W/32]``."""

    config_key = "vae"
    what = "video VAE encoder"

    def _loader(self) -> tuple[Any, Any]:
        from ltx_core.model.video_vae import VAE_ENCODER_COMFY_KEYS_FILTER, VideoEncoderConfigurator

        return VideoEncoderConfigurator, VAE_ENCODER_COMFY_KEYS_FILTER

    @torch.inference_mode()
    def encode(self, frames: Tensor) -> Tensor:
        """``frames`` uint8 ``[F, C, H, W]`` (C = 3, or 1 for a mask: repeated to RGB) -> float32 latents on CPU."""
        video = frames.to(self.device).expand(-1, 3, -1, -1).permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, F, H, W]
        return self.model((video.float() / 127.5 - 1.0).to(self.dtype))[0].float().cpu()


class AudioVAE(_LtxEncoder):
    """ltx-core's ``AudioEncoder``: a stereo waveform -> latents ``[8, T, 16]``, T = 25 per second."""

    config_key = "audio_vae"
    what = "audio VAE encoder"

    def __init__(self, checkpoint: str | None = None, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if checkpoint is None and config:
            _check_audio_config(config)
        super().__init__(checkpoint, config, **kwargs)

    def _loader(self) -> tuple[Any, Any]:
        from ltx_core.model.audio_vae import AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER, AudioEncoderConfigurator

        return AudioEncoderConfigurator, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def latents_per_second(self) -> float:
        from ltx_core.model.audio_vae.audio_vae import LATENT_DOWNSAMPLE_FACTOR

        return self.model.sample_rate / self.model.mel_hop_length / LATENT_DOWNSAMPLE_FACTOR

    @torch.inference_mode()
    def encode(self, waveform: Tensor, seconds: float) -> Tensor:
        """``waveform`` ``[2, S]`` at ``sample_rate`` -> float32 latents ``[8, round(seconds * 25), 16]`` on CPU."""
        from ltx_core.model.audio_vae import encode_audio
        from ltx_core.types import Audio

        latents = encode_audio(Audio(waveform.unsqueeze(0).to(self.device), self.sample_rate), self.model)[0]
        # The centred STFT adds one mel frame, so the encoder returns one step more than the clip lasts.
        steps = max(1, round(seconds * self.latents_per_second))
        latents = latents[:, :steps]
        if latents.shape[1] < steps:
            latents = torch.nn.functional.pad(latents, (0, 0, 0, steps - latents.shape[1]))
        return latents.float().cpu().contiguous()


def _check_audio_config(config: Mapping[str, Any]) -> None:
    """The trainer reads ``[8, T, 16]`` audio latents: refuse a tiny config that cannot produce them.

    ltx-core normalizes the latents with per-channel statistics of size ``ch`` over the patchified
    ``z_channels * mel_bins / 2**(levels-1)`` features, so ``ch`` must be 128 as well.
    """
    dd = config.get("model", {}).get("params", {}).get("ddconfig", {})
    z, mel, ch, levels = (
        dd.get("z_channels", 8),
        dd.get("mel_bins"),
        dd.get("ch", 128),
        len(dd.get("ch_mult", (1, 2, 4))),
    )
    if z != 8:
        raise ConfigError("audio.config.model.params.ddconfig.z_channels", z, "8 (the trainer reads [8, T, 16])")
    if mel is None or mel // 2 ** (levels - 1) != 16:
        raise ConfigError(
            "audio.config.model.params.ddconfig.mel_bins", mel, f"16 * 2**{levels - 1} for {levels} levels"
        )
    if ch != 128:
        raise ConfigError(
            "audio.config.model.params.ddconfig.ch", ch, "128 (ltx-core's latent statistics have ch entries)"
        )
