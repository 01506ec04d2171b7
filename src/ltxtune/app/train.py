"""The Hydra entry point. Kept light: torch and friends load only once a job really runs."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ltxtune.app import CONFIG_MODULE
from ltxtune.app.console import ConsoleLog, console_copied
from ltxtune.app.environment import check_training_environment
from ltxtune.app.failures import user_error
from ltxtune.ranks import is_main_rank, world_size
from ltxtune.sweeps.devices import job_processes
from ltxtune.sweeps.jobs import completed_objective, job_identity
from ltxtune.sweeps.trials import trial_reporter
from ltxtune.training.result import RunResult

T = TypeVar("T")

log = logging.getLogger("ltxtune")


def run_job(cfg: DictConfig) -> float:
    """One Hydra job: train and return the objective; a bad value stops a single run with one line."""
    if (problem := check_training_environment()) is not None:
        sys.exit(f"error: {problem}")
    hc = HydraConfig.get()
    multirun, log_file = hc.mode == RunMode.MULTIRUN, f"{hc.job.name}.log"
    if cfg.trainer.dry_run:  # before any process group: `WORLD_SIZE=8 python train.py ...` estimates 8 processes
        with console_copied(Path(hc.runtime.output_dir) / log_file, enabled=is_main_rank()):
            return ended_by_user_error(lambda: dry_run(cfg), multirun)
    run_dir = shared_run_dir(Path(hc.runtime.output_dir))
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
    sweep_job = job_identity() if multirun else None
    if multirun and (processes := job_processes()) > 1:  # a sweep job on several GPUs starts its own ranks
        from ltxtune.app.job_ranks import run_ranks  # it imports the training run: torch, only for a job

        return run_ranks(cfg, run_dir, choices, sweep_job, processes)
    # The log file Hydra's logging writes also gets what the console shows (the main process's).
    with console_copied(run_dir / log_file, enabled=is_main_rank()) as console:
        job = partial(train_job, cfg, run_dir, choices, sweep_job, multirun, console, hc.sweeper)
        try:
            return ended_by_user_error(job, multirun)
        except KeyboardInterrupt:
            sys.exit("error: aborted by a second Ctrl-C; resume from the last checkpoint with checkpoint.resume=auto")


def train_job(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, Any],
    sweep_job: tuple[str, str] | None,
    multirun: bool,
    console: ConsoleLog | None,
    sweeper: Any = None,
) -> float:
    """Train in ``run_dir`` (a sweep job run again may replace its incomplete attempt), say where the run went,
    and return its objective. ``console``: the main process's copy of the console in the run's log file. The job
    of an Optuna search's trial reports its val/loss to the study."""
    from ltxtune.training.run import train  # torch and friends load only once a job really runs

    report = trial_reporter(sweeper) if multirun and is_main_rank() and sweeper is not None else None
    result = train(cfg, run_dir, choices, sweep_job=sweep_job, rerun_incomplete=multirun, on_validation=report)
    if console is not None:  # the main process
        if result.run_dir.resolve() != run_dir.resolve():  # resumed by path: the job ran in the checkpoint's run
            console.move_to(result.run_dir / console.path.name)
            remove_unused(run_dir, console.path.name)
        if not result.unchanged:  # a completed run with nothing to do has said so in one line
            print_summary(result.run_dir)
    return result.objective


def ended_by_user_error(job: Callable[[], T], multirun: bool) -> T | float:
    """Run ``job``; a user's mistake ends a single run with one line, and a sweep job as failed (``inf``)."""
    try:
        return job()
    except Exception as exc:
        if (line := user_error(exc)) is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if multirun:  # one bad job must not end the sweep: it is recorded as failed
            log.error("job failed: %s", line)
            return math.inf
        sys.exit(f"error: {line}")


def dry_run(cfg: DictConfig) -> float:
    """``trainer.dry_run=true``: print what the run would cost and stop."""
    from ltxtune.app.estimate import estimate  # torch and ltx-core: only for a job, not for --help

    report = estimate(cfg, world_size()).report()
    if is_main_rank():
        print(report)
    return math.inf


def remove_unused(run_dir: Path, log_file: str) -> None:
    """Drop the directory Hydra made for a job that ran elsewhere, if it holds only what Hydra and the app wrote."""
    import shutil

    if {p.name for p in run_dir.iterdir()} <= {".hydra", "config.yaml", log_file}:
        shutil.rmtree(run_dir, ignore_errors=True)


