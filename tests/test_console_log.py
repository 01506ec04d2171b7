"""The run directory's train.log holds what the console showed: the start lines, warnings, the progress bar as
it ended, the summary, and the error of a run that stopped on one."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, SMALL, SMALL_SYNTHETIC
from ltxtune.app.console import ConsoleCopy


def train(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = [sys.executable, str(ROOT / "train.py"), *SMALL, *SMALL_SYNTHETIC, f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.run(args, cwd=run_dir.parent, capture_output=True, text=True, timeout=300)


def test_train_log_holds_the_warnings_progress_and_final_status_the_console_showed(
    synthetic_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = train(run_dir, f"data.root={synthetic_root}", "trainer.max_steps=3")  # warmup 5 > 3 steps: a warning
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (run_dir / "train.log").read_text()
    warning = "warning: scheduler.warmup_steps=5 >= trainer.max_steps=3"
    final = next(line for line in proc.stdout.splitlines() if line.startswith("  status completed, 3 steps"))
    assert warning in proc.stdout + proc.stderr  # what the console showed ...
    lines = log.splitlines()
    assert any(line.startswith(warning) for line in lines) and final in lines  # ... is in the file, in order
    assert log.index(warning) < log.index("cpu threads:") < log.index("train: 100%") < log.index(final)
    assert "\r" not in log  # the bar's redraws are not all kept: the line it ended on is
    assert sum(line.startswith("train:") for line in lines) == 1


def test_train_log_ends_with_the_error_line_of_a_refused_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = train(run_dir, "optimizer.lr=-1")
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("error: optimizer.lr=-1")
    assert (run_dir / "train.log").read_text().splitlines()[-1] == error


def test_a_progress_bar_is_kept_as_the_line_it_ends_on_and_once_a_minute_while_it_runs() -> None:
    console, log = io.StringIO(), io.StringIO()
    copy = ConsoleCopy(console, log, progress_every_s=60.0)
    for text in ("\rtrain: 10%", "\rtrain: 20%", "\rstep 2: validation", "\rtrain: 100%", "\n", "saving x\n"):
        copy.write(text)
    assert console.getvalue().endswith("\rtrain: 100%\nsaving x\n")  # the console gets everything
    assert log.getvalue() == "train: 100%\nsaving x\n"

    every_redraw = io.StringIO()
    copy = ConsoleCopy(io.StringIO(), every_redraw, progress_every_s=0.0)  # as if a minute passed between them
    copy.write("\rtrain: 10%\rtrain: 20%\r")
    copy.close()  # a bar never closed (the run was killed) still leaves its last state
    assert every_redraw.getvalue() == "train: 10%\ntrain: 20%\n"
