"""torch's CPU threads in a run: the cores the process may use, shared by this machine's processes, one core left
free, and OMP_NUM_THREADS when the user (or the launcher) set it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import compose_cfg
from ltxtune.training import threads
from ltxtune.training.run import train


@pytest.fixture
def torch_threads():
    """Whatever a test sets, the session goes on with the threads it had."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "processes", "expected"),
    [(2, 1, 1), (4, 1, 3), (16, 2, 7), (8, 8, 1), (64, 1, threads.MAX_THREADS), (1, 1, 1)],
)
def test_the_threads_share_the_cores_among_the_processes_leaving_one_free(
    cores: int, processes: int, expected: int
) -> None:
    assert threads.choose_threads(None, cores, processes).count == expected


def test_omp_num_threads_is_kept(torch_threads: None) -> None:
    torch.set_num_threads(1)  # what torch made of OMP_NUM_THREADS=1 at start-up
    chosen = threads.choose_threads("1", cores=16, local_processes=1)
    assert chosen.count == 1 and "OMP_NUM_THREADS=1" in chosen.line()


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_a_container_cpu_quota_bounds_the_cores(files: dict[str, str], cpus: float | None, tmp_path: Path) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cpu_quota(tmp_path) == cpus


def test_a_run_sets_the_threads_and_says_so(
    torch_threads: None, monkeypatch: pytest.MonkeyPatch, synthetic_root: Path, tmp_path: Path, capsys
) -> None:
    """A 4-core machine, one process, no OMP_NUM_THREADS: torch's default (a thread per core) becomes 3."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    torch.set_num_threads(4)
    train(compose_cfg("trainer.max_steps=1", data_root=synthetic_root), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert torch.get_num_threads() == 3
    assert "cpu threads: 3 per process (4 usable cores, 1 process" in capsys.readouterr().out
