"""Timestep (sigma) samplers. One call signature: ``sample_for(tokens [B, T, C]) -> [B]``."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from ltxtune.errors import check_range


class TimestepSampler(ABC):
    """Draws one sigma in [0, 1] per sample; may depend on the modality's token count."""

    def sample_for(self, tokens: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sigmas ``[B]`` for patchified ``tokens [B, T, C]`` (float32, on the tokens' device)."""
        return self.sample(tokens.shape[0], tokens.shape[1], tokens.device, generator)

    @abstractmethod
    def sample(self, batch: int, seq_len: int, device: torch.device, generator: torch.Generator | None) -> Tensor: ...


class UniformSampler(TimestepSampler):
    def __init__(self, min_value: float = 0.0, max_value: float = 1.0) -> None:
        check_range("min_value", min_value, 0.0, 1.0)
        check_range("max_value", max_value, min_value, 1.0)
        self.min_value, self.max_value = min_value, max_value

    def sample(self, batch: int, seq_len: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        u = torch.rand(batch, generator=generator, device=device)
        return self.min_value + (self.max_value - self.min_value) * u


class ConstantSampler(TimestepSampler):
    """Every sample at the same sigma: used by validation so that runs are comparable."""

    def __init__(self, value: float) -> None:
        check_range("value", value, 0.0, 1.0)
        self.value = value

    def sample(self, batch: int, seq_len: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        return torch.full((batch,), self.value, device=device)


# The LTX-2 shift: mu grows linearly with the token count, through (1024, 0.95) and (4096, 2.05).
_MU_AT_1024, _MU_AT_4096 = 0.95, 2.05
# Beyond about 80k tokens the logistic tails round to 1 even in float64; hold mu there instead of returning NaN.
_MU_MAX = 30.0
# Normal quantiles used to stretch the bulk of the distribution over [0, 1] (0.5% low tail, 0.1% high tail).
_LOW_Q, _HIGH_Q = 2.5758, 3.0902


def shift_mu(seq_len: int) -> float:
    """The logit-normal mean for a sequence of ``seq_len`` tokens (linear in the token count)."""
    return _MU_AT_1024 + (_MU_AT_4096 - _MU_AT_1024) / (4096 - 1024) * (seq_len - 1024)


class ShiftedLogitNormalSampler(TimestepSampler):
    """LTX-2's default: a logit-normal whose mean shifts up with the token count, stretched over [0, 1].

    Longer sequences need more noise to destroy the same information, so their sigmas are pushed higher.
    A fraction ``uniform_prob`` of the draws is uniform on [eps, 1] to keep every noise level visited.
    """

    def __init__(self, std: float = 1.0, eps: float = 1e-3, uniform_prob: float = 0.1) -> None:
        check_range("std", std, 0.0, lo_open=True)
        check_range("eps", eps, 0.0, 0.5)
        check_range("uniform_prob", uniform_prob, 0.0, 1.0)
        self.std, self.eps, self.uniform_prob = std, eps, uniform_prob

    def sample(self, batch: int, seq_len: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        mu = min(shift_mu(seq_len), _MU_MAX)
        normal = torch.randn(batch, generator=generator, device=device, dtype=torch.float64)
        s = torch.sigmoid(normal * self.std + mu)
        lo = 1 / (1 + math.exp(-(mu - _LOW_Q * self.std)))
        hi = 1 / (1 + math.exp(-(mu + _HIGH_Q * self.std)))
        s = (s - lo) / (hi - lo)
        s = torch.where(s < self.eps, 2 * self.eps - s, s).clamp(0.0, 1.0)
        uniform = self.eps + (1 - self.eps) * torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
        use_uniform = torch.rand(batch, generator=generator, device=device) < self.uniform_prob
        return torch.where(use_uniform, uniform, s).float()
