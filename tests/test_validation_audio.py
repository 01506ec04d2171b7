"""Validation clips with sound: ltx-core's audio VAE decoder and vocoder, muxed into the .mp4 or written as .wav."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch
from safetensors.torch import save_file

from conftest import compose_cfg
from ltxtune.errors import ConfigError
from ltxtune.evaluation.media import wandb_media, write_mp4, write_wav
from ltxtune.evaluation.settings import VideoSettings
from ltxtune.model.audio_vae import (
    audio_decoder,
    build_tiny_audio_decoder,
    decode_waveform,
    write_tiny_audio_checkpoint,
)
from ltxtune.training.parts import build_parts
from test_sampling import render, setup

CPU = torch.device("cpu")
AAC_FRAME = 1024  # samples per AAC frame: the finest step an AAC stream's length can take
HOP = 160  # tiny vocoder: samples per mel frame (16 kHz, 100 mel frames per second, 4 per latent step)


def streams(path: Path) -> dict[str, tuple[float, int, int]]:
    """Per stream type: (duration in seconds from the container, rate, samples or frames PyAV decodes)."""
    found = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            seconds = float(stream.duration * stream.time_base)
            if stream.type == "audio":
                count = sum(frame.samples for frame in container.decode(stream))
                found["audio"] = (seconds, stream.rate, count)
            else:
                count = sum(1 for _ in container.decode(stream))
                found["video"] = (seconds, round(stream.average_rate), count)
            container.seek(0)
    return found


@pytest.mark.parametrize("overrides", [("strategy.with_audio=true",), ("experiment=v2a",), ("experiment=a2v",)])
def test_audio_video_clips_have_a_sound_track_as_long_as_the_picture(synthetic_root, tmp_path, overrides) -> None:
    """Generated (t2v with audio, v2a) or given (a2v) audio is heard in every clip, for the clip's whole length.

    The container records the exact length (the AAC stream's edit list), so its duration matches the video's
    to within one AAC frame; a decoder that ignores the edit list returns the last frame whole, at most
    ``AAC_FRAME`` samples more than the padded track.
    """
    _, strategy, model, batches = setup(synthetic_root, *overrides)
    state = torch.get_rng_state()
    paths = render(VideoSettings(num_prompts=2, num_steps=2, previews=False), model, batches, strategy, 0, tmp_path)
    assert torch.equal(torch.get_rng_state(), state)  # the audio decoder too leaves training's draws alone
    assert [p.name for p in paths] == ["prompt0.mp4", "prompt1.mp4"]
    for path in paths:
        found = streams(path)
        video_s, fps, frames = found["video"]
        audio_s, rate, samples = found["audio"]
        assert (frames, fps, rate) == (17, 24, 16000)
        assert video_s == pytest.approx(17 / 24)
        assert abs(audio_s - video_s) <= AAC_FRAME / rate
        assert round(video_s * rate) <= samples < round(video_s * rate) + AAC_FRAME


def test_text_to_audio_writes_a_wav_with_every_decoded_sample(synthetic_root, tmp_path) -> None:
    _, strategy, model, batches = setup(synthetic_root, "experiment=t2a")
    steps = batches[0].audio_latents.latents.shape[2]  # [B, 8, T, 16]
    paths = render(VideoSettings(num_prompts=2, num_steps=2), model, batches, strategy, 0, tmp_path)
    assert [p.name for p in paths] == ["prompt0.wav", "prompt1.wav"]
    for path in paths:
        seconds, rate, samples = streams(path)["audio"]
        # The causal decoder gives 4T - 3 mel frames; PCM holds them all, to the sample.
        assert (rate, samples) == (16000, (4 * steps - 3) * HOP)
        assert seconds == pytest.approx(samples / rate)


def test_tiny_audio_decoder_is_seeded_and_leaves_the_global_rng_alone() -> None:
    latents = torch.randn(1, 8, 10, 16, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    first, again, other = (build_tiny_audio_decoder(seed, CPU) for seed in (0, 0, 1))
    wave = decode_waveform(first, latents)
    assert torch.equal(torch.get_rng_state(), state)  # training's random stream is untouched
    assert wave.shape == (2, (4 * 10 - 3) * HOP) and first.sample_rate == 16000
    assert 0 < wave.abs().max() <= 1  # the vocoder's tanh: a valid waveform, not silence
    assert torch.equal(decode_waveform(again, latents), wave)
    assert not torch.allclose(decode_waveform(other, latents), wave)


def test_real_layout_audio_vae_loads_through_ltx_core_and_decodes_like_the_original(tmp_path) -> None:
    path = write_tiny_audio_checkpoint(tmp_path / "audio.safetensors", seed=3)
    loaded = audio_decoder(str(path), 0, CPU, torch.float32)
    latents = torch.randn(1, 8, 6, 16)
    assert torch.equal(decode_waveform(loaded, latents), decode_waveform(build_tiny_audio_decoder(3, CPU), latents))
    other = tmp_path / "no_audio.safetensors"
    save_file({"vae.decoder.x": torch.zeros(1)}, str(other), metadata={"config": '{"vae": {}}'})
    with pytest.warns(UserWarning, match="no audio VAE decoder and vocoder"):
        fallback = audio_decoder(str(other), 3, CPU, torch.float32)
    assert torch.equal(decode_waveform(fallback, latents), decode_waveform(loaded, latents))


def test_audio_config_follows_the_model_checkpoint_and_is_checked(tmp_path) -> None:
    assert compose_cfg().validation_videos.audio_decoder_checkpoint is None
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={tmp_path / 'x.safetensors'}")
    assert cfg.validation_videos.audio_decoder_checkpoint == str(tmp_path / "x.safetensors")
    missing = tmp_path / "missing.safetensors"
    bad = {f"audio_decoder_checkpoint={missing}": "an existing file, or null", "audio_decoder_seed=-1": ">= 0"}
    for override, allowed in bad.items():
        with pytest.raises(ConfigError) as info:  # refused before any data or model is built
            build_parts(compose_cfg(f"validation_videos.{override}", data_root=tmp_path / "data"))
        assert str(info.value).startswith("validation_videos." + override.split("=")[0]) and allowed in str(info.value)
    assert not (tmp_path / "data").exists()


def test_wandb_logs_clips_with_sound_as_videos_and_audio_only_ones_as_audio(tmp_path) -> None:
    import wandb

    wave = torch.sin(torch.arange(8000) / 8.0).repeat(2, 1) * 0.5
    clip = write_mp4(tmp_path / "prompt0.mp4", torch.zeros(9, 64, 64, 3, dtype=torch.uint8), 24.0, wave, 16000)
    sound = write_wav(tmp_path / "prompt1.wav", wave, 16000)
    media = wandb_media([clip, sound])
    assert sorted(media) == ["val/audio/prompt1", "val/video/prompt0"]
    run = wandb.init(mode="offline", dir=str(tmp_path), project="ltxtune-test", reinit="finish_previous")
    try:
        run.log(media, step=0)
    finally:
        run.finish()
    files = tmp_path.glob("wandb/offline-run-*/files/media/**/*")
    assert sorted(p.suffix for p in files if p.is_file()) == [".mp4", ".wav"]
