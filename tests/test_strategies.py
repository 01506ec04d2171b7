"""The built-in strategies on the synthetic data: exact noising, positions, sequences, losses and metadata."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import compose_cfg
from ltxtune.data.batch import Batch, collate
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.positions import patchify_audio, patchify_video
from ltxtune.diffusion.samplers import ConstantSampler, UniformSampler
from ltxtune.errors import ConfigError
from ltxtune.strategies.base import TrainingStrategy
from ltxtune.strategies.conditions import FirstFrame, Prefix
from ltxtune.strategies.flexible import AudioTrack, Flexible, VideoTrack
from ltxtune.strategies.inpainting import Inpainting
from ltxtune.strategies.video_to_video import VideoToVideo
from ltxtune.training.parts import build_parts, instantiate_node

T_VIDEO, T_AUDIO, T_REF = 3 * 4 * 6, 18, 3 * 2 * 3  # token counts of the synthetic data


def load_batch(strategy: TrainingStrategy, root, n: int = 2) -> Batch:
    data = instantiate_node(compose_cfg(data_root=root), "data")
    train_set = data.split(strategy.data_needs(), type(strategy).__name__).train
    return collate([train_set[i] for i in range(n)])


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flexible_noises_and_conditions_exactly_as_spec(synthetic_root) -> None:
    strategy = Flexible(video=VideoTrack(conditions=[Prefix(1)]))
    batch = load_batch(strategy, synthetic_root)
    inputs = strategy.prepare_training_inputs(batch, ConstantSampler(0.3), gen(4))

    x0 = patchify_video(batch.video_latents.latents)
    noise = torch.randn(x0.shape, generator=gen(4))  # the sigma is constant: the noise is the first draw
    cond = torch.zeros(2, T_VIDEO, dtype=torch.bool)
    cond[:, :24] = True  # the first latent frame (4 x 6 cells)
    video = inputs.video
    assert torch.equal(video.latent[cond], x0[cond])
    assert torch.allclose(video.latent[~cond], (0.7 * x0 + 0.3 * noise)[~cond])
    assert torch.equal(inputs.video_targets, noise - x0)
    assert torch.equal(video.timesteps, torch.where(cond, 0.0, 0.3))
    assert torch.equal(inputs.video_loss_mask, ~cond)
    assert torch.equal(video.sigma, torch.full((2,), 0.3))


def test_video_positions_put_time_in_seconds_at_the_sample_fps(synthetic_root) -> None:
    strategy = Flexible(video=VideoTrack())
    batch = load_batch(strategy, synthetic_root)
    pos = strategy.prepare_training_inputs(batch, UniformSampler(), gen()).video.positions
    assert pos.shape == (2, 3, T_VIDEO, 2)
    # Token 24 = frame 1, row 0, column 0: pixel frames 1..9 (causal first frame), rows 0..32, columns 0..32.
    assert torch.allclose(pos[0, :, 24], torch.tensor([[1 / 24, 9 / 24], [0.0, 32.0], [0.0, 32.0]]))
    assert pos[0, 1, 24 + 6 * 2 + 5].tolist() == [64.0, 96.0] and pos[0, 2, 24 + 6 * 2 + 5].tolist() == [160.0, 192.0]

    slow = replace(batch.video_latents, fps=torch.tensor([12.0, 24.0]))
    batch = replace(batch, video_latents=slow)
    pos = strategy.prepare_training_inputs(batch, UniformSampler(), gen()).video.positions
    assert torch.allclose(pos[0, 0, 24], torch.tensor([1 / 12, 9 / 12])) and torch.allclose(
        pos[1, 0, 24], pos[0, 0, 24] / 2
    )


def test_video_and_audio_tracks_together_draw_their_own_sigmas_and_run_the_model(synthetic_root) -> None:
    strategy = Flexible(video=VideoTrack(), audio=AudioTrack())
    batch = load_batch(strategy, synthetic_root)
    inputs = strategy.prepare_training_inputs(batch, UniformSampler(), gen(1))
    v, a = inputs.video, inputs.audio
    assert v.latent.shape == inputs.video_targets.shape == (2, T_VIDEO, 128) and v.positions.shape == (2, 3, T_VIDEO, 2)
    assert a.latent.shape == inputs.audio_targets.shape == (2, T_AUDIO, 128) and a.positions.shape == (2, 1, T_AUDIO, 2)
    assert not torch.equal(v.sigma, a.sigma)
    assert torch.equal(v.timesteps, v.sigma.view(-1, 1).expand(-1, T_VIDEO))
    assert torch.equal(a.timesteps, a.sigma.view(-1, 1).expand(-1, T_AUDIO))
    assert torch.equal(a.context, batch.text.audio_embeds)
    assert torch.equal(v.context, batch.text.video_embeds)

    model = instantiate_node(compose_cfg(data_root=synthetic_root), "model").build(0, torch.device("cpu"))
    video_pred, audio_pred = model.transformer(video=v, audio=a, perturbations=None)
    loss = strategy.compute_loss(video_pred, audio_pred, inputs)
    assert loss.shape == (2,) and torch.isfinite(loss).all()


def offset_prediction(inputs: ModelInputs, video_c: float, audio_c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions off by ``c`` on scored tokens and arbitrary on the others."""

    def pred(target: torch.Tensor, mask: torch.Tensor, c: float) -> torch.Tensor:
        junk = 100 * torch.randn(target.shape, generator=gen(3))
        return torch.where(mask.unsqueeze(-1), target + c, junk)

    return (
        pred(inputs.video_targets, inputs.video_loss_mask, video_c),
        pred(inputs.audio_targets, inputs.audio_loss_mask, audio_c),
    )


