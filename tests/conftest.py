"""Shared test helpers: compose the package's configs and shrink them so a run takes seconds."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import ltxtune.conf

ROOT = Path(__file__).resolve().parents[1]
CONF = Path(ltxtune.conf.__file__).parent  # the configs of the code under test, shipped in the package


def pytest_sessionstart(session: pytest.Session) -> None:
    """A broken environment stops the suite here, one line per broken import, before any test module loads."""
    from ltxtune.app.environment import broken_imports

    if broken := broken_imports():
        print("\n".join(b.line() for b in broken), file=sys.stderr)
        pytest.exit(f"the environment is broken: {len(broken)} imports fail (listed above)", returncode=1)


SMALL = [
    "trainer.max_steps=4",
    "trainer.batch_size=2",
    "validation.every=0",
    "validation.sigmas=[0.5]",
    "logger=none",
]
SMALL_SYNTHETIC = ["data.num_samples=12", "data.val_samples=2"]


def compose_cfg(*overrides: str, small: bool = True, data_root: Path | None = None) -> DictConfig:
    """Compose ``train.yaml`` like the command line would, with ``overrides`` applied last."""
    extra = list(SMALL if small else [])
    if small and not any(o.startswith("data=") and o != "data=synthetic" for o in overrides):
        extra += SMALL_SYNTHETIC
    if data_root is not None:
        extra.append(f"data.root={data_root}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[*extra, *overrides])


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset shared by the whole session (generated on first use by the data option)."""
    return tmp_path_factory.mktemp("data") / "synthetic"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LTX-2 checkpoint in the real layout (transformer and text connectors), read-only for the tests."""
    from ltxtune.model.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "ltx2-tiny.safetensors")


def python_snippet(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.S).group(1)


def run_snippet(card: str, where: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a model card's Python snippet as written, from the run directory; returns its ``transformer``."""
    monkeypatch.chdir(where)
    scope: dict = {}
    exec(compile(python_snippet(card), str(where / "README.md"), "exec"), scope)  # the card's own code, as written
    return scope["transformer"]


def ltx_core_fused(checkpoint: Path, lora_file: Path):
    """The transformer ltx-core's own loader builds from ``checkpoint`` with ``lora_file`` fused (float32, CPU)."""
    import torch
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator

    from ltxtune.ltx_core_api import float32_lora_fusion

    builder = SingleGPUModelBuilder(
        model_class_configurator=LTXModelConfigurator,
        model_path=str(checkpoint),
        model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,
        **float32_lora_fusion(),
    )
    fused = builder.lora(str(lora_file), 1.0, sd_ops=LTXV_LORA_COMFY_RENAMING_MAP)
    return fused.build(device=torch.device("cpu"), dtype=torch.float32).float()
