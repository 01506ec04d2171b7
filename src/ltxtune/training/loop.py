"""The accelerate training loop: micro-batches, accumulation, clipping, the schedule, metrics.

Read ``Trainer.fit`` top to bottom: validate, then for each optimizer step run ``train_step``, step the
schedule, log, and validate every ``validation.every`` steps; validate and save at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from torch import Tensor
from tqdm.auto import tqdm

from ltxtune.data.batch import Batch
from ltxtune.diffusion.inputs import ModelInputs
from ltxtune.diffusion.samplers import TimestepSampler
from ltxtune.errors import DataError, TrainingError
from ltxtune.evaluation.validation import Validation
from ltxtune.model.adapters import trainable_parameters
from ltxtune.model.base import LoadedModel
from ltxtune.strategies.base import TrainingStrategy
from ltxtune.training.checkpoint import CheckpointState
from ltxtune.training.distributed import Replicated, Sharded, full_value
from ltxtune.training.offload import optimizer_state_on_host
from ltxtune.training.settings import TrainerSettings
from ltxtune.training.stream import BatchStream
from ltxtune.training.tracking import Tracker

SIGMA_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0)
LOSS_SIGMA_PREFIX = "train/loss_sigma_"


def bucket_prefixes(scored: set[str]) -> dict[str, str]:
    """Metric prefix of each scored modality's per-sigma losses: ``train/loss_sigma_`` is the video's, or the
    audio's when no video is scored (t2a, v2a), so every run has it; beside video, audio has its own."""
    if "video" not in scored:
        return {"audio": LOSS_SIGMA_PREFIX}
    return {"video": LOSS_SIGMA_PREFIX, "audio": "train/audio_loss_sigma_"}


def finite(loss: float, grad_norm: float | None) -> bool:
    """A loss, and the gradient norm when it was measured, that are finite numbers."""
    return math.isfinite(loss) and (grad_norm is None or math.isfinite(grad_norm))


def rank_generator(seed: int, rank: int, device: torch.device) -> torch.Generator:
    """Each rank draws its own sigmas and noise, all derived from the run's one seed."""
    return torch.Generator(device).manual_seed(seed * 65_537 + rank)


@dataclass
class StepStats:
    """What one optimizer step measured on this rank, summed over its micro-batches."""

    loss_sum: float = 0.0
    micro_batches: int = 0
    samples: int = 0
    tokens: int = 0
    cond_tokens: float = 0.0  # tokens of any modality given as conditions (timestep 0)
    nothing_to_generate: int = 0  # samples without a scored token: they teach nothing
    nothing_given: int = 0  # samples without a token given as a condition
    grad_norm: float | None = None
    # modality -> [bucket loss sums..., bucket counts...]
    buckets: dict[str, Tensor] = field(default_factory=dict)

    skipped: bool = False  # not finite, and skipped (trainer.nonfinite=skip): the optimizer did not step
    nonfinite_samples: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # every sample of the step, in order

    def add(self, losses: dict[str, Tensor], inputs: ModelInputs, total: Tensor, names: Sequence[str] = ()) -> None:
        self.names += names
        streams = {stream.name: stream for stream in inputs.streams()}
        scored = sum(s.loss_mask.sum(dim=1) for s in streams.values() if s.generated)
        given = sum((s.modality.timesteps == 0).sum(dim=1) for s in streams.values())
        counts = torch.stack([total.detach().float().mean(), (scored == 0).sum(), (given == 0).sum()])
        mean, empty, ungiven = counts.tolist()  # the one host sync per micro-batch the loop has
        self.nothing_to_generate += int(empty)
        self.nothing_given += int(ungiven)
        if not math.isfinite(mean):  # only now look at each sample (a second sync, on the failing batch only)
            bad = (~torch.isfinite(total.detach())).tolist()
            self.nonfinite_samples += [n for n, b in zip(names, bad, strict=False) if b] or list(names)
        self.loss_sum += mean
        self.micro_batches += 1
        self.samples += total.shape[0]
        for stream in streams.values():
            self.tokens += stream.tokens
            self.cond_tokens += float(stream.condition_tokens())
        for name, per_sample in losses.items():
            idx = torch.bucketize(
                streams[name].modality.sigma.float().clamp(0, 1),
                torch.tensor(SIGMA_BUCKETS[1:-1], device=per_sample.device),
                right=True,
            )
            n = len(SIGMA_BUCKETS) - 1
            acc = torch.zeros(2 * n, device=per_sample.device)
            acc[:n].index_add_(0, idx, per_sample.detach().float())
            acc[n:].index_add_(0, idx, torch.ones_like(per_sample, dtype=torch.float))
            self.buckets[name] = self.buckets.get(name, 0) + acc

    @property
    def finite(self) -> bool:
        """Whether this rank's loss and the (global) gradient norm are finite numbers."""
        return finite(self.loss_sum, self.grad_norm)