def test_loss_per_sample_is_the_sum_of_each_generated_tracks_masked_mse(synthetic_root) -> None:
    strategy = Flexible(video=VideoTrack(conditions=[FirstFrame(0.5)]), audio=AudioTrack(conditions=[Prefix(5)]))
    batch = load_batch(strategy, synthetic_root, n=4)
    inputs = strategy.prepare_training_inputs(batch, UniformSampler(), gen(2))
    video_pred, audio_pred = offset_prediction(inputs, 1.0, 2.0)
    losses = strategy.modality_losses(video_pred, audio_pred, inputs)
    assert torch.allclose(losses["video"], torch.ones(4)) and torch.allclose(losses["audio"], torch.full((4,), 4.0))
    assert torch.allclose(strategy.compute_loss(video_pred, audio_pred, inputs), torch.full((4,), 5.0))


def test_frozen_audio_is_clean_at_sigma_zero_and_out_of_the_loss(synthetic_root) -> None:
    strategy = Flexible(video=VideoTrack(), audio=AudioTrack(is_generated=False))
    batch = load_batch(strategy, synthetic_root)
    inputs = strategy.prepare_training_inputs(batch, UniformSampler(), gen())
    a = inputs.audio
    assert torch.equal(a.latent, patchify_audio(batch.audio_latents.latents))
    assert not a.sigma.any() and not a.timesteps.any()
    assert inputs.audio_targets is None and inputs.audio_loss_mask is None
    pred = torch.zeros_like(inputs.video_targets)
    assert set(strategy.modality_losses(pred, torch.zeros_like(a.latent), inputs)) == {"video"}


