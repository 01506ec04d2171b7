"""Checkpoints that resume the same run step for step, written atomically and pruned by rank 0 only.

A checkpoint is a directory ``checkpoints/step_NNNNNN/`` holding the inference weights of that step and
``state.pt`` (trainable weights, optimizer, scheduler, step, data position, torch RNG, the config facts that
must match on resume) plus ``rng_rank<r>.pt`` for every rank's noise generator. It is assembled under a
temporary name and renamed into place, so a kill at any moment leaves the previous checkpoint whole.

The last step of a run always writes one (its final state), whatever ``every`` is: a finished run can be
continued with more steps exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from torch import Tensor, nn

from ltxtune.errors import ConfigError
from ltxtune.files import load_failure, writing
from ltxtune.training.export import WeightsExport

STATE_FILE = "state.pt"
MANIFEST = "manifest.json"  # every file's size and sha256, written last: a checkpoint without a match is damaged


def step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:06d}"


def step_of(checkpoint: Path) -> int:
    """The step a checkpoint directory was saved at, from its name (``step_000100`` -> 100)."""
    return int(checkpoint.name.removeprefix("step_"))


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (half-written ``.tmp-*`` directories are ignored)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / STATE_FILE).is_file())


def write_manifest(checkpoint: Path) -> None:
    files = sorted(p for p in checkpoint.iterdir() if p.is_file() and p.name != MANIFEST)
    entries = {p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)} for p in files}
    (checkpoint / MANIFEST).write_text(json.dumps(entries, indent=1) + "\n")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def damage(checkpoint: Path, checksums: bool = True) -> str | None:
    """What is wrong with ``checkpoint``'s files, or ``None`` when they are whole.

    Every size is checked before any checksum, so a file a kill cut short is found without reading the
    others (a full fine-tune's state is tens of GB); ``checksums=False`` checks the sizes only. A checkpoint
    written before manifests existed is taken as it is when its state file is there.
    """
    manifest = checkpoint / MANIFEST
    if not manifest.is_file():
        return None if (checkpoint / STATE_FILE).is_file() else f"it has no {STATE_FILE}"
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return f"its {MANIFEST} is unreadable"
    for name, expected in entries.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, {expected['size']} were written"
    for name, expected in entries.items():
        if checksums and sha256_of(checkpoint / name) != expected["sha256"]:
            return f"{name} does not match the checksum written with it"
    return None


def newest_whole(checkpoints: list[Path], checksums: bool = True) -> Path | None:
    """The newest checkpoint whose files are whole; says which damaged ones it passed over."""
    for checkpoint in reversed(checkpoints):
        if (problem := damage(checkpoint, checksums)) is None:
            return checkpoint
        if checksums:
            print(f"checkpoint {checkpoint} is damaged ({problem}): trying the one before it", flush=True)
    return None


def resolve_resume(resume: str | None, run_dir: Path, checksums: bool = True) -> Path | None:
    """The checkpoint directory to resume from: ``auto`` = the newest whole one in ``run_dir``, a path, or None.

    A run directory given as the path means its newest whole checkpoint. A damaged checkpoint named
    explicitly is refused with what is wrong. The main process reads the checksums; the others, which would
    only read the same files again, check the sizes (``Checkpointer.load`` makes sure all chose the same).
    """
    if resume in (None, "", "null"):
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir / "checkpoints")
        chosen = newest_whole(found, checksums)
        if found and chosen is None:
            raise ConfigError(
                "checkpoint.resume", resume, f"a run with a whole checkpoint: every one in {run_dir} is damaged"
            )
        return chosen
    path = Path(resume).expanduser().resolve()
    if path.is_dir() and not (path / STATE_FILE).is_file():  # a run directory: take its newest checkpoint
        path = newest_whole(list_checkpoints(path / "checkpoints"), checksums) or path
    if not (path / STATE_FILE).is_file():
        raise ConfigError("checkpoint.resume", resume, "auto, null, or a checkpoint directory holding state.pt")
    if (problem := damage(path, checksums)) is not None:
        raise ConfigError("checkpoint.resume", resume, f"a whole checkpoint; this one is damaged: {problem}")
    return path


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (``<run>/checkpoints/step_N``)."""
    return checkpoint.parent.parent


@dataclass(frozen=True)
class CompatFacts:
    """The resolved config a checkpoint's weights depend on: resuming with other values is refused."""

    model: dict[str, Any]
    strategy: dict[str, Any]
    lora: dict[str, Any]

    def differences(self, current: CompatFacts) -> list[str]:
        """``key: saved -> current`` for every value that differs, with its full key (``strategy.first_frame_p``)."""
        return diff_config(dataclasses.asdict(self), dataclasses.asdict(current))


def saved_compat(checkpoint: Path) -> CompatFacts | None:
    """The config facts ``checkpoint`` was saved under, read without loading its tensors (memory-mapped)."""
    state = load_plain(checkpoint, STATE_FILE, mmap=True)
    compat = state.get("compat") if isinstance(state, dict) else None  # another kind of file: read_state says so
    try:
        return CompatFacts(**compat) if isinstance(compat, dict) else None
    except TypeError:
        allowed = f"{_WRITTEN}; the config facts in its {STATE_FILE} are not ltxtune's (model, strategy, lora)"
        raise ConfigError("checkpoint.resume", str(checkpoint), allowed) from None


def check_compat(checkpoint: Path, saved: CompatFacts | None, current: CompatFacts) -> None:
    """Refuse to resume ``checkpoint`` (saved under ``saved``) under other model, strategy or lora values."""
    if saved is not None and (differences := saved.differences(current)):
        raise ConfigError(
            "checkpoint.resume",
            str(checkpoint),
            "a checkpoint of a run with the same model, strategy and lora; this one differs in "
            + "; ".join(differences),
        )


def diff_config(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: saved -> current`` for every leaf that differs between two nested config dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_config(a, b, name + ".")
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


@dataclass(frozen=True)
class CheckpointState:
    """What resuming needs, shared by the ranks: weights, optimizer, schedule, step, data position, torch RNG.

    Stored in ``state.pt`` as a plain dict of these fields (loadable with ``weights_only=True``).
    """

    step: int
    consumed: int  # micro-batches the loop has taken from its batch stream
    trainable: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: Tensor
    world_size: int
    distributed: str = "ddp"
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    compat: CompatFacts | None = None
    # The run's samples so far, and those without a token to generate: a resumed run judges the whole run by them.
    samples_trained: int = 0
    samples_empty: int = 0

    def to_dict(self) -> dict[str, Any]:
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["compat"] = dataclasses.asdict(self.compat) if self.compat is not None else None
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CheckpointState:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in state.items() if k in known}
        if values.get("compat") is not None:
            values["compat"] = CompatFacts(**values["compat"])
        return cls(**values)


_WRITTEN = "a checkpoint directory an ltxtune run wrote (checkpoints/step_N)"


def load_plain(checkpoint: Path, name: str, mmap: bool = False) -> Any:
    """A file of ``checkpoint`` loaded as plain tensors and containers (``mmap``: memory-mapped, nothing read
    until used); anything else is refused in one line."""
    try:
        return torch.load(checkpoint / name, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, OSError, KeyError... for bad files
        raise ConfigError(
            "checkpoint.resume", str(checkpoint), f"{_WRITTEN}; its {name}: {load_failure(exc)}"
        ) from None


def read_state(checkpoint: Path) -> CheckpointState:
    """``checkpoint``'s ``state.pt``; a file of another program, or a damaged one, raises ``ConfigError``."""
    raw = load_plain(checkpoint, STATE_FILE)
    fields = dataclasses.fields(CheckpointState)
    required = [f.name for f in fields if dataclasses.MISSING is f.default and dataclasses.MISSING is f.default_factory]
    if not isinstance(raw, dict) or (missing := [k for k in required if k not in raw]):
        what = f"lacks {', '.join(missing)}" if isinstance(raw, dict) else f"holds a {type(raw).__name__}"
        raise ConfigError("checkpoint.resume", str(checkpoint), f"{_WRITTEN}; its {STATE_FILE} {what}")
    try:
        return CheckpointState.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError("checkpoint.resume", str(checkpoint), f"{_WRITTEN}; its {STATE_FILE}: {exc}") from None


class Checkpointable(Protocol):
    """What the checkpointer needs of a trainer."""

    accelerator: Accelerator
    generator: torch.Generator
    step: int
    stopped_by: str

    @property
    def unwrapped(self) -> nn.Module: ...

    def state_dict(self) -> CheckpointState: ...

    def load_state_dict(self, state: CheckpointState) -> None: ...

    def show(self, doing: str) -> None: ...


class Checkpointer:
    """Saves a trainer's state every ``every`` steps and restores it; only the main process writes shared files
    and prunes."""

    def __init__(
        self, run_dir: Path, export: WeightsExport, compat: CompatFacts, every: int = 0, keep_last: int = 2
    ) -> None:
        self.root = run_dir / "checkpoints"
        self.export, self.compat, self.every, self.keep_last = export, compat, every, keep_last

    def due(self, step: int, max_steps: int) -> bool:
        """Every ``every`` steps, and at the last step (the final state, saved before the final validation, as
        the step boundary a longer run would have saved at)."""
        return step == max_steps or (bool(self.every) and step % self.every == 0)

    def after_step(self, trainer: Checkpointable, max_steps: int) -> None:
        """The loop's step boundary: save when due."""
        if self.due(trainer.step, max_steps):
            trainer.show(f"step {trainer.step}: saving a checkpoint")
            self.save(trainer)
            trainer.show("train")

    def on_stop(self, trainer: Checkpointable) -> Path:
        """A stopped run (SIGTERM, Ctrl-C) keeps its progress, whatever ``every`` is, and says where."""
        trainer.show(f"step {trainer.step}: saving a checkpoint")
        saved = self.save(trainer)
        if trainer.accelerator.is_main_process:
            print(f"{trainer.stopped_by}: stopped at step {trainer.step}, checkpoint saved to {saved}", flush=True)
        return saved

    def save(self, trainer: Checkpointable) -> Path:
        """Write the checkpoint of ``trainer.step``. A failed write (a full disk) removes the half-written
        directory, keeps the earlier checkpoints, and raises on every rank (``OSError`` naming the file)."""
        acc = trainer.accelerator
        final = step_dir(self.root, trainer.step)
        tmp = self.root / f".tmp-{final.name}"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        failure = None
        try:
            rng_file = tmp / f"rng_rank{acc.process_index}.pt"
            with writing(rng_file):
                torch.save(trainer.generator.get_state(), rng_file)
        except Exception as exc:
            failure = exc
        acc.wait_for_everyone()
        # Under FSDP every rank takes part in gathering the shards onto the main process; under DDP it alone reads.
        sharded = self.export.parallel.sharded
        state = trainer.state_dict() if acc.is_main_process or sharded else None
        if acc.is_main_process and failure is None:
            try:
                self.write(tmp, trainer, state)
                shutil.rmtree(final, ignore_errors=True)
                tmp.rename(final)
                self.prune()
            except Exception as exc:  # raised below, after every rank knows (no rank left waiting)
                failure = exc
        failed_anywhere = acc.gather(torch.tensor([failure is not None], device=acc.device)).any()
        if failure is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise failure
        if failed_anywhere:  # the rank that failed says why; the others stop with it instead of waiting
            raise OSError(errno.EIO, "another process could not write its part of the checkpoint", str(tmp))
        return final

    def write(self, tmp: Path, trainer: Checkpointable, state: CheckpointState) -> None:
        """The weights of the step, the state and the manifest, into ``tmp`` (main process)."""
        weights = state.trainable if self.export.parallel.sharded else None
        with writing(tmp / STATE_FILE, cleanup=tmp):
            self.export.write(trainer.unwrapped, tmp / self.export.filename, trainer.step, weights)
            torch.save(dataclasses.replace(state, compat=self.compat).to_dict(), tmp / STATE_FILE)
            write_manifest(tmp)

    def prune(self) -> None:
        """Keep the newest ``keep_last`` checkpoints (a final state is the newest); called after a save, so the
        newest is never deleted. A fresh run finds no other run's checkpoints here (``RunDir`` removed them)."""
        for old in list_checkpoints(self.root)[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def load(self, trainer: Checkpointable, checkpoint: Path) -> None:
        """Continue ``trainer`` from ``checkpoint``; refuses one of another config, process count or mode."""
        acc = trainer.accelerator
        state = read_state(checkpoint)
        self.check(checkpoint, state, acc)
        try:
            trainer.load_state_dict(state)
        except KeyError as missing:
            allowed = f"weights this model has (missing {missing})"
            raise ConfigError("checkpoint.resume", str(checkpoint), allowed) from None
        except (TypeError, ValueError, RuntimeError) as exc:  # tensors of other shapes, an optimizer of another kind
            first = next(iter(str(exc).splitlines()), type(exc).__name__)
            raise ConfigError("checkpoint.resume", str(checkpoint), f"{_WRITTEN} for this run ({first})") from None
        rng = load_plain(checkpoint, f"rng_rank{acc.process_index}.pt")
        if not isinstance(rng, Tensor):
            raise ConfigError(
                "checkpoint.resume", str(checkpoint), f"{_WRITTEN}; its rng file holds no generator state"
            )
        trainer.generator.set_state(rng)

    def check(self, checkpoint: Path, state: CheckpointState, acc: Accelerator) -> None:
        """Refuse a checkpoint whose weights would mean nothing here, or whose data order would change."""
        check_compat(checkpoint, state.compat, self.compat)
        if state.world_size != acc.num_processes:
            raise ConfigError(
                "checkpoint.resume",
                str(checkpoint),
                f"a run with {state.world_size} processes (this one has "
                f"{acc.num_processes}): the data order and the noise of each rank would change",
            )
        mode = "fsdp" if self.export.parallel.sharded else "ddp"
        if state.distributed != mode:  # the optimizer state is keyed by parameter number in one, by name in the other
            raise ConfigError(
                "checkpoint.resume",
                str(checkpoint),
                f"a checkpoint of a {mode} run (trainer.distributed; this one was saved under {state.distributed})",
            )
        steps = acc.gather(torch.tensor([state.step], device=acc.device))
        if len(set(steps.tolist())) > 1:
            raise ConfigError(
                "checkpoint.resume",
                str(checkpoint),
                f"one checkpoint for every process; they found steps {sorted(set(steps.tolist()))} "
                "(a checkpoint whose files differ in content but not in size): name one by its path",
            )
