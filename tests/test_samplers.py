"""Timestep samplers: the shifted logit-normal (measured medians, long sequences) and uniform."""

from __future__ import annotations

import torch

from ltxtune.diffusion.samplers import ShiftedLogitNormalSampler, UniformSampler


def draw(sampler, tokens: int, n: int = 40_000) -> torch.Tensor:
    return sampler.sample(n, tokens, torch.device("cpu"), torch.Generator().manual_seed(0))


def test_shifted_logit_normal_medians_match_ltx2() -> None:
    sampler = ShiftedLogitNormalSampler()
    assert abs(draw(sampler, 1024).median().item() - 0.668) < 0.01
    assert abs(draw(sampler, 4096).median().item() - 0.811) < 0.01


def test_shifted_logit_normal_stays_finite_for_very_long_sequences() -> None:
    """The reference sampler returns NaN around 53k tokens; ours must stay a valid sigma."""
    for tokens in (53_000, 60_000, 200_000, 1_000_000):
        s = draw(ShiftedLogitNormalSampler(), tokens, 2_000)
        assert torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1


def test_sample_for_uses_the_token_count_and_returns_one_sigma_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    short = ShiftedLogitNormalSampler(uniform_prob=0).sample_for(torch.zeros(4000, 256, 128), g)
    long = ShiftedLogitNormalSampler(uniform_prob=0).sample_for(torch.zeros(4000, 8192, 1), g)
    assert short.shape == (4000,) and short.dtype == torch.float32
    assert long.mean() > short.mean() + 0.2  # more tokens, more noise


def test_uniform_sampler_respects_its_range() -> None:
    s = draw(UniformSampler(0.2, 0.4), 100, 5_000)
    assert s.min() >= 0.2 and s.max() <= 0.4 and abs(s.mean().item() - 0.3) < 0.01
