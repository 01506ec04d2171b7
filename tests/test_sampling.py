"""Validation videos: the denoising loop on the tiny model, conditions per strategy, and the .mp4 files."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file

from conftest import compose_cfg
from ltxtune.data.batch import Batch, Clip, TextFeatures
from ltxtune.diffusion.guidance import Guidance
from ltxtune.diffusion.positions import patchify_video
from ltxtune.diffusion.sampling import sample, sigma_schedule
from ltxtune.errors import ConfigError
from ltxtune.evaluation.loss import ValidationLoss
from ltxtune.evaluation.media import wandb_media
from ltxtune.evaluation.prompts import Prompts, empty_prompt
from ltxtune.evaluation.sampling import condition_tokens, negative_context, start_inputs, target_grid
from ltxtune.evaluation.settings import VideoSettings
from ltxtune.evaluation.videos import build_clips
from ltxtune.model.vae import build_tiny_decoder, video_decoder, write_tiny_vae_checkpoint
from ltxtune.training.parts import build_parts

CPU = torch.device("cpu")


def setup(root: Path, *overrides: str):
    """The composed run's strategy, tiny model and held-out batches (what the trainer hands over)."""
    cfg = compose_cfg(*overrides, data_root=root)
    parts = build_parts(cfg)
    val_set = parts.data.split(parts.strategy.data_needs(), "test").val
    model = parts.model.build(0, CPU)
    batches = ValidationLoss(val_set, parts.validation, 2, CPU).batches
    return cfg, parts.strategy, model.transformer, batches


def render(videos: VideoSettings, model, batches, strategy, step: int, run_dir: Path) -> list[Path]:
    """The files one validation's clips write: what the trainer hands its trackers (none when disabled)."""
    clips = build_clips(videos, batches, run_dir)
    return [] if clips is None else list(clips(model, lambda text: text, batches, strategy, step).files)


def decoded(path: Path) -> tuple[int, int, int]:
    """Frames, width and height that PyAV decodes from ``path``."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return len(frames), frames[0].shape[1], frames[0].shape[0]


def test_sigma_schedule_is_ltx2s() -> None:
    sigmas = sigma_schedule(8)
    assert sigmas.shape == (9,) and torch.isclose(sigmas[0], torch.tensor(1.0)) and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert torch.allclose(sigmas[-2], torch.tensor(0.1))  # stretched to the terminal sigma, then one step to 0


def test_sampling_is_deterministic_for_a_seed_and_differs_across_seeds(synthetic_root) -> None:
    _, strategy, model, batches = setup(synthetic_root)
    one = batches[0].take(0)

    def run(seed: int) -> torch.Tensor:
        return sample(model, start_inputs(strategy, one, seed), 3).video

    first, again, other = run(5), run(5), run(6)
    assert first.shape == (1, 3 * 4 * 6, 128) and torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize(
    ("overrides", "given"),
    [
        # text_to_video: plain (its first frame is drawn for 10% of the samples only)
        pytest.param((), 0, id="t2v"),
        # the first latent frame (4 x 6 cells), drawn for half the samples
        pytest.param(("experiment=i2v",), 24, id="i2v"),
        # every kept token of the mask
        pytest.param(("strategy=inpainting",), None, id="inpainting"),
    ],
)
def test_conditions_of_the_strategy_stay_fixed(synthetic_root, overrides, given) -> None:
    _, strategy, model, batches = setup(synthetic_root, *overrides)
    one = batches[0].take(0)
    inputs = start_inputs(strategy, one, 0)
    fixed = inputs.video.timesteps[0] == 0
    x0 = patchify_video(one.video_latents.latents)
    if given is None:
        given = int((patchify_video(one.mask_latents.latents).mean(-1) <= 0.5).sum())
    assert condition_tokens(inputs) == int(fixed.sum()) == given
    negative = negative_context(inputs, empty_prompt(one.text))
    out = sample(model, inputs, 3, guidance=Guidance.cfg(2.0), negative=negative).video
    assert torch.equal(out[0, fixed], x0[0, fixed])  # bit-exact, as the model was given them
    assert not torch.allclose(out[0, ~fixed], inputs.video.latent[0, ~fixed])


@pytest.mark.parametrize(
    ("overrides", "given"), [((), 0), (("experiment=i2v",), 24), (("experiment=extend_forward",), 48)]
)
def test_the_videos_show_conditions_training_applies_often_for_every_seed(synthetic_root, overrides, given) -> None:
    """text_to_video's 10% first frame never, i2v's 50% first frame and an extension's prefix always."""
    _, strategy, _, batches = setup(synthetic_root, *overrides)
    one = batches[0].take(1)
    counts = {condition_tokens(start_inputs(strategy, one, seed)) for seed in range(8)}
    assert counts == {given}