def test_video_to_video_prepends_the_clean_reference_and_scores_only_the_target(synthetic_root) -> None:
    strategy = VideoToVideo(first_frame_p=0.0)
    batch = load_batch(strategy, synthetic_root)
    inputs = strategy.prepare_training_inputs(batch, UniformSampler(), gen())
    v = inputs.video
    assert v.latent.shape == (2, T_REF + T_VIDEO, 128)
    ref = patchify_video(batch.reference_latents.latents)
    assert torch.equal(v.latent[:, :T_REF], ref)
    assert not v.timesteps[:, :T_REF].any() and (v.timesteps[:, T_REF:] > 0).all()
    assert not inputs.video_loss_mask[:, :T_REF].any() and inputs.video_loss_mask[:, T_REF:].all()
    # Reference cells are 2x the target's: reference row 1 spans target pixels 64..128.
    assert v.positions[0, 1, 3].tolist() == [64.0, 128.0]

    pred = inputs.video_targets + 0.5
    before = strategy.compute_loss(pred, None, inputs)
    pred[:, :T_REF] = 1e3  # whatever is predicted on the reference does not count
    assert torch.equal(strategy.compute_loss(pred, None, inputs), before)
    assert torch.allclose(before, torch.full((2,), 0.25))
    assert strategy.get_checkpoint_metadata() == {"reference_spatial_scale_factor": 2, "reference_downscale_factor": 2}


def test_video_to_video_metadata_omits_a_factor_of_one(synthetic_root) -> None:
    strategy = VideoToVideo(reference_latents_dir="mask_latents")  # same size as the target
    strategy.check_data(load_batch(strategy, synthetic_root, n=1))
    assert strategy.get_checkpoint_metadata() == {}
    with pytest.raises(ConfigError) as info:
        VideoToVideo(first_frame_p=2.0)
    assert info.value.key == "first_frame_p"


def synthetic_hole(batch: Batch) -> torch.Tensor:
    """``[B, T]`` mask latent value of each token (0 outside the hole, 0.2..1.0 inside)."""
    return patchify_video(batch.mask_latents.latents).mean(-1)


def test_inpainting_threshold_decides_which_tokens_are_noised_and_scored(synthetic_root) -> None:
    scored = {}
    for threshold in (0.0, 0.3, 0.7):
        strategy = Inpainting(mask_threshold=threshold)
        batch = load_batch(strategy, synthetic_root)
        inputs = strategy.prepare_training_inputs(batch, ConstantSampler(0.6), gen())
        hole = synthetic_hole(batch) > threshold
        x0 = patchify_video(batch.video_latents.latents)
        assert torch.equal(inputs.video_loss_mask, hole)
        assert torch.equal(inputs.video.latent[~hole], x0[~hole]) and not inputs.video.timesteps[~hole].any()
        assert not torch.isclose(inputs.video.latent[hole], x0[hole]).all(dim=-1).any()
        assert (inputs.video.timesteps[hole] == 0.6).all()
        scored[threshold] = int(hole.sum())
    assert scored[0.0] > scored[0.3] > scored[0.7] > 0
    assert strategy.get_checkpoint_metadata() == {"mask_threshold": 0.7}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy=inpainting", "strategy.mask_threshold=1.5"], "strategy.mask_threshold=1.5 is not allowed"),
        (["strategy=inpainting", "strategy.mask_threshold=-0.1"], "strategy.mask_threshold=-0.1 is not allowed"),
        (["strategy=video_to_video", "strategy.first_frame_p=7"], "strategy.first_frame_p=7 is not allowed"),
        (["experiment=v2a", "strategy.audio.is_generated=false"], "strategy.audio.is_generated=False"),
        (
            ["experiment=t2a", "strategy.audio.conditions=[{_target_: ltxtune.strategies.conditions.FirstFrame}]"],
            "strategy.audio.conditions[0]='FirstFrame'",
        ),
    ],
)
def test_config_errors_name_the_full_key(overrides: list[str], message: str, tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        build_parts(compose_cfg(*overrides, data_root=tmp_path))
    assert str(info.value).startswith(message)


def test_check_data_refuses_a_boundary_the_clips_cannot_take_before_any_model(synthetic_root) -> None:
    parts = build_parts(
        compose_cfg(
            "experiment=extend_forward", "strategy.video.conditions.0.temporal_boundary=3", data_root=synthetic_root
        )
    )
    batch = load_batch(parts.strategy, synthetic_root, n=1)
    with pytest.raises(ConfigError) as info:
        parts.strategy.check_data(batch)
    assert info.value.key == "video.conditions[0].temporal_boundary" and info.value.value == 3
    assert "< 3, the latent frames" in str(info.value)
