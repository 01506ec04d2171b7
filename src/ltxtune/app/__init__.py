"""Entry points: the Hydra training app (``train.py``), the dry-run estimate, the benchmark, the environment check."""

from ltxtune.app.train import CONFIG_DIR, main

__all__ = ["CONFIG_DIR", "main"]
