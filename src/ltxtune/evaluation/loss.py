"""Validation loss: held-out samples at fixed sigmas with fixed noise, comparable across runs and sweeps."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ltxtune.data.batch import Batch, TextEncoder, collate
from ltxtune.data.dataset import PrecomputedDataset
from ltxtune.data.sampler import group_by_shape
from ltxtune.diffusion.samplers import ConstantSampler
from ltxtune.errors import TrainingError
from ltxtune.evaluation.settings import ValidationSettings
from ltxtune.strategies.base import TrainingStrategy

Progress = Callable[[int, int], None]  # (forwards done, forwards in all)


class ValidationLoss:
    """Mean per-sample loss over every held-out sample at every sigma in ``settings.sigmas``, and at each sigma.

    The noise and the strategy's condition draws come from generators seeded by ``settings.seed``, the
    sigma and the batch index, so every evaluation (and every run with the same data) sees the same draws.
    """

    def __init__(
        self, dataset: PrecomputedDataset, settings: ValidationSettings, batch_size: int, device: torch.device
    ) -> None:
        self.settings, self.device = settings, device
        groups = group_by_shape([dataset.shape_key(i) for i in range(len(dataset))])
        indices = [group[i : i + batch_size] for group in groups for i in range(0, len(group), batch_size)]
        # Held-out sets are small: load them once and keep them on the device.
        self.batches = [collate([dataset[i] for i in chunk]).to(device) for chunk in indices]

    @torch.no_grad()
    def __call__(
        self,
        transformer: nn.Module,
        encode_text: TextEncoder,
        strategy: TrainingStrategy,
        progress: Progress = lambda done, total: None,
    ) -> dict[str, float]:
        """``{"val/loss": mean, "val/loss_sigma_<s>": mean at s, ...}`` (every sigma weighs the same) of
        ``strategy``'s per-sample loss with ``transformer`` (text through ``encode_text``); ``progress(done,
        total)`` after each of the ``len(sigmas) * len(batches)`` forwards."""
        metrics, total, count = {}, 0.0, 0
        forwards = len(self.settings.sigmas) * len(self.batches)
        for j, sigma in enumerate(self.settings.sigmas):
            sampler = ConstantSampler(float(sigma))
            at_sigma, n = 0.0, 0
            for k, batch in enumerate(self.batches):
                g = torch.Generator(self.device).manual_seed(self.settings.seed * 1_000_003 + j * 1009 + k)
                losses = per_sample_loss(transformer, strategy, batch.encoded(encode_text), sampler, g)
                at_sigma += float(losses.float().sum())
                n += losses.numel()
                progress(j * len(self.batches) + k + 1, forwards)
            metrics[f"val/loss_sigma_{float(sigma):g}"] = at_sigma / n
            total, count = total + at_sigma, count + n
        if total == 0.0:  # exactly: no held-out sample has a scored token, so the number compares nothing
            raise TrainingError(
                f"the validation loss is exactly 0 over {count} held-out samples at {len(self.settings.sigmas)} "
                "sigmas: the strategy generates no token of any of them (a mask threshold above every mask value, "
                "or masks that give the whole clip), so the loss measures nothing; check the masks and thresholds"
            )
        return {"val/loss": total / count, **metrics}


def per_sample_loss(
    transformer: nn.Module,
    strategy: TrainingStrategy,
    batch: Batch,
    sampler: ConstantSampler,
    generator: torch.Generator,
) -> Tensor:
    """The strategy's per-sample loss ``[B]`` of one batch (text features encoded), as a training step has it."""
    inputs = strategy.prepare_training_inputs(batch, sampler, generator)
    video, audio = transformer(video=inputs.video, audio=inputs.audio, perturbations=None)
    return strategy.compute_loss(video, audio, inputs)
