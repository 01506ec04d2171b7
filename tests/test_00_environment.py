"""The suite's first test: every dependency the code uses imports, and a broken environment says why in one line.

The conftest's session start runs the same check and stops the suite at once with one line per broken import,
so a bad install never shows as a hundred collection tracebacks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ltxtune.app.environment import EVERYTHING, broken_imports, root_cause, try_import

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("module", "distribution"), EVERYTHING, ids=[m for m, _ in EVERYTHING])
def test_dependency_imports(module: str, distribution: str) -> None:
    broken = try_import(module, distribution)
    assert broken is None, broken.line()


def fake_torchaudio(root: Path, version: str = "2.11.1") -> Path:
    """A torchaudio that fails to load the way a build for another torch does (the real 2.11.1 beside 2.11.0)."""
    package = root / "torchaudio"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise OSError('/site-packages/torchaudio/lib/libtorchaudio.so: undefined symbol: "
        "torch_exception_get_what_without_backtrace')\n"
    )
    info = root / f"torchaudio-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torchaudio\nVersion: {version}\n")
    return root


def test_missing_package_names_the_setup_command() -> None:
    broken = try_import("no_such_module_ltxtune", "no-such-dist")
    assert broken is not None
    assert broken.line().startswith("cannot import no_such_module_ltxtune (no-such-dist (not installed)): ")
    assert broken.line().endswith('fix: pip install -e ".[dev]"')


def test_mismatched_torchaudio_is_the_root_cause(tmp_path: Path) -> None:
    code = (
        "from ltxtune.app.environment import broken_imports, root_cause;"
        "b = broken_imports((('torch', 'torch'), ('torchaudio', 'torchaudio')));"
        "print(len(b)); print(root_cause(b))"
    )
    env = {"PYTHONPATH": str(fake_torchaudio(tmp_path / "fake"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    count, line = out.strip().splitlines()
    assert count == "1"  # torch itself imports: only torchaudio is broken
    assert line.startswith("torchaudio 2.11.1 does not load beside torch ")
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in line
    assert "install the tested pair: pip install torch==" in line and " torchaudio==" in line


def test_train_in_a_broken_environment_prints_one_line(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(fake_torchaudio(tmp_path / "fake")), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "train.py", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: torchaudio 2.11.1 does not load beside torch ")
    assert "pip install torch==" in lines[0]


def test_only_failing_imports_are_listed_root_cause_first() -> None:
    broken = broken_imports((("no_such_module_a", "dist-a"), ("json", "json"), ("no_such_module_b", "dist-b")))
    assert [b.module for b in broken] == ["no_such_module_a", "no_such_module_b"]
    assert root_cause(broken).startswith("cannot import no_such_module_a ")
