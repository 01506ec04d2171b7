"""The inference file of the trained weights (a LoRA or a full checkpoint), as a finished run and every
checkpoint write it: ltx-core's layout, with what inference needs to know in its metadata."""

from __future__ import annotations

from pathlib import Path

from accelerate import Accelerator
from torch import Tensor, nn

from ltxtune.model.adapters import Adapter
from ltxtune.strategies.base import TrainingStrategy
from ltxtune.training.distributed import Replicated, Sharded


class WeightsExport:
    """Writes the adapter's weights of a transformer; under FSDP the shards are gathered on the main process.

    Besides the adapter's own facts, the file records the strategy's class and checkpoint metadata, and the step.
    """

    def __init__(
        self,
        adapter: Adapter,
        parallel: Replicated | Sharded,
        accelerator: Accelerator,
        strategy: TrainingStrategy,
    ) -> None:
        self.adapter, self.parallel, self.accelerator, self.strategy = adapter, parallel, accelerator, strategy

    @property
    def filename(self) -> str:
        return self.adapter.filename

    def gather(self, transformer: nn.Module) -> dict[str, Tensor] | None:
        """The trainable weights whole (FSDP: gathered, on the main process); ``None`` where the module has them.

        Every rank must call it."""
        return self.parallel.trainable_state(transformer) if self.parallel.sharded else None

    def write(self, transformer: nn.Module, path: Path, step: int, weights: dict[str, Tensor] | None) -> Path:
        """Write the file from ``gather()``'s output (main process only)."""
        kind = type(self.strategy)
        meta = {
            "strategy": f"{kind.__module__}.{kind.__name__}",
            "strategy_metadata": self.strategy.get_checkpoint_metadata(),
            "step": step,
        }
        return self.adapter.save(transformer, path, meta, weights)

    def save(self, transformer: nn.Module, run_dir: Path, step: int) -> Path:
        """Gather and write into ``run_dir``, as a finished run does. Every rank must call it; the main process
        writes (and says so)."""
        path = run_dir / self.filename
        weights = self.gather(transformer)
        if self.accelerator.is_main_process:
            print(f"saving {path}", flush=True)
            self.write(transformer, path, step, weights)
        return path