def test_ic_lora_reference_is_kept_and_dropped_from_the_clip(synthetic_root) -> None:
    _, strategy, model, batches = setup(synthetic_root, "strategy=video_to_video")
    one = batches[0].take(0)
    inputs = start_inputs(strategy, one, 0)
    reference = patchify_video(one.reference_latents.latents)  # 2 x 3 cells: half the target's size
    r = reference.shape[1]
    assert condition_tokens(inputs) == r  # the reference only: v2v's first frame (p=0.1) is left out
    out = sample(model, inputs, 2).video
    assert torch.equal(out[:, :r], reference)
    grid = target_grid(one, out.shape[1])
    assert (grid.frames, grid.height, grid.width) == (3, 4, 6)
    assert grid.latents(out).shape == (1, 128, 3, 4, 6)


@pytest.mark.parametrize(("experiment", "frozen", "generated"), [("a2v", "audio", "video"), ("v2a", "video", "audio")])
def test_frozen_modality_conditions_the_generated_one_unchanged(
    synthetic_root, tmp_path, experiment, frozen, generated
):
    _, strategy, model, batches = setup(synthetic_root, f"experiment={experiment}")
    one = batches[0].take(0)
    inputs = start_inputs(strategy, one, 0)
    assert getattr(inputs, f"{frozen}_targets") is None and not getattr(inputs, frozen).timesteps.any()
    out = sample(
        model, inputs, 2, guidance=Guidance.cfg(2.0), negative=negative_context(inputs, empty_prompt(one.text))
    )
    assert torch.equal(getattr(out, frozen), getattr(inputs, frozen).latent)  # the clean data, as given
    assert not torch.allclose(getattr(out, generated), getattr(inputs, generated).latent)
    # v2a renders its (frozen) video: the clip the audio was generated for.
    written = render(VideoSettings(num_prompts=1, num_steps=2), model, batches, strategy, 0, tmp_path)
    assert [p.name for p in written] == ["prompt0.mp4", "preview.png"]


def test_guidance_runs_cond_and_uncond_in_one_call_and_changes_the_result(synthetic_root) -> None:
    _, strategy, model, batches = setup(synthetic_root)
    one = batches[0].take(0)
    inputs = start_inputs(strategy, one, 0)
    batch_sizes = []
    hook = model.register_forward_hook(
        lambda m, a, kw, out: batch_sizes.append(len(kw["video"].latent)), with_kwargs=True
    )
    try:
        plain = sample(model, inputs, 3).video
        negative = negative_context(inputs, empty_prompt(one.text))
        guided = sample(model, inputs, 3, guidance=Guidance.cfg(4.0), negative=negative).video
    finally:
        hook.remove()
    assert batch_sizes == [1] * 3 + [2] * 3  # one call per step; with guidance, the negative prompt rides along
    assert not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="negative"):
        sample(model, inputs, 3, guidance=Guidance.cfg(4.0))


def test_videos_decode_to_the_configured_frames_and_size(tmp_path) -> None:
    # 2 latent frames of 2 x 4 cells: 8 * (2 - 1) + 1 = 9 frames of 64 x 128 pixels.
    shape = ("data.frames=2", "data.height=2", "data.width=4", "data.reference_downscale=1")
    cfg, strategy, model, batches = setup(tmp_path / "data", *shape, "validation_videos.num_steps=2")
    videos = build_clips(instantiate(cfg.validation_videos), batches, tmp_path / "run")
    model.train()
    state = torch.get_rng_state()
    *paths, preview = videos(model, lambda text: text, batches, strategy, 50).files
    assert paths == [tmp_path / "run" / "samples" / "step_000050" / f"prompt{i}.mp4" for i in range(2)]
    assert preview.name == "preview.png" and all(decoded(p) == (9, 128, 64) for p in paths)
    assert model.training  # the trainer's mode is given back
    assert torch.equal(torch.get_rng_state(), state)  # training's random stream is untouched
    *again, _ = videos(model, lambda text: text, batches, strategy, 100).files
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]  # same seeds, same model


def test_default_videos_are_17_frames_of_192x128_and_wandb_logs_them_offline(synthetic_root, tmp_path) -> None:
    import wandb

    cfg, strategy, model, batches = setup(synthetic_root)
    paths = render(instantiate(cfg.validation_videos), model, batches, strategy, 0, tmp_path)
    assert [decoded(p) for p in paths if p.suffix == ".mp4"] == [(17, 192, 128)] * 2
    run = wandb.init(mode="offline", dir=str(tmp_path), project="ltxtune-test", reinit="finish_previous")
    try:
        run.log(wandb_media(paths), step=0)
    finally:
        run.finish()
    logged = list((tmp_path / "wandb").glob("offline-run-*/files/media/videos/val/video/*.mp4"))
    assert len(logged) == 2
    assert list((tmp_path / "wandb").glob("offline-run-*/files/media/images/val/preview*.png"))


