"""From a sampled clip to a file: ltx-core's video VAE decoder, its audio VAE decoder and vocoder, then PyAV."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ltxtune.diffusion.positions import unpatchify_audio
from ltxtune.diffusion.tokens import AudioTokens
from ltxtune.evaluation.media import write_mp4, write_wav
from ltxtune.evaluation.sampling import SampledClip
from ltxtune.model.audio_vae import WaveformDecoder, audio_decoder, decode_waveform
from ltxtune.model.vae import decode_frames, video_decoder


class Decoders:
    """The decoders, each built on first use (a real one takes seconds to load) and kept for the run.

    Args:
        video_checkpoint, audio_checkpoint: safetensors files with LTX-2's video VAE / audio VAE decoder and
            vocoder; ``None`` = tiny ones with seeded random weights (``video_seed``, ``audio_seed``).
        dtype: the real decoders' weights.
        offload: between validations the decoders wait in host memory (``park``).
    """

    def __init__(
        self,
        video_checkpoint: str | None,
        audio_checkpoint: str | None,
        dtype: torch.dtype,
        video_seed: int,
        audio_seed: int,
        offload: bool,
    ) -> None:
        self.video_checkpoint, self.audio_checkpoint, self.dtype = video_checkpoint, audio_checkpoint, dtype
        self.video_seed, self.audio_seed, self.offload = video_seed, audio_seed, offload
        self._video: nn.Module | None = None
        self._audio: WaveformDecoder | None = None

    def video(self, device: torch.device) -> nn.Module:
        if self._video is None:
            self._video = video_decoder(self.video_checkpoint, self.video_seed, device, self.dtype)
        return self._video.to(device)

    def audio(self, device: torch.device) -> WaveformDecoder:
        if self._audio is None:
            self._audio = audio_decoder(self.audio_checkpoint, self.audio_seed, device, self.dtype)
        for module in (self._audio.decoder, self._audio.vocoder):
            module.to(device)
        return self._audio

    def park(self) -> None:
        """With ``offload``, the decoders to host memory until the next validation (none moves twice)."""
        if not self.offload:
            return
        modules = [self._video] if self._video is not None else []
        if self._audio is not None:
            modules += [self._audio.decoder, self._audio.vocoder]
        on_gpu = [m for m in modules if any(p.device.type != "cpu" for p in m.parameters())]
        for module in on_gpu:
            module.to("cpu")
        if on_gpu and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def frames(self, latents: Tensor) -> Tensor:
        """Video latents ``[1, 128, F, H, W]`` -> uint8 frames ``[8*(F-1)+1, 32*H, 32*W, 3]``."""
        generator = torch.Generator(latents.device).manual_seed(self.video_seed)
        return decode_frames(self.video(latents.device), latents, generator)

    def render(self, clip: SampledClip, stem: Path) -> Path:
        """Write ``stem.mp4`` (with the clip's sound when it has audio), or ``stem.wav`` when it has no video."""
        out, grid = clip.sampled, clip.grid
        if out.audio is None:
            return write_mp4(stem.with_suffix(".mp4"), self.frames(grid.latents(out.video)), grid.fps)
        decoder = self.audio(out.audio.device)
        waveform = decode_waveform(decoder, audio_latents(out.audio, clip.inputs.audio_grid))
        if grid is None:  # an audio-only mode (t2a)
            return write_wav(stem.with_suffix(".wav"), waveform, decoder.sample_rate)
        frames = self.frames(grid.latents(out.video))
        return write_mp4(stem.with_suffix(".mp4"), frames, grid.fps, waveform, decoder.sample_rate)


def audio_latents(sequence: Tensor, grid: AudioTokens | None) -> Tensor:
    """The clip's audio, the last ``grid.frames`` tokens of ``sequence [1, T, 128]`` (references come first),
    as latents ``[1, 8, T', 16]``; the whole sequence when the strategy gave no grid.
    """
    frames = grid.frames if grid is not None else sequence.shape[1]
    return unpatchify_audio(sequence[:, -frames:])
