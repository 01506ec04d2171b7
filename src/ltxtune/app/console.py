"""The run directory's log file holds what the console showed: ``with console_copied(run_dir / "train.log")``.

Everything the job prints to stdout and stderr (the start lines, warnings, left-out samples, the progress bar,
the summary) goes to the console as before and, line by line, to the log file, after what Hydra's logging
writes there. A progress bar redraws its line many times a second: the file keeps the line it ends on, and
once a minute the state it is in, so that a long run's log shows its progress without every redraw. A job that
ends in an error leaves the error there too.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

PROGRESS_EVERY_S = 60.0


class ConsoleCopy:
    """A text stream that writes to ``console`` and copies each finished line to ``log``."""

    def __init__(self, console: TextIO, log: TextIO, progress_every_s: float = PROGRESS_EVERY_S) -> None:
        self.console, self.log, self.progress_every_s = console, log, progress_every_s
        self.line = ""  # the text since the last newline or carriage return
        self.shown = ""  # the last complete redraw of the current line (a progress bar's state)
        self.shown_kept = False  # whether the log has it already (a once-a-minute progress line)
        self.last_progress = time.monotonic()

    def write(self, text: str) -> int:
        written = self.console.write(text)
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\n":
                self.end_line()
            elif piece == "\r":  # a redraw starts: what came before is the line as it was shown
                if self.line.strip():
                    self.shown, self.shown_kept = self.line, False
                    if time.monotonic() - self.last_progress >= self.progress_every_s:
                        self.keep(self.shown)
                        self.shown_kept, self.last_progress = True, time.monotonic()
                self.line = ""
            else:
                self.line += piece
        return written

    def keep(self, line: str) -> None:
        if line.strip() and not self.log.closed:
            try:
                self.log.write(line.rstrip() + "\n")
            except OSError:  # a full or vanished disk ends the copy, never the run
                self.log.close()

    def end_line(self) -> None:
        """The line is over: keep what it showed last (a bar's final redraw is followed by its newline)."""
        if self.line.strip():
            self.keep(self.line)
        elif not self.shown_kept:
            self.keep(self.shown)
        self.line, self.shown, self.shown_kept = "", "", False

    def close(self) -> None:
        """Keep a line left without its newline (a bar the job did not close)."""
        self.end_line()

    def flush(self) -> None:
        self.console.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the console's
        return getattr(self.console, name)


class ConsoleLog:
    """The copy of stdout and stderr in a log file; ``move_to`` carries it to another run directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = self.open(path)
        self.out, self.err = ConsoleCopy(sys.stdout, self.log), ConsoleCopy(sys.stderr, self.log)
        sys.stdout, sys.stderr = self.out, self.err

    @staticmethod
    def open(path: Path) -> TextIO:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("a", encoding="utf-8", buffering=1)

    def move_to(self, path: Path) -> None:
        """Go on in ``path`` (the run a resumed job continued), after what the file held so far."""
        if path.resolve() == self.path.resolve():
            return
        self.log.close()
        with self.open(path) as moved:
            moved.write(self.path.read_text(encoding="utf-8"))
        self.path, self.log = path, self.open(path)
        self.out.log = self.err.log = self.log

    def write(self, text: str) -> None:
        """Finish the copies' open lines, then write ``text``."""
        self.out.close()
        self.err.close()
        if text and not self.log.closed:
            self.log.write(text)

    def close(self) -> None:
        self.write("")
        sys.stdout, sys.stderr = self.out.console, self.err.console
        self.log.close()


@contextmanager
def console_copied(path: Path, enabled: bool = True) -> Iterator[ConsoleLog | None]:
    """While the body runs, append what it prints to ``path`` (``enabled``: the main process only). An error
    that ends the body is written there too: the ``error: ...`` line of a user's mistake, else the traceback."""
    if not enabled:
        yield None
        return
    copy = ConsoleLog(path)
    try:
        yield copy
    except SystemExit as exc:
        if isinstance(exc.code, str):
            copy.write(exc.code + "\n")
        raise
    except BaseException as exc:
        copy.write("".join(traceback.format_exception(exc)))
        raise
    finally:
        copy.close()
