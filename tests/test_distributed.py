"""Two real CPU processes (torchrun, gloo) train one run: one directory, synced weights, exact schedule; FSDP2
shards trains the same weights as DDP, saves full tensors and resumes exactly; two one-process "nodes" started
with the README's multi-node commands train as one two-process node."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import ROOT, compose_cfg, ltx_core_fused
from ltxtune.training.loop import rank_generator
from ltxtune.training.parts import build_parts
from test_ltx_core_loading import model_inputs, outputs, write_base_checkpoint

ARGS = [
    "logger=none", "trainer.max_steps=6", "trainer.batch_size=2", "validation.every=3", "validation.sigmas=[0.5]",
    "data.num_samples=12", "data.val_samples=2", "strategy.with_audio=true",
]  # fmt: skip


# --standalone: a rendezvous on a free port, so that runs beside this one (another test session) never meet it.
TORCHRUN = [
    sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(ROOT / "train.py")
]  # fmt: skip


def test_each_rank_draws_its_own_noise_from_the_one_seed() -> None:
    a = torch.randn(8, generator=rank_generator(7, 0, torch.device("cpu")))
    b = torch.randn(8, generator=rank_generator(7, 1, torch.device("cpu")))
    again = torch.randn(8, generator=rank_generator(7, 1, torch.device("cpu")))
    assert not torch.equal(a, b) and torch.equal(b, again)


def lr_sequence(run_dir: Path) -> list[float]:
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [m["train/lr"] for m in lines if "train/lr" in m]


@pytest.mark.slow
def test_two_processes_train_one_run(tmp_path) -> None:
    fresh = tmp_path / "data" / "synthetic"  # as on a fresh checkout: both ranks find no dataset yet
    data = f"data.root={fresh}"
    proc = subprocess.run([*TORCHRUN, *ARGS, data], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in fresh.parent.iterdir()) == [".synthetic.lock", "synthetic"]  # no half-written copy

    run_dirs = [p for p in (tmp_path / "outputs").glob("*/*") if p.is_dir()]
    assert len(run_dirs) == 1, run_dirs  # both ranks used rank 0's directory
    run_dir = run_dirs[0]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["processes"] == 2
    first, second = result["rank_weight_checksums"]
    assert first == second  # identical weights on every rank after the last step
    assert (run_dir / "lora.safetensors").is_file()

    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "train/loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4, 5, 6]  # rank 0 alone writes: each step once
    assert all(m["train/samples"] == 4 for m in steps)  # 2 ranks x batch 2 in every logged step

    single = tmp_path / "single"
    subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *ARGS, data, f"hydra.run.dir={single}"],
        cwd=tmp_path, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # The schedule is stepped once per optimizer step, not once per process: it ends exactly at max_steps.
    assert lr_sequence(run_dir) == lr_sequence(single)
    assert lr_sequence(run_dir)[-1] == 0.0


# -- FSDP2 ---------------------------------------------------------------------------------------------------

FSDP_ARGS = [
    "logger=none", "trainer.max_steps=4", "trainer.batch_size=2", "validation.every=2", "validation.sigmas=[0.5]",
    "data.num_samples=12", "data.val_samples=2", "strategy.with_audio=true", "validation_videos.enabled=false",
    "checkpoint.every=2",
]  # fmt: skip
# DDP all-reduces whole gradients, FSDP reduce-scatters shards and measures the clipping norm from per-shard
# sums: the same float32 numbers added in another order, so the weights may differ in their last bits (about
# 1e-7 of a weight of size 0.1). Adam turns a gradient into a step of at most about lr = 2e-3, and 4-6 steps
# cannot make a rounding difference larger than a fraction of that: atol 1e-5 (0.5% of one step) is far
# above rounding and far below a real difference such as a wrong average (a step of 2e-3). Measured here:
# the LoRA runs are bit-identical, the full fine-tune with grad_accum=2 differs by at most 6e-7.
ATOL = 1e-5


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)


# One BLAS thread per process in every run of this file, as torchrun sets for several processes per node (it
# leaves the variable alone for one, and accelerate then picks its own): runs compared here differ only in how
# they are launched, never in how a matrix product splits its sums.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(run_dir: Path, data_root: Path, *extra: str) -> dict:
    """One two-process run in ``run_dir``; its ``result.json``."""
    args = [*TORCHRUN, *FSDP_ARGS, f"data.root={data_root}", f"hydra.run.dir={run_dir}", *extra]
    proc = subprocess.run(args, cwd=run_dir.parent, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture(scope="module")
def ddp_lora_run(tmp_path_factory, synthetic_root) -> Path:
    """The LoRA run of this file under DDP: two processes on one node."""
    run_dir = tmp_path_factory.mktemp("lora_runs") / "ddp"
    torchrun(run_dir, synthetic_root)
    return run_dir


@pytest.fixture(scope="module")
def lora_runs(ddp_lora_run, synthetic_root) -> dict[str, Path]:
    """The same LoRA run under DDP and under FSDP, two processes each."""
    fsdp = ddp_lora_run.parent / "fsdp"
    torchrun(fsdp, synthetic_root, "trainer.distributed=fsdp")
    return {"ddp": ddp_lora_run, "fsdp": fsdp}


@pytest.mark.slow
def test_fsdp_trains_the_lora_ddp_trains_and_ltx_core_loads_it(lora_runs, synthetic_root) -> None:
    fsdp, ddp = (tensors(lora_runs[k] / "lora.safetensors") for k in ("fsdp", "ddp"))
    assert fsdp.keys() == ddp.keys()
    for key in fsdp:
        torch.testing.assert_close(fsdp[key], ddp[key], rtol=0, atol=ATOL)
    result = json.loads((lora_runs["fsdp"] / "result.json").read_text())
    assert result["status"] == "completed" and result["processes"] == 2
    lines = [json.loads(ln) for ln in (lora_runs["fsdp"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "train/loss" in m] == [1, 2, 3, 4]  # rank 0 alone logs, each step once

    # The gathered file is a whole LoRA: ltx-core fuses it into the base and gives the trained model's output.
    lora_file = lora_runs["fsdp"] / "lora.safetensors"
    cfg = compose_cfg("strategy.with_audio=true", f"lora.init_from={lora_file}", data_root=synthetic_root)
    parts = build_parts(cfg)
    trained = parts.model.build(0, torch.device("cpu"))
    parts.lora.apply(trained)
    base_file = lora_runs["fsdp"].parent / "base.safetensors"
    write_base_checkpoint(parts, base_file)
    fused = ltx_core_fused(base_file, lora_file)
    inputs = model_inputs(parts, synthetic_root)
    torch.testing.assert_close(outputs(fused, inputs)[0], outputs(trained.transformer, inputs)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_an_fsdp_checkpoint_resumes_under_fsdp_bit_for_bit(lora_runs, synthetic_root, tmp_path) -> None:
    # The run as a kill after step 2 would leave it: only its checkpoint (sharded state saved as full tensors).
    resumed = tmp_path / "resumed"
    shutil.copytree(lora_runs["fsdp"] / "checkpoints" / "step_000002", resumed / "checkpoints" / "step_000002")
    result = torchrun(resumed, synthetic_root, "trainer.distributed=fsdp", "checkpoint.resume=auto")
    assert result["status"] == "completed" and result["steps"] == 4
    uninterrupted = lora_runs["fsdp"] / "lora.safetensors"
    assert (resumed / "lora.safetensors").read_bytes() == uninterrupted.read_bytes()


@pytest.mark.slow
def test_fsdp_full_finetune_with_accumulation_and_clips_matches_ddp(tmp_path, synthetic_root) -> None:
    full = ("lora=none", "trainer.grad_accum=2", "validation_videos.enabled=true", "validation_videos.num_prompts=1",
            "validation_videos.num_steps=2", "checkpoint.every=0", "validation.every=0")  # fmt: skip
    torchrun(tmp_path / "ddp", synthetic_root, *full)
    result = torchrun(tmp_path / "fsdp", synthetic_root, *full, "trainer.distributed=fsdp")
    fsdp, ddp = (tensors(tmp_path / k / "model.safetensors") for k in ("fsdp", "ddp"))
    assert fsdp.keys() == ddp.keys() and len(fsdp) > 100  # every transformer weight, gathered whole
    for key in fsdp:
        torch.testing.assert_close(fsdp[key], ddp[key], rtol=0, atol=ATOL)
    first, second = result["rank_weight_checksums"]
    assert first == second  # every rank computes the sum over all shards
    # Validation clips with sharded weights: every rank samples, rank 0 writes (before the first step, at the end).
    clips = sorted(p.relative_to(tmp_path / "fsdp").as_posix() for p in (tmp_path / "fsdp").rglob("*.mp4"))
    assert clips == ["samples/step_000000/prompt0.mp4", "samples/step_000004/prompt0.mp4"]


def test_fsdp_with_one_process_trains_the_whole_model(synthetic_root, tmp_path, capsys) -> None:
    from ltxtune.training.run import train

    train(compose_cfg("trainer.distributed=fsdp", "trainer.max_steps=2", data_root=synthetic_root), tmp_path)
    assert "nothing to shard over" in capsys.readouterr().out
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"


# -- several nodes -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def readme_multinode_commands() -> list[str]:
    """The ``--nnodes`` commands of the README's "Several processes or GPUs" block, one line each."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Several processes or GPUs") :].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.replace("\\\n", " ").splitlines() if "--nnodes" in line]


