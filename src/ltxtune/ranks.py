"""Which process this is under torchrun / accelerate launch, read from the launcher's environment.

Read before any process group exists (Hydra's entry point, the sweep callback, preprocessing), so it cannot
ask ``torch.distributed``; a plain ``python`` process is rank 0 of 1.
"""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_rank() -> bool:
    """Rank 0 (or a single process): the only one that writes run files and prints summaries."""
    return rank() == 0


def local_world_size() -> int:
    """The processes of this run on this machine (torchrun and accelerate launch set it; 1 for plain python)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
