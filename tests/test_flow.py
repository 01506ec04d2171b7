"""The flow-matching math (noising, velocity target, masked loss) on cases small enough to check by hand."""

from __future__ import annotations

import pytest
import torch

from ltxtune.diffusion import flow


def test_add_noise_and_velocity_target_follow_the_formula() -> None:
    x0 = torch.tensor([[[1.0, 2.0]], [[1.0, 2.0]]])  # [B=2, T=1, C=2]
    noise = torch.tensor([[[3.0, -1.0]], [[3.0, -1.0]]])
    sigma = torch.tensor([0.25, 1.0])
    x_t = flow.add_noise(x0, noise, sigma)
    # (1 - 0.25) * [1, 2] + 0.25 * [3, -1] = [1.5, 1.25]; sigma 1 is pure noise.
    assert torch.equal(x_t, torch.tensor([[[1.5, 1.25]], [[3.0, -1.0]]]))
    assert torch.equal(flow.velocity_target(x0, noise), torch.tensor([[[2.0, -3.0]], [[2.0, -3.0]]]))


def test_per_token_timesteps_are_sigma_except_zero_on_conditioning() -> None:
    cond = torch.tensor([[True, False, False], [False, False, True]])
    timesteps = flow.per_token_timesteps(torch.tensor([0.5, 0.8]), cond)
    assert torch.equal(timesteps, torch.tensor([[0.0, 0.5, 0.5], [0.8, 0.8, 0.0]]))


def test_masked_loss_is_the_mean_squared_error_over_scored_tokens_per_sample() -> None:
    pred = torch.zeros(2, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[1.0, 1.0], [3.0, 3.0]]])
    mask = torch.tensor([[True, False], [True, True]])
    # Sample 0 scores only token 0: mean(1, 1) = 1. Sample 1 scores both: mean(1, 1, 9, 9) = 5.
    assert torch.allclose(flow.masked_loss(pred, target, mask), torch.tensor([1.0, 5.0]))


def test_masked_loss_with_nothing_scored_is_zero_not_nan() -> None:
    loss = flow.masked_loss(torch.ones(1, 3, 4), torch.zeros(1, 3, 4), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(loss, torch.zeros(1))


def test_masked_loss_ignores_unscored_tokens_put_before_the_sequence() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    mask = torch.rand(2, 5, generator=g) < 0.6
    mask[:, 0] = True
    padded = flow.masked_loss(
        torch.cat([torch.randn(2, 4, 3, generator=g), pred], 1),
        torch.cat([torch.zeros(2, 4, 3), target], 1),
        torch.cat([torch.zeros(2, 4, dtype=torch.bool), mask], 1),
    )
    assert torch.allclose(padded, flow.masked_loss(pred, target, mask))


def test_noise_tokens_keeps_conditioning_clean_and_draws_noise_from_the_generator() -> None:
    x0 = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    sigma = torch.tensor([0.2, 0.9])
    cond = torch.tensor([[True, False, False], [False, False, False]])
    noised = flow.noise_tokens(x0, sigma, cond, torch.Generator().manual_seed(7))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(7))

    s = sigma.view(-1, 1, 1)
    expected = torch.where(cond.unsqueeze(-1), x0, (1 - s) * x0 + s * noise)
    assert torch.equal(noised.latent, expected)
    assert torch.equal(noised.target, noise - x0)
    assert torch.equal(noised.timesteps, torch.tensor([[0.0, 0.2, 0.2], [0.9, 0.9, 0.9]]))
    assert torch.equal(noised.loss_mask, ~cond)


def test_condition_tokens_matches_the_mask_formula_and_accumulates() -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 4, 3, generator=g)
    sigma = torch.tensor([0.4, 0.7])
    none = torch.zeros(2, 4, dtype=torch.bool)
    noised = flow.noise_tokens(x0, sigma, none, g)
    m = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    out = flow.condition_tokens(noised, x0, m)

    mf = m.float()
    assert torch.allclose(out.latent, mf.unsqueeze(-1) * x0 + (1 - mf.unsqueeze(-1)) * noised.latent)
    assert torch.equal(out.timesteps, noised.timesteps * (1 - mf))
    assert torch.equal(out.loss_mask, noised.loss_mask & (mf == 0))
    assert torch.equal(out.target, noised.target) and torch.equal(out.sigma, sigma)

    more = flow.condition_tokens(out, x0, torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool))
    assert more.loss_mask.tolist() == [[False, False, True, False], [True, True, True, False]]


def test_prepend_clean_keeps_every_tensor_aligned_with_the_sequence() -> None:
    g = torch.Generator().manual_seed(2)
    x0, ref = torch.randn(2, 3, 4, generator=g), torch.randn(2, 2, 4, generator=g)
    noised = flow.noise_tokens(x0, torch.tensor([0.5, 0.5]), torch.zeros(2, 3, dtype=torch.bool), g)
    out = flow.prepend_clean(noised, ref)
    assert out.latent.shape == out.target.shape == (2, 5, 4)
    assert torch.equal(out.latent[:, :2], ref) and torch.equal(out.latent[:, 2:], noised.latent)
    assert torch.equal(out.target[:, :2], torch.zeros(2, 2, 4)) and torch.equal(out.target[:, 2:], noised.target)
    assert out.timesteps.tolist() == [[0.0, 0.0, 0.5, 0.5, 0.5]] * 2
    assert out.loss_mask.tolist() == [[False, False, True, True, True]] * 2


@pytest.mark.parametrize("shape", [(1, 3, 2), (2, 5, 128)])
def test_clean_tokens_is_a_frozen_modality(shape: tuple[int, int, int]) -> None:
    x0 = torch.randn(shape)
    frozen = flow.clean_tokens(x0)
    assert torch.equal(frozen.latent, x0)
    assert not frozen.timesteps.any() and not frozen.sigma.any() and not frozen.loss_mask.any()
    assert frozen.sigma.shape == (shape[0],)