class Trainer:
    """Runs one training job on the objects the run built; owns no configuration parsing.

    ``optimizers`` is the optimizer and its learning-rate schedule, which steps with it.
    """

    def __init__(
        self,
        *,
        accelerator: Accelerator,
        parallel: Replicated | Sharded,
        model: LoadedModel,
        strategy: TrainingStrategy,
        sampler: TimestepSampler,
        optimizers: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler],
        stream: BatchStream,
        validator: Validation,
        trackers: Sequence[Tracker],
        settings: TrainerSettings,
    ) -> None:
        self.accelerator, self.model, self.strategy, self.sampler = accelerator, model, strategy, sampler
        self.stream, self.validator, self.trackers, self.settings = stream, validator, list(trackers), settings
        self.generator = rank_generator(settings.seed, accelerator.process_index, accelerator.device)
        self.parallel = parallel
        self.transformer = parallel.wrap(accelerator, model.transformer)
        optimizer, self.scheduler = optimizers
        self.optimizer = accelerator.prepare(optimizer)
        self.trainable = trainable_parameters(self.transformer)
        self.step = 0
        self.last: dict[str, float] = {}
        self.stop_requested = False  # set by the SIGTERM / Ctrl-C handler; honoured at the next step boundary
        self.stopped_by = "SIGTERM"
        # Told each validation's step and val/loss on the main process; True stops the run there (a search's
        # pruner: the run ends as ``pruned``, with a checkpoint). Set by whoever runs the trainer.
        self.on_validation: Callable[[int, float], bool] | None = None
        self.pruned = False
        self.interrupted = False
        self.skipped_steps = 0  # steps whose loss or gradient was not finite (trainer.nonfinite=skip)
        self.samples_trained = self.samples_empty = 0  # in the run so far: all, and without a token to generate
        self.bar: tqdm | None = None

    # -- what a checkpoint keeps -----------------------------------------------------------------------

    @property
    def unwrapped(self) -> torch.nn.Module:
        """The transformer without its DDP wrapper (FSDP's shards stay in place)."""
        return self.accelerator.unwrap_model(self.transformer)

    def state_dict(self) -> CheckpointState:
        """Everything shared by the ranks that resuming needs: weights, optimizer, schedule, step, data position.

        Every rank must call it: under FSDP it gathers the shards (full tensors on the main process only).
        """
        model = self.unwrapped
        return CheckpointState(
            step=self.step,
            consumed=self.stream.consumed,
            trainable=self.parallel.trainable_state(model),
            optimizer=self.parallel.optimizer_state(model, self.optimizer),
            distributed="fsdp" if self.parallel.sharded else "ddp",
            scheduler=self.scheduler.state_dict(),
            torch_rng=torch.get_rng_state(),
            last_metrics=dict(self.last),
            world_size=self.accelerator.num_processes,
            skipped_steps=self.skipped_steps,
            samples_trained=self.samples_trained,
            samples_empty=self.samples_empty,
        )

    def load_state_dict(self, state: CheckpointState) -> None:
        """Continue from ``state_dict()``'s output; raises ``KeyError`` naming weights this model lacks."""
        model = self.unwrapped
        if missing := sorted(set(state.trainable) - {n for n, _ in model.named_parameters()}):
            raise KeyError(missing[:3])
        self.parallel.load(model, self.optimizer, state.trainable, state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.torch_rng)
        self.stream.load_state_dict({"consumed": state.consumed})
        self.step, self.last = state.step, dict(state.last_metrics)
        self.skipped_steps = state.skipped_steps
        self.samples_trained, self.samples_empty = state.samples_trained, state.samples_empty

    def show(self, doing: str) -> None:
        """Say what the trainer does between steps (validation, a checkpoint): it can take seconds."""
        if not self.accelerator.is_main_process:
            return
        if self.bar is not None:
            self.bar.set_description_str(doing, refresh=True)
        else:
            print(doing, flush=True)

    # -- one forward ---------------------------------------------------------------------------------

    def losses(
        self, batch: Batch, sampler: TimestepSampler, generator: torch.Generator
    ) -> tuple[Tensor, ModelInputs, dict[str, Tensor]]:
        """Per-sample loss ``[B]``, the inputs, and each scored modality's per-sample loss."""
        strategy = self.strategy
        batch = batch.encoded(self.model.encode_text)
        inputs = strategy.prepare_training_inputs(batch, sampler, generator)
        video_pred, audio_pred = self.transformer(video=inputs.video, audio=inputs.audio, perturbations=None)
        total = strategy.compute_loss(video_pred, audio_pred, inputs)
        with torch.no_grad():
            per_modality = strategy.modality_losses(video_pred, audio_pred, inputs)
        return total, inputs, per_modality

    def validate(self) -> None:
        """``val/loss``, then the validation clips (every rank samples: FSDP gathers shards; rank 0 writes);
        with ``validation.offload_optimizer`` the optimizer state waits in host memory meanwhile."""
        with optimizer_state_on_host(self.optimizer, self.validator.offload_optimizer):
            result = self.validator(self.model, self.step, self.show)
        self.log(result.metrics)
        for tracker in self.trackers:
            tracker.log_videos(list(result.files), self.step)
        self.show("train")
        loss = result.metrics.get("val/loss")
        main, told = self.accelerator.is_main_process, self.on_validation is not None and loss is not None
        if told and main and self.on_validation(self.step, float(loss)) and self.step < self.settings.max_steps:
            self.pruned = self.stop_requested = True  # honoured at the next step boundary, on every rank
            self.stopped_by = "the search's pruner"

    # -- one optimizer step --------------------------------------------------------------------------

    def train_step(self) -> StepStats:
        """``grad_accum`` micro-batches, one optimizer step (accelerate decides when gradients sync)."""
        stats = StepStats()
        for _ in range(self.settings.grad_accum):
            batch = self.stream.next()
            with self.accelerator.accumulate(self.transformer):
                try:
                    total, inputs, per_modality = self.losses(batch, self.sampler, self.generator)
                except DataError as exc:  # a later sample the checks at start did not see: name its files
                    raise DataError(f"{exc} (batch of {self.stream.describe(batch.names)})") from None
                self.accelerator.backward(total.mean())
                stats.add(per_modality, inputs, total, batch.names)
                if self.accelerator.sync_gradients:
                    if self.settings.max_grad_norm > 0:
                        norm = self.accelerator.clip_grad_norm_(self.trainable, self.settings.max_grad_norm)
                        stats.grad_norm = float(full_value(norm))
                    stats.skipped = self.settings.nonfinite == "skip" and not self.all_finite(stats)
                if not stats.skipped:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        return stats

    def all_finite(self, stats: StepStats) -> bool:
        """The same answer on every rank: the gradient norm is global; a local loss is agreed on (skip mode only)."""
        if stats.grad_norm is not None or self.accelerator.num_processes == 1:
            return stats.finite
        flag = torch.tensor([float(not stats.finite)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() == 0)

    def check_finite(self, stats: StepStats, metrics: dict[str, float]) -> None:
        """Stop the run at the first non-finite loss or gradient norm: nothing after it would be worth keeping."""
        loss, norm = metrics["train/loss"], metrics.get("train/grad_norm")
        if finite(loss, norm):
            return
        what = f"the training loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {norm}"
        samples = stats.nonfinite_samples or stats.names
        raise TrainingError(
            f"step {self.step}: {what}; the batch held {self.stream.describe(samples)}. Look for NaN/inf values in"
            " those files, or lower optimizer.lr if the loss diverged; trainer.nonfinite=skip skips such steps"
            " instead. No weights were written for this run after its last checkpoint."
        )

    def step_metrics(self, stats: StepStats, seconds: float) -> dict[str, float]:
        """Averages over micro-batches and ranks (the loss every rank saw, not rank 0's last micro-batch)."""
        acc = self.accelerator
        local = torch.tensor(
            [
                stats.loss_sum / stats.micro_batches,
                stats.samples,
                stats.tokens,
                stats.cond_tokens,
                stats.nothing_to_generate,
                stats.nothing_given,
            ],
            device=acc.device,
            dtype=torch.float64,
        )
        summed = acc.reduce(local, reduction="sum") if acc.num_processes > 1 else local
        loss, samples, tokens, cond, empty, ungiven = summed.tolist()
        metrics = {
            "train/loss": loss / acc.num_processes,
            "train/lr": self.scheduler.get_last_lr()[0],
            "train/samples": samples,
            "train/samples_nothing_to_generate": empty,
            "train/samples_nothing_given": ungiven,
            "train/samples_per_s": samples / seconds,
            "train/tokens_per_s": tokens / seconds,
        }
        if tokens:
            metrics["train/cond_fraction"] = cond / tokens
        if stats.grad_norm is not None:
            metrics["train/grad_norm"] = stats.grad_norm
        n = len(SIGMA_BUCKETS) - 1
        prefixes = bucket_prefixes(set(stats.buckets))
        for name, acc_buckets in sorted(stats.buckets.items()):
            acc_buckets = acc.reduce(acc_buckets, reduction="sum") if acc.num_processes > 1 else acc_buckets
            sums = acc_buckets.tolist()  # one host read for every bucket
            for i in range(n):
                if sums[n + i] > 0:
                    key = f"{prefixes[name]}{SIGMA_BUCKETS[i]:.2f}-{SIGMA_BUCKETS[i + 1]:.2f}"
                    metrics[key] = sums[i] / sums[n + i]
        if acc.device.type == "cuda":  # the allocator's own counter: no synchronisation
            metrics["train/peak_memory_gb"] = torch.cuda.max_memory_allocated(acc.device) / 2**30
        return metrics

    # -- the run -------------------------------------------------------------------------------------

    def log(self, metrics: dict[str, float]) -> None:
        self.last.update(metrics)
        if self.accelerator.is_main_process:
            for tracker in self.trackers:
                tracker.log(metrics, self.step)

    def fit(self, max_steps: int, after_step: Callable[[Trainer, int], None] | None = None) -> dict[str, float]:
        """Train until ``max_steps`` optimizer steps; returns the last value of every metric.

        Starts from ``self.step`` (non-zero after ``load_state_dict``). ``after_step(trainer, max_steps)`` runs at
        every step boundary once the step is logged and validated (the checkpointer saves there). A stop
        request returns early with ``self.interrupted`` set.
        """
        self.bar = tqdm(
            total=max_steps, initial=self.step, desc="train", unit="step", disable=not self.accelerator.is_main_process
        )
        try:
            if self.step == 0:
                self.validate()
            self.train_steps(max_steps, after_step)
            if not self.interrupted:
                self.check_trained_something()
                self.validate()
                self.show_losses(self.last.get("train/loss", math.nan))
        finally:
            self.bar.close()
            self.bar = None
        return dict(self.last)

    def train_steps(self, max_steps: int, after_step: Callable[[Trainer, int], None] | None) -> None:
        while self.step < max_steps:
            if self.should_stop():
                self.interrupted = True
                break
            start = time.perf_counter()
            stats = self.train_step()
            self.scheduler.step()
            self.step += 1
            metrics = self.step_metrics(stats, time.perf_counter() - start)
            self.samples_trained += int(metrics["train/samples"])
            self.samples_empty += int(metrics["train/samples_nothing_to_generate"])
            if stats.skipped:
                self.skipped_steps += 1
                metrics = {"train/lr": metrics["train/lr"], "train/skipped_steps": self.skipped_steps}
            else:
                self.check_finite(stats, metrics)
            if self.step % self.settings.log_every == 0 or self.step == max_steps:
                self.log(metrics)
            if self.validator.due(self.step, max_steps):
                self.validate()
            if after_step is not None:
                after_step(self, max_steps)
            self.show_losses(metrics.get("train/loss", math.nan))
            self.bar.update(1)

    def check_trained_something(self) -> None:
        """A run whose samples all had no token to generate had a loss of exactly 0 and left the weights as they
        were: a failure, not a result. Some such samples are only worth a warning."""
        if not self.samples_empty:
            return
        what = f"{self.samples_empty} of the {self.samples_trained} samples trained had no token to generate"
        if self.samples_empty == self.samples_trained:
            raise TrainingError(
                f"{what}: the loss was exactly 0 and the weights did not change. The strategy generated no token of"
                " any sample (a mask threshold above every mask value, or masks that give the whole clip): check"
                " the strategy's masks and thresholds"
            )
        if self.accelerator.is_main_process:
            print(f"warning: {what} (they teach nothing; see train/samples_nothing_to_generate)", flush=True)

    def show_losses(self, train_loss: float) -> None:
        self.bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{self.last['val/loss']:.4f}", refresh=False)

    def should_stop(self) -> bool:
        """Whether any rank was asked to stop (all ranks must agree, or the collectives would hang). A prune
        reaches rank 0 alone (it reports to the search): every rank then ends as pruned, not interrupted."""
        if self.accelerator.num_processes == 1:
            return self.stop_requested
        flags = torch.tensor([float(self.stop_requested), float(self.pruned)], device=self.accelerator.device)
        stop, pruned = (bool(v > 0) for v in self.accelerator.reduce(flags, reduction="sum").tolist())
        if pruned and not self.pruned:
            self.pruned, self.stopped_by = True, "the search's pruner"
        return stop

    def weight_checksums(self) -> list[float]:
        """Every rank's sum of trainable weights (gathered): equal on all ranks when DDP keeps them in sync;
        under FSDP the sum over all shards, which every rank computes alike."""
        model = self.accelerator.unwrap_model(self.transformer)
        value = torch.tensor(
            [self.parallel.weight_sum(self.accelerator, model)], dtype=torch.float64, device=self.accelerator.device
        )
        return self.accelerator.gather(value).tolist()
