"""Validation videos: short clips for fixed held-out samples and seeds, written as ``.mp4`` into the run directory.

The trainer calls a ``ValidationVideos`` at each validation; each call samples the first ``num_prompts``
held-out samples with their own conditioning (the strategy's, see ``ltxtune.diffusion.sampling``), decodes the video
with ltx-core's VAE decoder and writes ``<run_dir>/samples/step_<step>/prompt<i>.mp4``. A mode with audio decodes
it with ltx-core's audio VAE decoder and vocoder into the clip's sound; an audio-only mode (t2a) writes
``prompt<i>.wav``. The same samples, seeds and starting noise are used at every step, so the clips show what
training changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ltx_core.components.patchifiers import VideoLatentPatchifier
from ltx_core.types import VideoLatentShape
from torch import Tensor, nn

from ltxtune.data import legacy
from ltxtune.data.batch import Batch, TextEncoder, TextFeatures
from ltxtune.data.dataset import load_sample_file
from ltxtune.diffusion.guidance import Guidance
from ltxtune.diffusion.positions import DEFAULT_FPS, unpatchify_audio
from ltxtune.diffusion.sampling import Sampled, empty_prompt, representative_draw, sample, start_inputs
from ltxtune.errors import ConfigError, check_choice, check_range
from ltxtune.evaluation.media import decode_frames, decode_waveform, write_mp4, write_wav
from ltxtune.evaluation.previews import PreviewGrid, PreviewMap
from ltxtune.evaluation.prompts import encode_negative, encode_prompts, parse_prompts
from ltxtune.model.audio_vae import WaveformDecoder, audio_decoder
from ltxtune.model.vae import video_decoder
from ltxtune.strategies.base import AudioTokens, ModelInputs, TrainingStrategy

_DTYPES = ("float32", "bfloat16")


class ValidationVideos:
    """Samples, decodes and writes the validation clips; ``enabled=false`` makes every call a no-op.

    Args:
        num_prompts: held-out samples to render (the first ones, in the validation set's order), after ``prompts``.
        prompts: the user's prompts (``ltxtune.evaluation.prompts``): a text, or ``{text, image|video|audio}``,
            encoded once with ``encoders`` (the ``encoders`` group: tiny, or ltx2 for a real checkpoint).
        num_steps: Euler steps on LTX-2's sigma schedule.
        guidance: each modality's guider parameters, ltx-core's names (``video: {cfg_scale, stg_scale,
            stg_blocks, rescale_scale, modality_scale, skip_step}``, ``audio: {...}``); the model option
            brings inference's defaults (``conf/inference/``). See ``ltxtune.diffusion.guidance``.
        negative_prompt: a text encoded with ``encoders`` (like ``prompts``) as the negative prompt of
            classifier-free guidance; ``null`` = ``negative_conditions``, or the empty prompt.
        seed: the starting noise and condition draws of sample i come from ``seed + i``.
        negative_conditions: a ``.pt`` file in the ``conditions/`` layout holding the negative prompt's text
            features (``preprocess.py`` writes them for a caption); ``null`` = the empty prompt.
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

    def __init__(
        self,
        enabled: bool = True,
        num_prompts: int = 2,
        num_steps: int = 8,
        guidance: Mapping[str, Any] | None = None,
        negative_prompt: str | None = None,
        seed: int = 42,
        negative_conditions: str | None = None,
        decoder_checkpoint: str | None = None,
        decoder_dtype: str = "float32",
        decoder_seed: int = 0,
        previews: bool = True,
        audio_decoder_checkpoint: str | None = None,
        audio_decoder_seed: int = 0,
        prompts: Sequence[Any] = (),
        encoders: Any = None,
        offload_decoders: bool = True,
    ) -> None:
        check_range("num_prompts", num_prompts, 0)
        self.prompts, self.encoders_node = parse_prompts(prompts), encoders
        self._prompt_batches: list[Batch] | None = None
        check_range("num_steps", num_steps, 1)
        self.guidance = Guidance.from_config(guidance) if guidance is not None else Guidance.cfg(3.0)
        if negative_prompt is not None and (not isinstance(negative_prompt, str) or negative_conditions is not None):
            raise ConfigError("negative_prompt", negative_prompt, "a text, with negative_conditions=null")
        self.negative_prompt = negative_prompt
        self._negative_features: dict[str, Tensor] | None = None  # the negative prompt's, as encoded
        check_range("seed", seed, 0)
        check_choice("decoder_dtype", decoder_dtype, _DTYPES)
        check_range("decoder_seed", decoder_seed, 0)
        check_range("audio_decoder_seed", audio_decoder_seed, 0)
        files = {
            "negative_conditions": negative_conditions,
            "decoder_checkpoint": decoder_checkpoint,
            "audio_decoder_checkpoint": audio_decoder_checkpoint,
        }
        for key, value in files.items():
            if value is not None and not Path(value).expanduser().is_file():
                raise ConfigError(key, value, "an existing file, or null")
        self.enabled, self.num_prompts, self.num_steps = bool(enabled), num_prompts, num_steps
        self.seed, self.decoder_seed = seed, decoder_seed
        self.negative_conditions, self.decoder_checkpoint = negative_conditions, decoder_checkpoint
        self.audio_decoder_checkpoint, self.audio_decoder_seed = audio_decoder_checkpoint, audio_decoder_seed
        self.decoder_dtype = getattr(torch, decoder_dtype)
        self._decoder: nn.Module | None = None
        self.previews, self._preview_map = bool(previews), None
        self.offload_decoders = bool(offload_decoders)
        self.preview_distance: float | None = None  # of the last call, when it could be measured
        self._audio_decoder: WaveformDecoder | None = None
        self._draws: dict[tuple[str, int], int] = {}  # (sample, seed) -> its representative condition draw

    def decoder(self, device: torch.device) -> nn.Module:
        """Built on first use and kept: the real decoder takes seconds to load."""
        if self._decoder is None:
            self._decoder = video_decoder(self.decoder_checkpoint, self.decoder_seed, device, self.decoder_dtype)
        return self._decoder.to(device)

    def audio_decoder(self, device: torch.device) -> WaveformDecoder:
        """Built on first use and kept, like the video decoder."""
        if self._audio_decoder is None:
            self._audio_decoder = audio_decoder(
                self.audio_decoder_checkpoint, self.audio_decoder_seed, device, self.decoder_dtype
            )
        for module in (self._audio_decoder.decoder, self._audio_decoder.vocoder):
            module.to(device)
        return self._audio_decoder

    def negative(self, text: TextFeatures, encode_text: TextEncoder, run_dir: Path) -> TextFeatures:
        """The negative prompt's text features ``[1, L, D]`` through the model's text path (the empty prompt's by
        default), with the streams ``text`` (a sample's stored features) has."""
        device, keys = text.attention_mask.device, text.to_file().keys()
        if self.negative_prompt is not None:
            if self._negative_features is None:
                self._negative_features = encode_negative(self.negative_prompt, self.build_text_encoder, run_dir)
            raw = {k: self._negative_features[k].to(device) for k in keys}
        elif self.negative_conditions is None:
            raw = empty_prompt(text).to_file()
        else:
            path = Path(self.negative_conditions).expanduser()
            stored = legacy.normalise(path, load_sample_file(path))
            raw = {k: stored[k].unsqueeze(0).to(device) for k in keys}
        return TextFeatures.from_file(encode_text(raw))

    @torch.no_grad()
    def __call__(
        self,
        transformer: nn.Module,
        batches: Sequence[Batch],
        strategy: TrainingStrategy,
        step: int,
        run_dir: Path,
        encode_text: TextEncoder = lambda c: c,
        write: bool = True,
    ) -> list[Path]:
        """Render the clips of ``step``; returns the paths written (none when disabled or not ``write``).

        A clip is ``prompt<i>.mp4`` (with an audio stream when the mode has audio), or ``prompt<i>.wav``
        for a mode without video.

        ``transformer`` is the unwrapped model (not DDP's wrapper); its train/eval mode is restored.
        ``encode_text`` is the model's text path (``LoadedModel.encode_text``). Under FSDP every rank must
        call (the forward gathers shards) and only one ``write``.
        """
        if not self.enabled:
            return []
        was_training = transformer.training
        transformer.eval()
        paths = []
        previews = PreviewGrid(self.preview_map(batches)) if self.previews else None
        self.guidance, _ = self.guidance.fit(len(transformer.transformer_blocks))  # preflight said it before
        try:
            held_out = [batch.take(j) for batch in batches for j in range(len(batch))][: self.num_prompts]
            given = self.prompt_batches(batches, run_dir)
            for i, one in enumerate([*given, *held_out]):
                negative, guidance = None, self.guidance.without_cfg()  # no text, no negative prompt
                if one.text is not None:
                    guidance = self.guidance
                    if guidance.uses_negative():
                        negative = self.negative(one.text, encode_text, run_dir)
                    one = one.encoded(encode_text)
                key = (one.names[0], self.seed + i)
                if key not in self._draws:  # the search prepares the inputs many times: once per run is enough
                    self._draws[key] = representative_draw(strategy, one, self.seed + i)
                inputs = start_inputs(strategy, one, self.seed + i, self._draws[key])
                grid = video_grid(inputs, one) if inputs.video is not None else None
                # The schedule's shift follows the generated clip (references excluded); v2a, t2a: the audio's.
                tokens = grid.tokens if grid is not None and inputs.video_targets is not None else None
                out = sample(transformer, inputs, self.num_steps, guidance, negative, tokens)
                if previews is not None and grid is not None:
                    own = clean_latents(one)
                    previews.add(grid.latents(out.video)[0], None if own is None else own[0], scored=i >= len(given))
                if write:
                    stem = run_dir / "samples" / f"step_{step:06d}" / f"prompt{i}"
                    paths.append(self.render(out, inputs, grid, stem))
            if previews is not None and previews.rows:
                self.preview_distance = previews.distance()
                if write:
                    paths.append(previews.write(run_dir / "samples" / f"step_{step:06d}" / "preview.png"))
        finally:
            transformer.train(was_training)
            if self.offload_decoders:
                self.park_decoders()
        return paths

    def park_decoders(self) -> None:
        """The decoders to host memory until the next validation (nothing moves when they are there already)."""
        modules = [self._decoder] if self._decoder is not None else []
        if self._audio_decoder is not None:
            modules += [self._audio_decoder.decoder, self._audio_decoder.vocoder]
        on_gpu = [m for m in modules if any(p.device.type != "cpu" for p in m.parameters())]
        for module in on_gpu:
            module.to("cpu")
        if on_gpu and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def prompt_batches(self, batches: Sequence[Batch], run_dir: Path) -> list[Batch]:
        """The user's prompts as samples on the held-out batches' device (encoded on the first call)."""
        if not self.prompts:
            return []
        if self._prompt_batches is None:
            self._prompt_batches = encode_prompts(self.prompts, batches[0].take(0), self.build_encoders, run_dir)
        return [batch.to(batches[0].device) for batch in self._prompt_batches]

    def build_encoders(self) -> Any:
        """The ``encoders`` node's text, video and audio encoders (built once, to encode the prompts)."""
        from hydra.utils import instantiate

        from ltxtune.data.preprocess.pipeline import Encoders

        if self.encoders_node is None:
            raise ConfigError("encoders", None, "an encoders group option (tiny, ltx2) to encode the prompts with")
        node = self.encoders_node
        return Encoders(video=instantiate(node.video), audio=instantiate(node.audio), text=instantiate(node.text))

    def build_text_encoder(self) -> Any:
        """The ``encoders`` node's text encoder alone (the negative prompt needs no VAE)."""
        from hydra.utils import instantiate

        if self.encoders_node is None:
            raise ConfigError("encoders", None, "an encoders group option (tiny, ltx2) to encode the negative prompt")
        return instantiate(self.encoders_node.text)

    def preview_map(self, batches: Sequence[Batch]) -> PreviewMap:
        """Fitted on the first call to the validation samples' latents, then the same for the whole run."""
        if self._preview_map is None:
            latents = [clip for batch in batches if (x := clean_latents(batch)) is not None for clip in x]
            self._preview_map = PreviewMap.fit(latents or [torch.zeros(128, 1, 1, 1)])
        return self._preview_map

    def render(self, out: Sampled, inputs: ModelInputs, grid: TargetGrid | None, stem: Path) -> Path:
        """Decode the generated clip of ``out`` and write ``stem.mp4``, or ``stem.wav`` when it has no video."""
        if out.audio is None:
            return write_mp4(stem.with_suffix(".mp4"), self.frames(grid.latents(out.video)), grid.fps)
        decoder = self.audio_decoder(out.audio.device)
        waveform = decode_waveform(decoder, audio_latents(out.audio, inputs.audio_grid))
        if grid is None:  # an audio-only mode (t2a)
            return write_wav(stem.with_suffix(".wav"), waveform, decoder.sample_rate)
        frames = self.frames(grid.latents(out.video))
        return write_mp4(stem.with_suffix(".mp4"), frames, grid.fps, waveform, decoder.sample_rate)

    def frames(self, latents: Tensor) -> Tensor:
        """Video latents ``[1, 128, F, H, W]`` -> uint8 frames ``[8*(F-1)+1, 32*H, 32*W, 3]``."""
        generator = torch.Generator(latents.device).manual_seed(self.decoder_seed)
        return decode_frames(self.decoder(latents.device), latents, generator)


def audio_latents(sequence: Tensor, grid: AudioTokens | None) -> Tensor:
    """The clip's audio, the last ``grid.frames`` tokens of ``sequence [1, T, 128]`` (references come first),
    as latents ``[1, 8, T', 16]``; the whole sequence when the strategy gave no grid.
    """
    frames = grid.frames if grid is not None else sequence.shape[1]
    return unpatchify_audio(sequence[:, -frames:])


@dataclass(frozen=True)
class TargetGrid:
    """The latent grid ``(F, H, W)`` and fps of the clip a video sequence ends with (references come first)."""

    frames: int
    height: int
    width: int
    fps: float

    @property
    def tokens(self) -> int:
        return self.frames * self.height * self.width

    def latents(self, sequence: Tensor) -> Tensor:
        """The clip's last ``F*H*W`` tokens of ``sequence [1, T, 128]`` -> latents ``[1, 128, F, H, W]``."""
        shape = VideoLatentShape(1, sequence.shape[-1], self.frames, self.height, self.width)
        return VideoLatentPatchifier(patch_size=1).unpatchify(sequence[:, -self.tokens :], output_shape=shape)


def clean_latents(batch: Batch) -> Tensor | None:
    """The batch's own video latents ``[B, 128, F, H, W]`` (the clip a caption describes), if it has them."""
    return batch.video_latents.latents if batch.video_latents is not None else None


def video_grid(inputs: ModelInputs, batch: Batch) -> TargetGrid:
    """The generated clip's grid as the strategy gave it (``ModelInputs.video_grid``), else guessed from the batch."""
    grid = inputs.video_grid
    if grid is None:  # a custom strategy that does not say
        return target_grid(batch, inputs.video.latent.shape[1])
    return TargetGrid(grid.frames, grid.height, grid.width, float(grid.fps[0]))


def target_grid(batch: Batch, seq_len: int) -> TargetGrid:
    """The generated clip's grid: the largest video latents of ``batch`` that fit in ``seq_len`` tokens.

    Reference clips are never larger than their target (an integer downscale) and mask latents share its
    grid, so the largest latents in the batch are the target's. Raises ``ValueError`` when none fit.
    """
    grids = []
    for clip in batch.clips().values():
        if clip.latents.dim() == 5:
            _, _, f, h, w = clip.latents.shape
            grids.append(TargetGrid(f, h, w, float(clip.fps[0]) if clip.fps is not None else DEFAULT_FPS))
    fitting = [g for g in grids if g.tokens <= seq_len]
    if not fitting:
        raise ValueError(f"no video latents [B, 128, F, H, W] in the batch fit its {seq_len} video tokens")
    return max(fitting, key=lambda g: g.tokens)


def wandb_media(paths: Sequence[Path]) -> dict[str, Any]:
    """``{"val/video/prompt<i>": wandb.Video}`` for ``.mp4`` paths (their sound included),
    ``{"val/audio/prompt<i>": wandb.Audio}`` for ``.wav`` ones and ``{"val/preview": wandb.Image}`` for the
    latent preview; all from the file (no moviepy or soundfile).
    """
    import wandb

    media = {}
    for p in paths:
        if p.suffix == ".wav":
            media[f"val/audio/{p.stem}"] = wandb.Audio(str(p))
        elif p.suffix == ".png":
            media[f"val/{p.stem}"] = wandb.Image(str(p))
        else:
            media[f"val/video/{p.stem}"] = wandb.Video(str(p), format="mp4")
    return media
