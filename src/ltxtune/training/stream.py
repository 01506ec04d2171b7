"""This rank's training batches from the current data position on; the position is what a checkpoint keeps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from ltxtune.data.batch import Batch, collate
from ltxtune.data.dataset import PrecomputedDataset
from ltxtune.data.dropout import CaptionDropout
from ltxtune.data.sampler import BucketBatchSampler
from ltxtune.training.settings import LoaderSettings


class BatchStream:
    """Shape-bucketed batches of ``dataset`` in ``batches``' order, read ahead by workers when configured.

    ``consumed`` counts the micro-batches the loop has taken (not those a worker read ahead): a resumed run
    replays the order from there, so it sees exactly the batches an uninterrupted run would, with the same
    captions dropped (``dropout``: which samples see the empty prompt follows that position too).
    """

    def __init__(
        self,
        dataset: PrecomputedDataset,
        batches: BucketBatchSampler,
        loader: LoaderSettings,
        device: torch.device,
        dropout: CaptionDropout | None = None,
    ) -> None:
        self.dataset, self.batches, self.loader, self.device = dataset, batches, loader, device
        self.dropout = dropout
        self.consumed = 0
        self._batches: Iterator[Batch] | None = None

    def describe(self, names: Sequence[str]) -> str:
        """Samples by file, for a message: ``a.pt, b.pt under /data (latents/, conditions/)``."""
        dirs = ", ".join(f"{d}/" for d in self.dataset.needs.directories())
        return f"{', '.join(names)} under {self.dataset.root} ({dirs})"

    def next(self) -> Batch:
        if self._batches is None:  # opened on first use: after a checkpoint has set the position
            self._batches = self._open()
        position, self.consumed = self.consumed, self.consumed + 1
        batch = next(self._batches)
        if self.dropout is not None:
            batch = self.dropout.apply(batch, position)
        return batch.to(self.device)

    def _open(self) -> Iterator[Batch]:
        indices = self.batches.iterate(self.consumed)
        if self.loader.num_workers == 0:
            return (collate([self.dataset[i] for i in chunk]) for chunk in indices)
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=indices,
                collate_fn=collate,
                num_workers=self.loader.num_workers,
                pin_memory=self.loader.pin_memory,
                prefetch_factor=self.loader.prefetch_factor,
                persistent_workers=False,
            )
        )

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.consumed = int(state["consumed"])
        self._batches = None