def node_command(command: str, node_rank: int, port: int) -> list[str]:
    """A README multi-node command as one node of this machine runs it: one process, a free local port."""
    values = {"$NODE_RANK": str(node_rank), "$MASTER": "localhost", "$JOB_ID": "test", "29500": str(port)}
    args = []
    for arg in shlex.split(command, comments=True):
        for name, value in values.items():
            arg = arg.replace(name, value)
        args.append(arg)
    assert args[0] == "torchrun" and args[-2:] == ["train.py", "..."], command
    args[args.index("--nproc_per_node") + 1] = "1"
    return [sys.executable, "-m", "torch.distributed.run", *args[1:-2], str(ROOT / "train.py")]


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["c10d", "master_addr"])
def test_two_nodes_train_as_one_two_process_node(which, ddp_lora_run, synthetic_root, tmp_path) -> None:
    # The README's command, as two one-process "nodes", each started in its own directory as on its own machine
    # (Hydra names a run directory in each); the run directory they must share is rank 0's.
    commands = readme_multinode_commands()
    assert len(commands) == 2, commands
    port, nodes = free_port(), [tmp_path / "node0", tmp_path / "node1"]
    procs = []
    for node_rank, cwd in enumerate(nodes):
        cwd.mkdir()
        args = [*node_command(commands[which], node_rank, port), *FSDP_ARGS, f"data.root={synthetic_root}"]
        procs.append(subprocess.Popen(args, cwd=cwd, env=ONE_THREAD, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()[-3000:]

    run_dirs = [p for cwd in nodes for p in cwd.glob("outputs/*/*") if p.is_dir()]
    assert len(run_dirs) == 1, run_dirs  # rank 0's; the other node's Hydra directory is gone
    run_dir = run_dirs[0]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "completed" and result["processes"] == 2
    first, second = result["rank_weight_checksums"]
    assert first == second  # identical weights on both nodes after the last step
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "train/loss" in m] == [1, 2, 3, 4]  # rank 0 alone writes

    # The same two ranks with the same data compute the same gradients wherever they run, and an all-reduce of
    # two addends is exact in either order (a + b == b + a): the result is the one-node run's, bit for bit.
    single = json.loads((ddp_lora_run / "result.json").read_text())
    assert (result["val/loss"], result["train/loss"]) == (single["val/loss"], single["train/loss"])
    assert (run_dir / "lora.safetensors").read_bytes() == (ddp_lora_run / "lora.safetensors").read_bytes()