def print_summary(run_dir: Path) -> None:
    result = RunResult.read(run_dir) or RunResult(error="result.json is missing or unreadable")
    train_loss, val_loss = (math.nan if v is None else v for v in (result.train_loss, result.val_loss))
    lines = [
        f"run directory: {run_dir}",
        f"  status {result.status}, {result.steps} steps in {result.wall_s or 0:.1f} s,"
        f" train/loss {train_loss:.4f}, val/loss {val_loss:.4f}",
    ]
    for name, what in (
        ("lora.safetensors", "the trained LoRA (ltx-core / ComfyUI layout)"),
        ("model.safetensors", "the fine-tuned transformer (ltx-core checkpoint layout)"),
        ("README.md", "the model card: base, strategy, settings, losses, how to load the weights"),
        ("metrics.jsonl", "one line of metrics per logged step"),
        ("result.json", "status, final losses and the sweep objective"),
        ("config.yaml", "the resolved config of this run"),
        ("train.log", "what this console showed: warnings, progress, this summary"),
        ("checkpoints", "the states to resume or continue from (the final one included), with their weights"),
        ("wandb", "the offline wandb run (`wandb sync` uploads it)"),
    ):
        if (run_dir / name).exists():
            lines.append(f"  {name:<18} {what}")
    print("\n".join(lines))


def shared_run_dir(local: Path) -> Path:
    """Under torchrun / accelerate launch every rank makes its own time-stamped directory: use rank 0's.

    The ranks agree through the process group (it works across nodes), and the other ranks' empty Hydra
    directories are removed so that a run leaves exactly one directory.
    """
    if world_size() == 1:
        return local
    import shutil

    import torch
    import torch.distributed as dist
    from accelerate.state import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    chosen = [str(local)]
    dist.broadcast_object_list(chosen, src=0)
    shared = Path(chosen[0])
    if not state.is_main_process and shared.resolve() != local.resolve():
        shutil.rmtree(local, ignore_errors=True)
    return shared


class OutputDirCheck(Callback):
    """Hydra makes the run (or sweep) directory before the job starts, and one it cannot make ends in a
    traceback: make it here first, whatever set it (the command line, an experiment, the default), and end in
    one line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        make_output_dir(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        make_output_dir(config.hydra.sweep.dir, "hydra.sweep.dir")


def make_output_dir(value: str, key: str) -> None:
    if (problem := unusable_dir(Path(value))) is not None:
        sys.exit(f"error: {key}={value}: {problem} (choose another {key})")


def unusable_dir(path: Path) -> str | None:
    """Make ``path`` (and its parents); why that cannot be done, or why the run could not write in it."""
    path = path.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for place in (path, *path.parents):
            try:
                if place.exists() and not place.is_dir():
                    return f"{place} is a file, not a directory"
            except OSError:  # a parent that cannot be searched: the error below names it
                continue
        return f"{exc.filename or path}: {exc.strerror or exc}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable (fix its permissions)"
    return None


def main() -> None:
    """``python train.py ...``: Hydra, and the teardown a finished run can skip."""
    hydra_main()
    if _finished_run and not process_group_alive():
        exit_without_teardown()


# Set by ``hydra_main`` when the job of a plain (not multirun) run returned: Hydra has restored its own state
# by the time ``hydra_main()`` returns, so ``main`` cannot ask it. A sweep (a worker pool) ends through the
# interpreter's teardown. So does a rank whose process group is somehow still up; normally the run destroyed
# it (accelerate's end_training), and skipping the teardown then also spares the ranks gloo's worker threads
# aborting during interpreter finalization ("terminate called without an active exception", SIGABRT after a
# completed run: seen once on this CPU under torchrun).
_finished_run = False


def process_group_alive() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def exit_without_teardown() -> None:
    """Exit once the exit handlers have run, skipping the interpreter's teardown.

    Freeing torch's, transformers' and ltx-core's modules one by one at exit takes 1 to 2.5 s (measured on a
    2-core CPU: 25% of a one-step run's start-up) and gives nothing back. Every file of the run is written and
    closed by now; the exit handlers (logging's flush and close, wandb's) still run.
    """
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="train")
def hydra_main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    # A resumed sweep (same command, same sweep dir) skips the finished jobs.
    if hc.mode == RunMode.MULTIRUN and (done := completed_objective(run_dir, cfg)) is not None:
        log.info("skipped %s: completed in an earlier run of this sweep (objective %.6g)", run_dir, done)
        return done
    objective = run_job(cfg)
    global _finished_run
    _finished_run = hc.mode == RunMode.RUN
    return objective


if __name__ == "__main__":
    main()
