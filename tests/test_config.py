"""Every config option composes and builds; bad values stop early with the key, the value and the range."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_cfg
from ltxtune.errors import ConfigError, DataError
from ltxtune.training.parts import build_parts, instantiate_node
from ltxtune.training.run import train

# Groups whose options are single objects (experiment/sweep/hparams_search are overlays, tested elsewhere).
OBJECT_GROUPS = ("model", "strategy", "sampler", "lora", "data", "optimizer", "scheduler", "logger")


def group_options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in OBJECT_GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_group_option_composes_and_instantiates(group: str, option: str, tmp_path) -> None:
    extra = []
    if (group, option) == ("model", "ltx2"):  # needs a real-layout checkpoint file
        from ltxtune.model.tiny import write_tiny_checkpoint

        extra = [f"model.checkpoint={write_tiny_checkpoint(tmp_path / 'tiny.safetensors')}"]
    cfg = compose_cfg(f"{group}={option}", *extra, data_root=tmp_path)
    assert OmegaConf.select(cfg, f"{group}._target_"), f"{group}/{option}.yaml has no _target_"
    obj = instantiate_node(cfg, group)
    assert type(obj).__name__ == cfg[group]._target_.rsplit(".", 1)[-1]


def test_default_config_builds_every_part(tmp_path) -> None:
    parts = build_parts(compose_cfg(data_root=tmp_path))
    assert parts.trainer.max_steps == 4 and parts.lora.rank == 16


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("trainer.max_steps=0", "trainer.max_steps=0", ">= 1"),
        ("optimizer.lr=-1", "optimizer.lr=-1", "> 0"),
        ("strategy.first_frame_p=1.5", "strategy.first_frame_p=1.5", "<= 1"),
        ("lora.rank=0", "lora.rank=0", ">= 1"),
        ("trainer.mixed_precision=fp8", "trainer.mixed_precision='fp8'", "'bf16'"),
        ("sampler.uniform_prob=2", "sampler.uniform_prob=2", "<= 1"),
    ],
)
def test_out_of_range_value_names_key_value_and_range(override: str, key: str, allowed: str, tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        train(compose_cfg(override, data_root=tmp_path / "data"), tmp_path / "run")
    message = str(info.value)
    assert message.startswith(key) and allowed in message
    # Refused before anything was built: no dataset was generated, no weights written.
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "run" / "lora.safetensors").exists()


def test_cli_bad_value_is_one_line_and_exit_code_1(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.max_steps=0", "logger=none", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: trainer.max_steps=0 is not allowed: must be >= 1"


def test_cli_misspelt_key_and_wrong_option_get_hydras_messages(tmp_path) -> None:
    run = [sys.executable, "train.py", f"hydra.run.dir={tmp_path}"]
    typo = subprocess.run([*run, "trainer.max_stepz=3"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert typo.returncode != 0 and "Key 'max_stepz' is not in struct" in typo.stderr
    option = subprocess.run([*run, "sampler=lognormal"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert option.returncode != 0 and "Available options in 'sampler'" in option.stderr
    assert "shifted_logit_normal" in option.stderr and "uniform" in option.stderr


def test_cfg_job_does_not_import_torch() -> None:
    """`--help` and `--cfg job` load only Hydra: the app module must keep torch and friends out."""
    heavy = "('torch', 'accelerate', 'wandb', 'ltx_core')"
    code = f"import sys, ltxtune.app.train; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_missing_data_root_names_the_directory_and_strategy(tmp_path) -> None:
    cfg = compose_cfg("data=precomputed", f"data.root={tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*TextToVideo"):
        train(cfg, tmp_path / "run")


def test_data_root_without_a_needed_directory_names_it(tmp_path) -> None:
    (tmp_path / "data" / "latents").mkdir(parents=True)
    cfg = compose_cfg("data=precomputed", f"data.root={tmp_path / 'data'}")
    with pytest.raises(DataError, match=r"lacks conditions/.*TextToVideo"):
        train(cfg, tmp_path / "run")


def test_sample_file_that_is_not_plain_tensors_is_refused(synthetic_root, tmp_path) -> None:
    import shutil

    import torch

    cfg = compose_cfg(data_root=synthetic_root)
    build_parts(cfg).data.prepare()
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    bad = root / "latents" / "sample_0000.pt"
    torch.save({"latents": torch.zeros(128, 3, 4, 6), "payload": object()}, bad)
    cfg = compose_cfg("data=precomputed", f"data.root={root}")
    with pytest.raises(DataError, match=r"latents/sample_0000.pt: not a plain tensor file"):
        train(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["lora.rank=sixteen"], "lora.rank='sixteen' is not allowed: a value of type int"),
        (["optimizer.lr=fast"], "optimizer.lr='fast' is not allowed: a value of type float"),
        (["optimizer.lr=nan"], "optimizer.lr=nan is not allowed: must be a finite number > 0.0"),
        (["optimizer.lr=inf"], "optimizer.lr=inf is not allowed: must be a finite number > 0.0"),
        (["optimizer.betas=0.9"], "optimizer.betas=0.9 is not allowed: two numbers in [0, 1]"),
        (["optimizer.betas=[0.9,nan]"], "optimizer.betas[1]=nan is not allowed: must be a finite number"),
        (["lora.alpha=nan"], "lora.alpha=nan is not allowed: must be a finite number > 0.0"),
        (["lora.dropout=nan"], "lora.dropout=nan is not allowed: must be a finite number >= 0.0 and <= 1.0"),
        (["lora.target_modules=to_q"], "lora.target_modules='to_q' is not allowed: a list of str"),
        (["trainer.max_grad_norm=nan"], "trainer.max_grad_norm=nan is not allowed: must be a finite number >= 0.0"),
        (["scheduler.warmup_steps=five"], "scheduler.warmup_steps='five' is not allowed: a value of type int"),
        (["sampler.std=wide"], "sampler.std='wide' is not allowed: a value of type float"),
        (["strategy.first_frame_p=nan"], "strategy.first_frame_p=nan is not allowed: must be a finite number"),
        (["strategy.with_audio=maybe"], "strategy.with_audio='maybe' is not allowed: a value of type bool"),
        (
            ["experiment=i2v", "strategy.video.conditions.0.probability=often"],
            "strategy.video.conditions[0].probability='often' is not allowed: a value of type float",
        ),
    ],
)
def test_a_word_nan_or_infinity_where_a_number_belongs_is_refused_with_its_key(overrides, line) -> None:
    """Hydra reads ``nan``, ``inf`` and words as they are; the run refuses them before anything is built instead
    of training on NaN weights or failing with a traceback in a comparison."""
    with pytest.raises(ConfigError) as info:
        build_parts(compose_cfg(*overrides))
    assert str(info.value).startswith(line)


def test_bad_value_in_a_nested_condition_names_its_full_key() -> None:
    cfg = compose_cfg("experiment=i2v", "strategy.video.conditions.0.probability=1.5")
    with pytest.raises(ConfigError, match=r"^strategy\.video\.conditions\[0\]\.probability=1\.5 is not allowed"):
        build_parts(cfg)
