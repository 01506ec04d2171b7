"""A resumable batch sampler that never mixes shapes in one batch and shards batches over ranks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch


class BucketBatchSampler:
    """Yields lists of dataset indices forever: epoch after epoch, each batch from one shape bucket.

    The order of epoch ``e`` depends only on ``(seed, e)``, and ``state_dict`` holds the epoch and
    position, so a resumed run sees exactly the batches the uninterrupted one would have.
    Rank ``r`` of ``world`` takes every ``world``-th batch starting at ``r``.
    """

    def __init__(self, shape_keys: Sequence[object], batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        buckets: dict[object, list[int]] = defaultdict(list)
        for index, key in enumerate(shape_keys):
            buckets[key].append(index)
        self.buckets = list(buckets.values())
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.epoch, self.position = 0, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of one epoch, in order, for all ranks; short bucket tails form smaller batches."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        batches = []
        for bucket in self.buckets:
            order = [bucket[i] for i in torch.randperm(len(bucket), generator=g).tolist()]
            batches += [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        # Every rank must take the same number of steps per epoch: drop the tail that cannot be shared.
        usable = len(shuffled) - len(shuffled) % self.world
        return shuffled[:usable]

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            batches = self.epoch_batches(self.epoch)
            if not batches:
                raise ValueError(f"too few samples for {self.world} ranks")
            mine = batches[self.rank :: self.world]
            while self.position < len(mine):
                self.position += 1
                yield mine[self.position - 1]
            self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
