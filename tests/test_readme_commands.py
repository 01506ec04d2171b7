"""The commands of the README and of the docs pages, run as a newcomer types them: each in a real subprocess.

Training is shortened to a few steps, and placeholders (``/path/to/data``, ``...``) are filled with tiny stand-ins;
the rest of each command is run as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import wave
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, SMALL, SMALL_SYNTHETIC

SHORT = ["trainer.max_steps=2", "validation.every=0", "validation_videos.enabled=false", "logger=none"]

# The README's command blocks, each named by the line it follows (the first ```bash block after it), and the test
# that runs it. A new block needs a line here and a test.
README_BLOCKS = {
    "## Set up": "test_the_setup_command_is_the_one_ci_and_the_lock_script_run",
    "## Train": "test_the_first_run_leaves_what_the_readme_lists",
    "Change a value, choose another option": "test_change_a_value_commands_run_as_written",
    "## Training modes": "test_training_mode_commands_run_as_written",
    "## Your own videos": "test_your_own_videos_commands_run_as_written",
    "## A real LTX-2 checkpoint": "test_real_checkpoint_commands_run_with_the_tiny_stand_ins",
    "## Several processes or GPUs": "test_one_node_launcher_commands_run_on_two_cpu_processes, "
    "test_distributed.py::test_two_nodes_train_as_one_two_process_node",
    "## Sweeps": "test_sweep_commands_run_as_written",
}


def bash_blocks(page: str) -> list[str]:
    """The text of every ```bash block of ``page`` (a path relative to the repository)."""
    return re.findall(r"```bash\n(.*?)```", (ROOT / page).read_text(), re.S)


def block_after(after: str, page: str = "README.md") -> str:
    """The text of the first ```bash block after the line ``after`` in ``page``."""
    text = (ROOT / page).read_text()
    return text[text.index(after) :].split("```bash\n", 1)[1].split("```", 1)[0]


def command_block(after: str, page: str = "README.md") -> list[str]:
    """The commands of the first ```bash block after ``after`` in ``page``: one per line (a line ending in ``\\``
    joined to the next), comment lines and blank lines left out."""
    lines = block_after(after, page).replace("\\\n", " ").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def run_as_written(
    command: str,
    cwd: Path,
    run_dir: Path,
    shorter: list[str] = (),
    fill: dict[str, str] | None = None,
) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run a ``python ...`` command from ``cwd`` and check it succeeds; its arguments and the process.

    ``fill`` replaces placeholders in the command, in order. The repo's scripts are found from anywhere. A training
    run goes to ``run_dir`` (the sweep directory of a sweep) unless the command names its own, and, unless it only
    prints (``--cfg``, a dry run), is shortened by ``shorter``.
    """
    for placeholder, value in (fill or {}).items():
        command = command.replace(placeholder, value)
    args = shlex.split(command, comments=True)
    assert args[0] == "python", command
    args = args[1:]
    if args[0].endswith(".py"):
        args = [str(ROOT / args[0]), *args[1:]]
    if args[0].endswith("train.py"):
        sweep = "--multirun" in args or any(a.startswith(("sweep=", "hparams_search=")) for a in args)
        if not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in args):
            args.append(f"hydra.{'sweep' if sweep else 'run'}.dir={run_dir}")
        if "--cfg" not in args and "trainer.dry_run=true" not in args:
            args += shorter
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    return args, proc


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "result.json").read_text())["status"]


def small_synthetic(root: Path) -> list[str]:
    """The session's small synthetic dataset."""
    return [*SMALL_SYNTHETIC, f"data.root={root}"]


def small_data(root: Path) -> list[str]:
    """Shortened training on the session's small synthetic dataset."""
    return [*SHORT, *small_synthetic(root)]


# -- which test runs which block ----------------------------------------------------------------------------


def test_every_readme_command_block_is_run_by_a_test() -> None:
    found = bash_blocks("README.md")
    named = [block_after(after) for after in README_BLOCKS]
    assert sorted(named) == sorted(found), "a ```bash block of README.md without a test: name it in README_BLOCKS"


