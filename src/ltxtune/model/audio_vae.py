"""ltx-core's audio VAE decoder and vocoder: tiny with seeded random weights, or the real ones from a checkpoint.

Validation clips turn sampled audio latents ``[1, 8, T, 16]`` into a waveform with them: the decoder gives a
stereo mel spectrogram ``[1, 2, 4T-3, 64]`` (100 frames per second), the vocoder the waveform. Both paths build
ltx-core's own ``AudioDecoder`` and ``Vocoder`` through their configurators from the ``{"audio_vae": ...}`` and
``{"vocoder": ...}`` config blocks that a real LTX-2 checkpoint stores in its safetensors metadata, like
``ltxtune.model.vae`` does for the video decoder.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ltx_core.model.audio_vae import decode_audio
from torch import Tensor, nn

from ltxtune.ltx_core_api import build
from ltxtune.model.vae import holds, init_decoder, load_frozen

# LTX-2's mel layout (16 kHz, hop 160: 100 mel frames and 25 latent steps per second, 64 mel bins from the
# 16 latent ones through two 2x stages) at 8 channels per stage instead of 128 to 512, with no attention.
# ltx-core sizes the latent statistics by ``ch`` (at LTX-2's size ch = 128, the 8 x 16 latent features):
# ``ch: 1`` makes them one shared scale and shift, and ``ch_mult`` 8 gives the 8 channels.
TINY_AUDIO_VAE_CONFIG: dict[str, Any] = {
    "audio_vae": {
        "model": {
            "params": {
                "sampling_rate": 16000,
                "ddconfig": {
                    "ch": 1,
                    "ch_mult": [8, 8, 8],
                    "out_ch": 2,
                    "num_res_blocks": 0,
                    "attn_resolutions": [],
                    "mid_block_add_attention": False,
                    "resolution": 256,
                    "z_channels": 8,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                    "mel_bins": 64,
                },
            }
        },
        "preprocessing": {"stft": {"hop_length": 160, "causal": True}},
    }
}

# HiFi-GAN's layout, 160 samples per mel frame (4 * 4 * 10) to a 16 kHz waveform, 32 -> 4 channels and one
# residual kernel: the full-rate stages dominate the cost, so they are kept narrow.
TINY_VOCODER_CONFIG: dict[str, Any] = {
    "vocoder": {
        "upsample_rates": [4, 4, 10],
        "upsample_kernel_sizes": [8, 8, 20],
        "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3],
        "resblock_dilation_sizes": [[1, 3, 5]],
        "resblock": "1",
        "stereo": True,
        "output_sampling_rate": 16000,
    }
}


@dataclass(frozen=True)
class WaveformDecoder:
    """ltx-core's audio VAE decoder (latents -> mel spectrogram) and its vocoder (mel -> waveform)."""

    decoder: nn.Module
    vocoder: nn.Module

    @property
    def sample_rate(self) -> int:
        """The waveform's samples per second (the vocoder's output rate)."""
        return int(self.vocoder.output_sampling_rate)


def build_tiny_audio_decoder(seed: int, device: torch.device) -> WaveformDecoder:
    """The tiny decoder and vocoder (``TINY_*_CONFIG``) with every tensor drawn from ``seed``.

    Built on the meta device and then materialized, so that the global RNG is never drawn from (a
    validation must not change what training draws next).
    """
    from ltx_core.model.audio_vae import AudioDecoderConfigurator, VocoderConfigurator

    with torch.device("meta"):
        decoder = build(AudioDecoderConfigurator, TINY_AUDIO_VAE_CONFIG)
        vocoder = build(VocoderConfigurator, TINY_VOCODER_CONFIG)
    modules = []
    for offset, module in enumerate((decoder, vocoder)):
        module = module.to_empty(device=device)
        init_decoder(module, seed + offset)
        modules.append(module.eval().requires_grad_(False))
    return WaveformDecoder(*modules)


def has_audio_decoder(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds both the audio VAE decoder and the vocoder (configs and weights)."""
    return holds(checkpoint, "audio_vae", "audio_vae.decoder.") and holds(checkpoint, "vocoder", "vocoder.")


def load_audio_decoder(checkpoint: Path, device: torch.device, dtype: torch.dtype) -> WaveformDecoder:
    """The real decoder and vocoder through ltx-core's loader; ``DataError`` when weights are missing."""
    from ltx_core.model.audio_vae import (
        AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
        VOCODER_COMFY_KEYS_FILTER,
        AudioDecoderConfigurator,
        VocoderConfigurator,
    )

    decoder_filter, vocoder_filter = AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, VOCODER_COMFY_KEYS_FILTER
    return WaveformDecoder(
        load_frozen(checkpoint, "audio VAE decoder", AudioDecoderConfigurator, decoder_filter, device, dtype),
        load_frozen(checkpoint, "vocoder", VocoderConfigurator, vocoder_filter, device, dtype),
    )


def audio_decoder(checkpoint: str | None, seed: int, device: torch.device, dtype: torch.dtype) -> WaveformDecoder:
    """The real decoder and vocoder when ``checkpoint`` holds them, else the tiny seeded ones (warned for a file).

    A file without them (the tiny test checkpoints, a transformer-only release) still gets audio in its
    clips, decoded with random weights, and the warning says which key points at the audio VAE.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if has_audio_decoder(path):
            return load_audio_decoder(path, device, dtype)
        warnings.warn(
            f"{path} holds no audio VAE decoder and vocoder: validation audio is decoded with random weights "
            "(a split release: model.audio_vae_checkpoint=<its audio VAE file>; or set "
            "validation_videos.audio_decoder_checkpoint to a file with 'audio_vae.decoder.*' and 'vocoder.*' weights)",
            stacklevel=2,
        )
    return build_tiny_audio_decoder(seed, device)


def write_tiny_audio_checkpoint(path: Path, seed: int = 0) -> Path:
    """The tiny decoder and vocoder in the real checkpoint layout (``audio_vae.decoder.*``,
    ``audio_vae.per_channel_statistics.*``, ``vocoder.*``, both config blocks in the metadata), so that
    ltx-core's loader path can be tried without LTX-2's weights.
    """
    from safetensors.torch import save_file

    tensors, config = tiny_audio_tensors(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    return path


def tiny_audio_tensors(seed: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tiny audio decoder and vocoder under their checkpoint keys, and their config blocks."""
    tiny = build_tiny_audio_decoder(seed, torch.device("cpu"))
    tensors = {}
    for name, value in tiny.decoder.state_dict().items():
        prefix = "audio_vae." if name.startswith("per_channel_statistics.") else "audio_vae.decoder."
        tensors[prefix + name] = value.contiguous()
    tensors.update({"vocoder." + name: value.contiguous() for name, value in tiny.vocoder.state_dict().items()})
    return tensors, {**TINY_AUDIO_VAE_CONFIG, **TINY_VOCODER_CONFIG}


@torch.no_grad()
def decode_waveform(decoder: WaveformDecoder, latents: Tensor) -> Tensor:
    """Audio latents ``[1, 8, T, 16]`` -> stereo waveform ``[2, S]`` float32 on the CPU, at ``decoder.sample_rate``.

    ltx-core's ``decode_audio``: the causal decoder gives ``4T - 3`` mel frames (10 ms each for LTX-2), so
    S falls 3 mel frames short of T latent steps' 40 ms each.
    """
    dtype = next(decoder.decoder.parameters()).dtype
    return decode_audio(latents.to(dtype), decoder.decoder, decoder.vocoder).waveform.float().cpu()
