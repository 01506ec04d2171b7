"""File-system helpers shared by the data, the run directory and the sweeps: locks between processes, writes
that fail with the file named."""

from __future__ import annotations

import errno
import fcntl
import os
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ltxtune.errors import ConfigError, TrainingError


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


@contextmanager
def writing(path: Path, cleanup: Path | None = None) -> Iterator[None]:
    """Name ``path`` and its disk's free space when writing it fails; remove ``cleanup`` (a half-written file or
    directory) then.

    torch's and safetensors' writers report a full disk as ``RuntimeError`` / ``SafetensorError`` without the
    file: the body's failure becomes one ``OSError`` whose filename is ``path``.
    """
    try:
        yield
    except Exception as exc:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True) if cleanup.is_dir() else cleanup.unlink(missing_ok=True)
        if (isinstance(exc, OSError) and exc.filename is not None) or isinstance(exc, ConfigError | TrainingError):
            raise
        reason = next(iter(str(exc).splitlines()), type(exc).__name__)
        raise OSError(errno.EIO, f"writing failed ({reason}); {free_space(path)} free on its disk", str(path)) from exc


def free_space(path: Path) -> str:
    """The free space of the file system holding ``path`` (or its nearest existing parent), e.g. ``1.2 GiB``."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    for unit in ("B", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.1f} {unit}" if unit != "B" else f"{free} B"
        free /= 1024
    return f"{free:.1f} TiB"


def readable_by_all(path: Path) -> None:
    """The permissions a new file gets from the umask (safetensors writes ``0600``: others could not load it)."""
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in a few words (torch's message runs to a page)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in text:
        if "can still be loaded" in text:  # torch says so when only the objects are the trouble
            return "it holds Python objects besides tensors, which ltxtune does not unpickle (weights_only=True)"
        return "it is not a file torch.save wrote, or it is damaged"
    first = next(iter(text.splitlines()), "")
    return f"it is not a file torch.save wrote, or it is damaged ({type(exc).__name__}: {first})"