def test_the_setup_command_is_the_one_ci_and_the_lock_script_run() -> None:
    """Installing takes minutes and the network: CI (``.ci/run``) and ``scripts/lock.sh`` run the README's
    command in a fresh environment; here, that it is the same command."""
    [command] = command_block("## Set up")
    assert command == 'pip install -e ".[dev]"'
    assert command in (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[dev]"' in (ROOT / "scripts" / "lock.sh").read_text()


def test_cfg_job_resolve_prints_the_values_a_run_uses(tmp_path: Path) -> None:
    _, proc = run_as_written("python train.py --cfg job --resolve model.caption_channels=48", tmp_path, tmp_path)
    assert "${" not in proc.stdout
    config = yaml.safe_load(proc.stdout)
    assert config["data"]["caption_dim"] == 48  # an interpolation of model.caption_channels, resolved
    assert config["logger"]["mode"] in ("offline", "online", "disabled")


# -- README ---------------------------------------------------------------------------------------------------


def listed_files() -> list[str]:
    """The files the README's first-run output block lists under the run directory."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("ends with where the run went:") :].split("```\n", 2)[1]
    return re.findall(r"^  ([\w.]+) {2,}\S", block, re.M)


@pytest.mark.slow
def test_the_first_run_leaves_what_the_readme_lists(synthetic_root: Path, tmp_path: Path) -> None:
    """``python train.py`` with its wandb run and validation clips, shortened."""
    [command] = command_block("## Train")
    run_dir = tmp_path / "run"
    shorter = ["trainer.max_steps=2", "validation_videos.num_prompts=1", *small_synthetic(synthetic_root)]
    _, proc = run_as_written(command, tmp_path, run_dir, shorter)
    names = listed_files()
    assert {"lora.safetensors", "README.md", "metrics.jsonl", "result.json", "config.yaml", "wandb"} <= set(names)
    assert [n for n in names if not (run_dir / n).exists()] == []
    assert status(run_dir) == "completed" and f"run directory: {run_dir}" in proc.stdout
    assert (run_dir / "samples" / "step_000002" / "preview.png").is_file()  # "What to look at"


@pytest.mark.slow
def test_change_a_value_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    commands = command_block("Change a value, choose another option")
    assert len(commands) == 5
    for i, command in enumerate(commands):
        args, proc = run_as_written(command, tmp_path, tmp_path / f"run{i}", small_data(synthetic_root))
        if "--cfg" in args:
            assert "${" not in proc.stdout and yaml.safe_load(proc.stdout)["trainer"]["max_steps"] == 200
        elif "--multirun" in args:
            assert [status(tmp_path / f"run{i}" / job) for job in "012"] == ["completed"] * 3
        else:
            assert status(tmp_path / f"run{i}") == "completed"
            weights = "model.safetensors" if "lora=none" in args else "lora.safetensors"
            assert (tmp_path / f"run{i}" / weights).is_file()


@pytest.mark.slow
def test_training_mode_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    commands = command_block("## Training modes")
    assert len(commands) == 5
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", small_data(synthetic_root))
        assert status(tmp_path / f"run{i}") == "completed"


@pytest.mark.slow
def test_your_own_videos_commands_run_as_written(tmp_path: Path) -> None:
    """The demo clips, training on them, and preprocessing a dataset file (the demo's own) elsewhere."""
    commands = command_block("## Your own videos")
    assert len(commands) == 3
    fill = {"clips.csv": ".ltxtune/demo_clips/dataset.csv", "/data/my-set": "my-set"}
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", SHORT, fill)
    assert status(tmp_path / "run1") == "completed"
    assert len(list((tmp_path / "my-set" / "latents").rglob("*.pt"))) == 12


def tiny_stand_ins(where: Path) -> dict[str, str]:
    """A tiny LTX-2 checkpoint and a small precomputed dataset with its 128-token text under ``where``, and the
    placeholders of the real-checkpoint commands filled with them."""
    from ltxtune.data.synthetic import SyntheticData
    from ltxtune.model.tiny import write_tiny_checkpoint

    write_tiny_checkpoint(where / "tiny.safetensors")
    SyntheticData(root=str(where / "data"), num_samples=12, val_samples=2, text_tokens=128).prepare()
    tiny = "model.caption_channels=32"
    return {
        "/path/ltx-2-19b-dev.safetensors": "tiny.safetensors",
        "model.checkpoint=...": "model.checkpoint=tiny.safetensors",
        "/path/to/data": "data",
        "data.root=...": "data.root=data",
        "model=ltx2": f"model=ltx2 {tiny} model.dtype=float32",
        # 8-bit AdamW needs CUDA: on a CPU the preset is checked and estimated, not trained
        "experiment=low_vram": f"experiment=low_vram {tiny} trainer.dry_run=true",
    }


@pytest.mark.slow
def test_real_checkpoint_commands_run_with_the_tiny_stand_ins(tmp_path: Path) -> None:
    """The README's real-checkpoint block and the memory page's low_vram command, on a tiny LTX-2 checkpoint."""
    low_vram = command_block("## `experiment=low_vram`", "docs/memory.md")
    commands = [*command_block("## A real LTX-2 checkpoint"), *low_vram]
    assert len(commands) == 4
    fill = tiny_stand_ins(tmp_path)
    for i, command in enumerate(commands):
        args, proc = run_as_written(command, tmp_path, tmp_path / f"run{i}", SHORT, fill)
        if "trainer.dry_run=true" in args:
            assert "peak memory estimate" in proc.stdout
        else:
            assert status(tmp_path / f"run{i}") == "completed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def one_node_commands() -> list[str]:
    return [c for c in command_block("## Several processes or GPUs") if "--nnodes" not in c]


def on_two_cpu_processes(command: str) -> list[str]:
    """A README one-node launcher command as a 2-core CPU runs it: 2 processes instead of 8, a free port, the
    launcher of this environment, the repo's files found from anywhere."""
    args = shlex.split(command, comments=True)
    port = str(free_port())
    if args[0] == "torchrun":
        args[args.index("--nproc_per_node") + 1] = "2"
        launcher, rest = [sys.executable, "-m", "torch.distributed.run", "--master_port", port], args[1:]
    else:
        assert args[:2] == ["accelerate", "launch"], command
        config = args.index("--config_file") + 1
        args[config] = str(ROOT / args[config])
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                    "--mixed_precision", "no", "--main_process_port", port]  # fmt: skip
        rest = args[2:]
    return [*launcher, *(str(ROOT / a) if a == "train.py" else a for a in rest)]


@pytest.mark.slow
@pytest.mark.parametrize("which", range(4), ids=["torchrun-ddp", "torchrun-fsdp", "accelerate-ddp", "accelerate-fsdp"])
def test_one_node_launcher_commands_run_on_two_cpu_processes(which: int, synthetic_root: Path, tmp_path: Path) -> None:
    """Each one-node line of the README's launcher block, ``...`` filled: the tiny LTX-2 checkpoint where the
    line names ``model=ltx2``, the small synthetic dataset otherwise."""
    commands = one_node_commands()
    assert len(commands) == 4
    command, run_dir = commands[which], tmp_path / "run"
    if "model=ltx2" in command:
        fill = tiny_stand_ins(tmp_path)
        filled = [fill["model.checkpoint=..."], "data=precomputed", fill["data.root=..."]]
        command = command.replace("model=ltx2", fill["model=ltx2"])
    else:
        filled = small_synthetic(synthetic_root)
    command = command.replace("...", " ".join([*filled, *SHORT, f"hydra.run.dir={run_dir}"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(on_two_cpu_processes(command), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["processes"] == 2


@pytest.mark.slow
def test_sweep_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    commands = command_block("## Sweeps")
    assert len(commands) == 4
    fill = {
        "hparams_search=inpainting": "hparams_search=inpainting hydra.sweeper.n_trials=2",
        "multirun/<date>/<time>": str(tmp_path / "run0"),
    }
    for i, command in enumerate(commands):
        args, _ = run_as_written(command, tmp_path, tmp_path / f"run{i}", small_data(synthetic_root), fill)
        sweep_dir = Path(args[-1]) if "ltxtune.sweeps" in args else tmp_path / f"run{i}"
        assert (sweep_dir / "summary.md").is_file() and (sweep_dir / "summary.csv").is_file()
    assert (tmp_path / "run2" / "optuna.db").is_file()  # the study, kept to continue it


# -- docs pages -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_by_path_reports_the_run_it_continued(synthetic_root: Path, tmp_path: Path) -> None:
    small = [*SMALL, *SMALL_SYNTHETIC, f"data.root={synthetic_root}"]
    first = tmp_path / "outputs" / "my-run"
    run_as_written(f"python train.py checkpoint.every=2 hydra.run.dir={first}", tmp_path, first, small)

    fresh = tmp_path / "outputs" / "2026-12-02" / "10-00-00"  # where Hydra would put a new run
    checkpoint = first / "checkpoints" / "step_000002"
    command = f"python train.py checkpoint.resume={checkpoint} hydra.run.dir={fresh}"
    _, resumed = run_as_written(command, tmp_path, fresh, small)
    assert f"run directory: {first}" in resumed.stdout
    assert status(first) == "completed"
    assert not fresh.exists()  # no stray empty run directory is left behind
    log = (first / "train.log").read_text()  # the continued run's console follows the first one's
    assert log.count(f"run directory: {first}\n  status completed") == 2
    assert log.rindex("status completed, 4 steps") > log.index(f"from step 2 to 4 ({checkpoint})")


@pytest.mark.slow
def test_checkpoint_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    """docs/checkpoints.md: save, resume the newest, resume from a path (checkpoints every step of 2)."""
    commands = command_block("## Checkpoints and resume", "docs/checkpoints.md")
    assert len(commands) == 3
    fill = {"checkpoint.every=50": "checkpoint.every=1", "step_000100": "step_000001"}
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", small_data(synthetic_root), fill)
        assert status(tmp_path / "outputs" / "my-run") == "completed"
    lines = [json.loads(ln) for ln in (tmp_path / "outputs" / "my-run" / "metrics.jsonl").read_text().splitlines()]
    # resumed at step 1, the run dropped the step 2 logged after that checkpoint and logged its own step 2
    assert [m["step"] for m in lines if "train/loss" in m] == [1, 2]


def media_files(where: Path) -> None:
    """``ball.png``, ``ref.mp4`` (a reference for the synthetic clips: 17 frames, 96x64) and ``beat.wav`` (1 s)."""
    from PIL import Image

    from ltxtune.data.preprocess.media import write_clip

    g = torch.Generator().manual_seed(0)
    Image.fromarray(torch.randint(0, 255, (128, 192, 3), generator=g, dtype=torch.uint8).numpy()).save(
        where / "ball.png"
    )
    write_clip(where / "ref.mp4", torch.randint(0, 255, (17, 64, 96, 3), generator=g, dtype=torch.uint8), 24)
    with wave.open(str(where / "beat.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        samples = (torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 220) * 20000).to(torch.int16)
        f.writeframes(samples.numpy().tobytes())


@pytest.mark.slow
def test_validation_prompt_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    """docs/validation.md: a prompt with an image, a reference video, an audio track, each rendered."""
    commands = command_block("## Your own prompts", "docs/validation.md")
    assert len(commands) == 3
    media_files(tmp_path)
    shorter = ["trainer.max_steps=1", "validation.every=0", "logger=none", "validation_videos.num_prompts=0"]
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", [*shorter, *small_synthetic(synthetic_root)])
        assert (tmp_path / f"run{i}" / "samples" / "step_000001" / "prompt0.mp4").is_file()


@pytest.mark.slow
def test_validation_prompt_size_commands_run_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    """docs/validation.md: prompts with their own size render clips of that size (the synthetic clips: 192x128x17)."""
    from test_validation_prompts import clip_size

    commands = command_block("### A prompt's own size and length", "docs/validation.md")
    assert len(commands) == 2
    media_files(tmp_path)
    shorter = ["trainer.max_steps=1", "validation.every=0", "logger=none", "validation_videos.num_prompts=0"]
    sizes = [[(768, 512, 121), (192, 128, 17)], [(192, 128, 49)]]
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", [*shorter, *small_synthetic(synthetic_root)])
        step = tmp_path / f"run{i}" / "samples" / "step_000001"
        assert [clip_size(step / f"prompt{j}.mp4") for j in range(len(sizes[i]))] == sizes[i]


@pytest.mark.slow
def test_an_ltx_trainer_config_converts_and_trains_as_written(tmp_path: Path) -> None:
    """docs/coming-from-ltx-trainer.md: convert in a fresh directory, then the command that trains the result
    (its model and data: the tiny stand-ins)."""
    fill = tiny_stand_ins(tmp_path)
    (tmp_path / "my_ltx_trainer_config.yaml").write_text(
        "model: {model_path: tiny.safetensors, training_mode: lora}\n"
        "training_strategy: {name: text_to_video}\n"
        "optimization: {steps: 40, batch_size: 2}\n"
        "data: {preprocessed_data_root: data}\n"
    )
    commands = command_block("## Its training configs", "docs/coming-from-ltx-trainer.md")
    assert len(commands) == 2
    tiny = {"experiment=": f"{fill['model=ltx2'].removeprefix('model=ltx2 ')} experiment="}
    for i, command in enumerate(commands):
        run_as_written(command, tmp_path, tmp_path / f"run{i}", SHORT, tiny)
    assert status(tmp_path / "run1") == "completed"
    assert yaml.safe_load((tmp_path / "run1" / "config.yaml").read_text())["trainer"]["batch_size"] == 2


@pytest.mark.slow
def test_an_ltx_trainer_dataset_command_runs_as_written(synthetic_root: Path, tmp_path: Path) -> None:
    """docs/coming-from-ltx-trainer.md: its precomputed layout (made from the synthetic samples) trains as it is."""
    from ltxtune.data.synthetic import SyntheticData
    from test_legacy_data import write_legacy

    SyntheticData(root=str(synthetic_root), num_samples=12, val_samples=2).prepare()
    write_legacy(synthetic_root, tmp_path / "theirs")
    [command] = command_block("## Its precomputed datasets", "docs/coming-from-ltx-trainer.md")
    run_as_written(command, tmp_path, tmp_path / "run", SHORT, {"/path/to/their/dataset": "theirs"})
    assert status(tmp_path / "run") == "completed"


@pytest.mark.slow
def test_a_run_says_what_it_does_between_steps(synthetic_root: Path, tmp_path: Path) -> None:
    args = [*SMALL, *SMALL_SYNTHETIC, f"data.root={synthetic_root}", "validation.every=2", "checkpoint.every=2"]
    command = " ".join(["python train.py", *args, "validation_videos.num_prompts=1"])
    _, proc = run_as_written(command, tmp_path, tmp_path / "run")
    out = proc.stdout + proc.stderr
    for step in (0, 2, 4):
        assert f"step {step}: validation loss" in out and f"step {step}: validation clips" in out
    assert "step 2: saving a checkpoint" in out
    assert f"saving {tmp_path / 'run' / 'lora.safetensors'}" in out
    assert out.index("building the model") < out.index("step 0: validation loss")


@pytest.mark.slow
def test_tiny_checkpoint_commands_run_as_written(tmp_path: Path) -> None:
    """docs/models.md: each command of the tiny-checkpoint block, in order, in a fresh directory."""
    commands = command_block("To try this path here", "docs/models.md")
    assert len(commands) == 6 and all(c.startswith("python ") for c in commands)
    shorter = ["trainer.max_steps=3", "validation.every=0", "validation_videos.enabled=false", "logger=none"]
    for i, command in enumerate(commands):
        args, proc = run_as_written(command, tmp_path, tmp_path / f"run{i}", shorter)
        if "trainer.dry_run=true" in args:
            assert "peak memory estimate" in proc.stdout
        elif args[0].endswith("train.py"):
            run_dir = tmp_path / f"run{i}"
            assert status(run_dir) == "completed"
            assert "`model=ltx2`" in (run_dir / "README.md").read_text()


def test_the_readme_installs_the_ltx_core_the_ltx25_refusal_names() -> None:
    """The one extra set-up command for LTX-2.5 is the one a run with ltx-core 1.0 tells a user to type."""
    from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12

    setup = (ROOT / "README.md").read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert f"`{INSTALL_LTX_CORE_12}`" in setup
    assert (ROOT / "scripts" / "env_ltx_core_12.sh").is_file() and "scripts/env_ltx_core_12.sh" in setup


@pytest.mark.slow
def test_ltx25_commands_run_as_written(tmp_path: Path) -> None:
    """docs/models.md: the tiny LTX-2.5 block, in a fresh directory (ltx-core 1.2 only)."""
    from ltxtune.ltx_core_api import builds_ltx25

    if not builds_ltx25():
        pytest.skip("LTX-2.5 needs ltx-core 1.2 (README, Set up)")
    commands = command_block("Tiny LTX-2.5 checkpoints", "docs/models.md")
    assert len(commands) == 2
    for i, command in enumerate(commands):
        args, _ = run_as_written(command, tmp_path, tmp_path / f"run{i}", SHORT)
        if args[0].endswith("train.py"):
            assert status(tmp_path / f"run{i}") == "completed"


@pytest.mark.slow
def test_ltx23_and_split_commands_run_as_written(tmp_path: Path) -> None:
    """docs/models.md: the LTX-2.3 block (one file, then a split release), in order, in a fresh directory."""
    commands = command_block("To try these here", "docs/models.md")
    assert len(commands) == 4 and all(c.startswith("python ") for c in commands)
    for i, command in enumerate(commands):
        args, _ = run_as_written(command, tmp_path, tmp_path / f"run{i}", SHORT)
        if args[0].endswith("train.py"):
            assert status(tmp_path / f"run{i}") == "completed"
