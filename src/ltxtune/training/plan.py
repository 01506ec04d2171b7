"""Everything a run can check before any weights are loaded, as one frozen plan.

``plan_run`` takes the validated parts and answers: which samples train and which validate, whether the
values work together (the validation prompts with the strategy included), whether the first step would fail
on the data (shape-dependent settings, latent channels, text width and length), how many tokens a sample
puts through the transformer, and the facts a checkpoint must share with a resumed run. A run and the dry
run (``trainer.dry_run=true``) both call it, so a dry run that passes is a run whose first step does not
fail on these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ltxtune.data.batch import Batch, collate
from ltxtune.data.dropout import mismatch
from ltxtune.data.spec import Split
from ltxtune.data.synthetic import SyntheticData
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.errors import ConfigError, DataError
from ltxtune.evaluation.prompts import check_prompts, check_sizes, read_negative_conditions
from ltxtune.model.adapters import FullFinetune
from ltxtune.strategies.base import TrainingStrategy
from ltxtune.training.checkpoint import CompatFacts
from ltxtune.training.parts import Parts
from ltxtune.training.preflight import check_model_inputs


@dataclass(frozen=True)
class SampleTokens:
    """Tokens one sample puts through the transformer (conditions included): what a step's cost follows."""

    video: int
    audio: int
    text: int

    def __str__(self) -> str:
        return f"{self.video} video, {self.audio} audio, {self.text} text"


@dataclass(frozen=True)
class RunPlan:
    """What the run will train on and the facts it was checked against; built before the model."""

    split: Split
    tokens: SampleTokens
    compat: CompatFacts
    processes: int


def plan_run(parts: Parts, compat: CompatFacts, processes: int, main: bool = True) -> RunPlan:
    """Check the run ``parts`` describe without loading weights; raises ``ConfigError`` / ``DataError``."""
    check_combination(parts, processes, warn=main)
    if parts.validation_videos.enabled:
        try:
            check_prompts(parts.validation_videos.user_prompts(), parts.strategy)
        except ConfigError as exc:
            raise exc.within("validation_videos") from None
    strategy = type(parts.strategy).__name__
    split = parts.data.split(parts.strategy.data_needs(), strategy, parts.model.text_widths)
    first = collate([split.train[0]])  # read once: the checks look at the first training sample
    check_data(parts, first)
    empty = split.empty_text  # caption dropout swaps it in for a caption's features: the same shapes
    if empty is not None and first.text is not None and (problem := mismatch(empty, first.text)) is not None:
        raise DataError(f"{problem} (data.caption_dropout={parts.data.caption_dropout})")
    if parts.validation_videos.enabled:
        try:
            check_sizes(parts.validation_videos.user_prompts(), first, parts.strategy)
        except ConfigError as exc:
            raise exc.within("validation_videos") from None
    negative = parts.validation_videos.negative_conditions
    if parts.validation_videos.enabled and negative is not None and first.text is not None:
        read_negative_conditions(Path(negative).expanduser(), first.text)
    check_mask_coverage(parts.strategy, split.train, first)
    return RunPlan(split, sample_tokens(parts.strategy, first), compat, processes)


def check_combination(parts: Parts, processes: int, warn: bool = True) -> None:
    """Values that are each valid but do not work together."""
    settings = parts.trainer
    if settings.mixed_precision == "fp16" and (settings.cpu or not torch.cuda.is_available()):
        raise ConfigError("trainer.mixed_precision", "fp16", "'no' or 'bf16' without a CUDA device (fp16 needs a GPU)")
    warmup = getattr(parts.scheduler, "warmup_steps", 0)
    if warmup >= settings.max_steps and warn:
        print(
            f"warning: scheduler.warmup_steps={warmup} >= trainer.max_steps={settings.max_steps}: the learning rate"
            " never reaches optimizer.lr in this run",
            flush=True,
        )
    quantization = getattr(parts.model, "quantization", None)
    if quantization and isinstance(parts.lora, FullFinetune):
        raise ConfigError("model.quantization", quantization, "null with lora=none (a quantized base trains a LoRA)")
    if quantization == "int8" and processes > 1:  # DDP's start-up broadcast cannot copy torchao's tensors
        raise ConfigError(
            "model.quantization",
            "int8",
            f"fp8_cast or null with {processes} processes (an int8 base trains in"
            " one process: torchao's int8 weights cannot be broadcast by DDP, and FSDP over them is untested)",
        )
    if getattr(parts.model, "dtype", "float32") == "bfloat16" and settings.mixed_precision == "no":
        raise ConfigError("model.dtype", "bfloat16", "float32, or keep bfloat16 with trainer.mixed_precision=bf16")


