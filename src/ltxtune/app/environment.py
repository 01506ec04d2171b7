"""Can this Python environment run ltxtune? One line per broken import, naming the fix.

ltx-core, transformers and peft all import torchaudio, whose compiled library loads only beside the torch it
was built for: a torchaudio that does not match torch (a new release on the index, a CPU-only torch) breaks
every import above it with a long traceback. This module finds the root cause without importing anything
heavy until asked, so ``python train.py`` and the test suite can say in one line what is wrong.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
from dataclasses import dataclass

SETUP = 'pip install -e ".[dev]"'

# (module to import, the distribution that provides it). The order is the order of the root causes:
# torch and torchaudio first, since a bad pair breaks ltx-core, transformers and peft after them.
# TRAINING is what every run imports anyway (checking it costs nothing); peft and transformers (3 s) are
# imported by the LoRA adapter itself and checked with the rest by the test suite's first test.
TRAINING: tuple[tuple[str, str], ...] = (
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("safetensors", "safetensors"),
    ("accelerate", "accelerate"),
    ("ltx_core", "ltx-core"),
)
EVERYTHING: tuple[tuple[str, str], ...] = (
    *TRAINING,
    ("transformers", "transformers"),
    ("peft", "peft"),
    ("numpy", "numpy"),
    ("einops", "einops"),
    ("av", "av"),
    ("wandb", "wandb"),
    ("tqdm", "tqdm"),
    ("matplotlib", "matplotlib"),
    ("omegaconf", "omegaconf"),
    ("hydra", "hydra-core"),
    ("optuna", "optuna"),
    ("sqlalchemy", "sqlalchemy"),
    ("submitit", "submitit"),
    ("hydra_plugins.ltxtune_search", "ltxtune itself (its Optuna search)"),
    ("hydra_plugins.hydra_joblib_launcher.joblib_launcher", "hydra-joblib-launcher"),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher", "hydra-submitit-launcher"),
)


@dataclass(frozen=True)
class BrokenImport:
    """A module that does not import, the installed version of its distribution, and the first line of why."""

    module: str
    distribution: str
    version: str | None
    reason: str

    def line(self) -> str:
        installed = f"{self.distribution} {self.version}" if self.version else f"{self.distribution} (not installed)"
        return f"cannot import {self.module} ({installed}): {self.reason}; fix: {fix_for(self)}"


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def pinned_versions() -> dict[str, str]:
    """The exact pins (``name==version``) of the installed ltxtune; empty when it runs from a source tree."""
    try:
        requirements = metadata.requires("ltxtune") or []
    except metadata.PackageNotFoundError:
        return {}
    pins = {}
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep and ";" not in version:
            pins[name.strip().lower()] = version.strip()
    return pins


def torch_pair() -> str:
    """The torch / torchaudio pair to install, as a pip command."""
    pins = pinned_versions()
    if "torch" in pins and "torchaudio" in pins:
        return f"pip install torch=={pins['torch']} torchaudio=={pins['torchaudio']}"
    return "pip install the torch / torchaudio pair pinned in pyproject.toml"


def fix_for(broken: BrokenImport) -> str:
    pair_problem = broken.distribution in ("torch", "torchaudio") or "torchaudio" in broken.reason
    if pair_problem and installed_version("torch") and installed_version("torchaudio"):
        return f"install the tested pair: {torch_pair()}"
    return SETUP


def first_line(exc: BaseException) -> str:
    """The innermost cause (a missing symbol, not the wrapper that says a library did not load), one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


def try_import(module: str, distribution: str) -> BrokenImport | None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # an OSError from a compiled library is as fatal as an ImportError
        return BrokenImport(module, distribution, installed_version(distribution), first_line(exc))
    return None


def broken_imports(modules: tuple[tuple[str, str], ...] = EVERYTHING) -> list[BrokenImport]:
    """Import each module in turn; the ones that fail, in order (root causes first)."""
    return [broken for module, dist in modules if (broken := try_import(module, dist)) is not None]


def root_cause(broken: list[BrokenImport]) -> str:
    """One line for a user: the first broken import, and for a torch / torchaudio mismatch, the pair."""
    first = broken[0]
    if first.module == "torchaudio" and first.version is not None:
        torch_version = installed_version("torch")
        return (
            f"torchaudio {first.version} does not load beside torch {torch_version} ({first.reason});"
            f" install the tested pair: {torch_pair()}"
        )
    return first.line()


def check_training_environment() -> str | None:
    """``None`` when everything a training run imports works, else the one line that says what to fix."""
    broken = broken_imports(TRAINING)
    return root_cause(broken) if broken else None
