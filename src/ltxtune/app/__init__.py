"""Entry points: the Hydra apps of ``train.py`` and ``preprocess.py``, the dry-run estimate, the benchmark, the
environment check."""
