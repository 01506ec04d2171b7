"""The CPU benchmark can be run again and again: its one-step run never meets the previous one's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltxtune.app.bench import startup_to_first_step


@pytest.mark.slow
def test_the_one_step_run_works_every_time_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # where a run directory relative to the working directory would land
    times = [startup_to_first_step(str(tmp_path / "data")) for _ in range(2)]
    assert all(t > 0 for t in times)
    assert not list(Path.cwd().iterdir())