def test_disabled_videos_write_nothing(synthetic_root, tmp_path) -> None:
    cfg, strategy, model, batches = setup(synthetic_root, "validation_videos.enabled=false")
    assert render(instantiate(cfg.validation_videos), model, batches, strategy, 0, tmp_path) == []
    assert not (tmp_path / "samples").exists()


def test_negative_prompt_file_and_bad_values_are_checked(synthetic_root, tmp_path) -> None:
    _, strategy, model, batches = setup(synthetic_root)
    negative = tmp_path / "negative.pt"
    conditions = batches[0].take(1).text
    torch.save({k: v[0] for k, v in conditions.to_file().items()}, negative)
    videos = VideoSettings(num_prompts=1, num_steps=2, negative_conditions=str(negative))
    # The file wins over a text (a text here would need an encoders node, and there is none).
    assert torch.equal(
        Prompts([], None, "a text the file replaces", str(negative), tmp_path)
        .negative(conditions, lambda c: c)
        .video_embeds,
        conditions.video_embeds,
    )
    assert [p.suffix for p in render(videos, model, batches, strategy, 0, tmp_path)] == [".mp4", ".png"]
    with pytest.raises(ConfigError, match="negative_conditions"):
        VideoSettings(negative_conditions=str(tmp_path / "missing.pt"))
    with pytest.raises(ConfigError, match="num_steps"):
        VideoSettings(num_steps=0)


def test_real_layout_vae_loads_through_ltx_core_and_decodes_like_the_original(tmp_path) -> None:
    path = write_tiny_vae_checkpoint(tmp_path / "vae.safetensors", seed=3)
    loaded = video_decoder(str(path), 0, CPU, torch.float32)
    original = build_tiny_decoder(3, CPU)
    latents = torch.randn(1, 128, 2, 2, 2)
    with torch.no_grad():
        assert torch.equal(loaded(latents), original(latents))
    other = tmp_path / "no_vae.safetensors"
    save_file({"model.diffusion_model.x": torch.zeros(1)}, str(other), metadata={"config": "{}"})
    with pytest.warns(UserWarning, match="no video VAE decoder"):
        fallback = video_decoder(str(other), 0, CPU, torch.float32)
    assert type(fallback) is type(original)


def test_config_node_follows_the_model_checkpoint(tmp_path) -> None:
    assert compose_cfg().validation_videos.decoder_checkpoint is None
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={tmp_path / 'x.safetensors'}")
    assert cfg.validation_videos.decoder_checkpoint == str(tmp_path / "x.safetensors")


def test_text_connectors_encode_the_empty_negative_prompt(tmp_path) -> None:
    """model=ltx2: the batch's features and the empty negative prompt both go through the frozen connectors."""
    from ltxtune.model.ltx2 import LTX2Checkpoint
    from ltxtune.model.tiny import write_tiny_checkpoint
    from ltxtune.strategies.text_to_video import TextToVideo

    checkpoint = write_tiny_checkpoint(tmp_path / "ltx2.safetensors")
    model = LTX2Checkpoint(str(checkpoint), dtype="float32", caption_channels=32).build(0, CPU)
    # ltx-core's connectors hold 128 learnable registers: the stored text length is a multiple of 128.
    mask = torch.zeros(1, 128, dtype=torch.long)
    mask[:, -10:] = 1
    g = torch.Generator().manual_seed(0)
    conditions = {
        "video_prompt_embeds": torch.randn(1, 128, 32, generator=g) * mask.unsqueeze(-1),
        "audio_prompt_embeds": torch.randn(1, 128, 32, generator=g) * mask.unsqueeze(-1),
        "prompt_attention_mask": mask,
    }
    latents = Clip(torch.randn(1, 128, 2, 2, 2, generator=g), torch.tensor([24.0]))
    batch = Batch(("a",), TextFeatures.from_file(model.encode_text(conditions)), video_latents=latents)
    negative = Prompts([], None, None, None, tmp_path).negative(TextFeatures.from_file(conditions), model.encode_text)
    inputs = start_inputs(TextToVideo(0.0), batch, 0)
    out = sample(model.transformer, inputs, 2, Guidance.cfg(3.0), negative_context(inputs, negative)).video
    assert out.shape == (1, 8, 128) and torch.isfinite(out).all()
