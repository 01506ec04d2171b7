"""A resumable batch sampler that never mixes shapes in one batch and shards batches over ranks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch


def group_by_shape(shape_keys: Sequence[object]) -> list[list[int]]:
    """Indices grouped by equal shape key, groups in order of first appearance: only equal shapes collate."""
    buckets: dict[object, list[int]] = defaultdict(list)
    for index, key in enumerate(shape_keys):
        buckets[key].append(index)
    return list(buckets.values())


class BucketBatchSampler:
    """Yields lists of dataset indices forever: epoch after epoch, each batch from one shape bucket.

    The order of epoch ``e`` depends only on ``(seed, e)``, so ``iterate(start)`` gives a resumed run exactly
    the batches the uninterrupted one would have seen.
    Rank ``r`` of ``world`` takes every ``world``-th batch starting at ``r``.
    """

    def __init__(self, shape_keys: Sequence[object], batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.buckets = group_by_shape(shape_keys)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world

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

    def iterate(self, start: int = 0) -> Iterator[list[int]]:
        """This rank's batches, endlessly, from its ``start``-th batch on (the position a checkpoint saves)."""
        epoch = 0
        while True:
            mine = self.epoch_batches(epoch)[self.rank :: self.world]
            if not mine:
                raise ValueError(f"too few samples for {self.world} ranks with batch size {self.batch_size}")
            if start < len(mine):
                yield from mine[start:]
                start = 0
            else:
                start -= len(mine)
            epoch += 1

    def __iter__(self) -> Iterator[list[int]]:
        return self.iterate(0)
