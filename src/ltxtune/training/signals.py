"""SIGTERM (a cluster's preemption) and Ctrl-C stop a run at the next step boundary, with a checkpoint."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


class Stoppable(Protocol):
    stop_requested: bool
    stopped_by: str


@contextmanager
def stop_on_signals(trainer: Stoppable) -> Iterator[None]:
    """SIGTERM and Ctrl-C ask the trainer to checkpoint and stop at the next step boundary; a second Ctrl-C
    aborts at once (``KeyboardInterrupt``)."""

    def request(signum: int, frame: FrameType | None) -> None:
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.stop_requested, trainer.stopped_by = True, STOP_SIGNALS[signum]
        if signum == signal.SIGINT:
            print(
                "\nCtrl-C: stopping at the end of this step and saving a checkpoint (Ctrl-C again aborts)", flush=True
            )

    try:
        previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
