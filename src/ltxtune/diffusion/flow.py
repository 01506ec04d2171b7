"""Rectified-flow math shared by every strategy: noising, velocity targets, per-token timesteps, masked loss.

All functions are pure. Token tensors are patchified: ``[B, T, C]``; masks are boolean ``[B, T]``
where True means "this token is conditioning" (``cond``) or "this token is scored" (``loss_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor) -> Tensor:
    """``x_t = (1 - sigma) * x0 + sigma * noise`` with ``sigma`` of shape ``[B]``."""
    s = sigma.view(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The flow-matching regression target ``noise - x0``."""
    return noise - x0


def per_token_timesteps(sigma: Tensor, cond: Tensor) -> Tensor:
    """``[B]`` sigma broadcast to ``[B, T]``, zero on conditioning tokens (they are clean)."""
    return torch.where(cond, torch.zeros((), dtype=sigma.dtype, device=sigma.device), sigma.view(-1, 1))


def masked_loss(pred: Tensor, target: Tensor, loss_mask: Tensor) -> Tensor:
    """Per-sample mean squared error over scored tokens: ``[B, T, C]`` x2, ``[B, T]`` -> ``[B]``.

    Normalised by the fraction of scored tokens, so samples with few scored tokens weigh the same.
    """
    mask = loss_mask.unsqueeze(-1).to(pred.dtype)
    se = (pred.float() - target.float()).pow(2) * mask
    return se.mean(dim=(1, 2)) / mask.float().mean(dim=(1, 2)).clamp_min(1e-8)


@dataclass(frozen=True)
class NoisedTokens:
    """One modality's tokens after noising: what the model sees and what it is scored against.

    Shapes: ``latent``/``target`` ``[B, T, C]``, ``timesteps``/``cond``/``loss_mask`` ``[B, T]``, ``sigma`` ``[B]``.
    """

    latent: Tensor
    target: Tensor
    timesteps: Tensor
    sigma: Tensor
    cond: Tensor
    loss_mask: Tensor


def noise_tokens(x0: Tensor, sigma: Tensor, cond: Tensor, generator: torch.Generator | None) -> NoisedTokens:
    """Noise ``x0 [B, T, C]`` at ``sigma [B]``, keeping the ``cond [B, T]`` tokens clean at timestep 0.

    Conditioning tokens are never scored.
    """
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = add_noise(x0, noise, sigma)
    latent = torch.where(cond.unsqueeze(-1), x0, x_t)
    return NoisedTokens(
        latent=latent,
        target=velocity_target(x0, noise),
        timesteps=per_token_timesteps(sigma, cond),
        sigma=sigma,
        cond=cond,
        loss_mask=~cond,
    )


def clean_tokens(x0: Tensor) -> NoisedTokens:
    """A frozen modality ``x0 [B, T, C]``: every token conditioning (clean, sigma 0, timestep 0), none scored.

    The target is zero: a frozen modality has nothing to predict, it is only attended to.
    """
    b, t, _ = x0.shape
    cond = torch.ones(b, t, dtype=torch.bool, device=x0.device)
    zeros = torch.zeros(b, device=x0.device)
    return NoisedTokens(
        latent=x0,
        target=torch.zeros_like(x0),
        timesteps=per_token_timesteps(zeros, cond),
        sigma=zeros,
        cond=cond,
        loss_mask=~cond,
    )


def condition_tokens(noised: NoisedTokens, x0: Tensor, mask: Tensor) -> NoisedTokens:
    """Turn the ``mask [B, T]`` tokens into conditioning: latent ``x0 [B, T, C]``, timestep 0, never scored.

    For a binary ``m`` this is ``x = m*x0 + (1-m)*x_t; timesteps *= (1-m); loss_mask &= (m == 0)``;
    ``torch.where`` keeps it exact whatever the dtype. Earlier conditioning is kept (masks accumulate).
    """
    return replace(
        noised,
        latent=torch.where(mask.unsqueeze(-1), x0, noised.latent),
        timesteps=noised.timesteps.masked_fill(mask, 0),
        cond=noised.cond | mask,
        loss_mask=noised.loss_mask & ~mask,
    )


def prepend_clean(noised: NoisedTokens, clean: Tensor) -> NoisedTokens:
    """Put clean tokens ``clean [B, R, C]`` before the sequence (IC-LoRA references): ``[clean | noised]``.

    They get timestep 0, no loss, and a zero target, so that targets and masks stay aligned with the
    sequence the model sees; ``masked_loss`` is unchanged by unscored tokens.
    """
    b, r, _ = clean.shape
    cond = torch.ones(b, r, dtype=torch.bool, device=clean.device)
    return replace(
        noised,
        latent=torch.cat([clean.to(noised.latent.dtype), noised.latent], dim=1),
        target=torch.cat([torch.zeros_like(clean, dtype=noised.target.dtype), noised.target], dim=1),
        timesteps=torch.cat([noised.timesteps.new_zeros(b, r), noised.timesteps], dim=1),
        cond=torch.cat([cond, noised.cond], dim=1),
        loss_mask=torch.cat([~cond, noised.loss_mask], dim=1),
    )
