"""File-system helpers shared by the data, the run directory and the sweeps: locks between processes."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) while the body runs; other holders wait.

    The lock goes with the process: a killed holder never leaves it taken.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def canonical_safetensors_header(path: Path) -> None:
    """Rewrite a safetensors file's header in place with its keys sorted, so equal tensors and metadata give
    equal bytes (the writer orders the header by a randomly seeded hash map). Offsets are unchanged."""
    import json

    with path.open("r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
        metadata = header.pop("__metadata__", None)
        ordered = {"__metadata__": dict(sorted(metadata.items()))} if metadata is not None else {}
        ordered.update(sorted(header.items()))
        text = json.dumps(ordered, separators=(",", ":")).encode()
        if len(text) > size:  # cannot happen for a reordering of the same entries; never corrupt the file
            raise ValueError(f"{path}: the sorted safetensors header is longer than the written one")
        handle.seek(8)
        handle.write(text + b" " * (size - len(text)))  # the format pads headers with spaces
