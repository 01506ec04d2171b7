"""Preprocessing: dataset file -> decoded, bucketed clips -> ltx-core encoders -> the precomputed layout.

``manifest`` reads the dataset file, ``media`` decodes with PyAV, ``buckets`` picks each clip's size,
``encoders`` / ``text`` hold the encoders, ``pipeline`` writes samples and ``demo`` makes demo clips;
``ltxtune.app.preprocess`` is the Hydra entry point of ``preprocess.py``.
"""