def check_data(parts: Parts, batch: Batch) -> None:
    """Shape-dependent settings (boundaries, crop boxes, reference scales) and what the model takes (latent
    channels, text width and length) against one real sample (``batch``), before the model is built; also lets the
    strategy learn what its checkpoint metadata records."""
    try:
        parts.strategy.check_data(batch)
    except ConfigError as exc:
        raise exc.within("strategy") from None
    videos = parts.validation_videos
    guidance = videos.guidance_params() if videos.enabled else None
    check_model_inputs(
        parts.model, parts.data.root, batch, guidance, text_tokens_key=isinstance(parts.data, SyntheticData)
    )


MASK_SAMPLES = 32  # training samples, spread over the set, whose masks are read before training


def check_mask_coverage(strategy: TrainingStrategy, train: Sequence[Batch], first: Batch) -> None:
    """Refuse a mask threshold that leaves most samples with no token to generate, or none given.

    Such a run trains nothing (a loss of exactly 0, weights unchanged) or trains another mode than asked. Up
    to ``MASK_SAMPLES`` training samples spread evenly over the set are read; nothing for strategies without
    masks.
    """
    if not strategy.mask_coverage(first):
        return
    picks = sorted({round(i * (len(train) - 1) / max(MASK_SAMPLES - 1, 1)) for i in range(MASK_SAMPLES)})
    seen = [strategy.mask_coverage(first if i == 0 else collate([train[i]])) for i in picks]
    for j, cover in enumerate(seen[0]):
        generated = torch.cat([covers[j].generated for covers in seen])
        lo = min(covers[j].values[0] for covers in seen)
        hi = max(covers[j].values[1] for covers in seen)
        none, every = int((generated == 0).sum()), int((generated == 1).sum())
        if 2 * none <= len(generated) and 2 * every <= len(generated):
            continue
        generating = none > every
        count = none if generating else every
        lower = generating == cover.above_generates  # lowering the threshold generates more of a fraction mask
        bound = hi if lower else lo
        what = "no token to generate" if generating else "no token given (the whole clip is generated)"
        raise DataError(
            f"strategy.{cover.key}={cover.threshold}: {count} of {len(generated)} training samples checked have "
            f"{what}, so the run would train {'nothing' if generating else 'another mode'}. Their "
            f"{cover.directory}/ values range {lo:.3g}..{hi:.3g} and a cell is "
            f"{'generated' if cover.above_generates else 'given'} when its value is above the threshold: "
            f"{'lower' if lower else 'raise'} strategy.{cover.key} {'below' if lower else 'to at least'} {bound:.3g}, "
            "or check the masks (preprocess's mask_white says which colour is the region to generate)"
        )


def sample_tokens(strategy: TrainingStrategy, batch: Batch) -> SampleTokens:
    """The token counts of the strategy's inputs for a batch of one sample (one draw, its own generator)."""
    inputs = strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    video = inputs.video.latent.shape[1] if inputs.video is not None else 0
    audio = inputs.audio.latent.shape[1] if inputs.audio is not None else 0
    context = inputs.video.context if inputs.video is not None else inputs.audio.context
    return SampleTokens(video, audio, int(context.shape[1]))
