"""Precomputed datasets: the on-disk layout, batching by shape, and the synthetic default."""
