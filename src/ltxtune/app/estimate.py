"""``trainer.dry_run=true``: what a run would cost, before loading anything heavy.

Parameter counts come from the model built on the meta device (no memory, no weights read); token counts
from the strategy's own inputs for the first training sample; peak memory is an estimate (see ``Estimate``).
Before counting, the config and the first sample go through the plan a run makes before its first step
(``plan_run``), so a dry run that passes does not hide a first-step failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from ltxtune.model.adapters import trainable_parameters
from ltxtune.model.quantize import WEIGHT_BYTES
from ltxtune.training.parts import build_parts
from ltxtune.training.plan import plan_run
from ltxtune.training.run import compat_facts

_BYTES = {"float32": 4, "bfloat16": 2}
# Activation values a transformer block keeps per token and model width for backward (attention projections,
# softmax inputs via SDPA's saved tensors, the 4x feed-forward, norms and modulation): a rule of thumb.
_SAVED_PER_TOKEN_AND_WIDTH = 34


@dataclass(frozen=True)
class Estimate:
    total_params: int
    trainable_params: int
    video_tokens: int
    audio_tokens: int
    text_tokens: int
    weights_gb: float
    optimizer_gb: float
    activations_gb: float
    processes: int = 1
    sharded: bool = False  # FSDP: weights and trainable state divided by the processes
    gathered_gb: float = 0.0  # FSDP: the full weights of the blocks gathered at once (this one and the next)

    @property
    def peak_gb(self) -> float:
        return self.weights_gb + self.optimizer_gb + self.activations_gb + self.gathered_gb

    def report(self) -> str:
        return "\n".join(
            [
                f"parameters: {self.total_params:,} total, {self.trainable_params:,} trainable"
                f" ({100 * self.trainable_params / max(self.total_params, 1):.2f}%)",
                f"tokens per sample: {self.video_tokens} video, {self.audio_tokens} audio, {self.text_tokens} text",
                f"peak memory estimate{self.per_process()}: {self.peak_gb:.2f} GB = weights {self.weights_gb:.2f}"
                f" + trainable state {self.optimizer_gb:.2f} + activations {self.activations_gb:.2f}"
                + (f" + gathered blocks {self.gathered_gb:.2f}" if self.sharded else ""),
            ]
        )

    def per_process(self) -> str:
        if self.sharded:
            return f" per process (FSDP over {self.processes} processes, WORLD_SIZE)"
        return f" per process (each of the {self.processes} holds the whole model)" if self.processes > 1 else ""


def estimate(cfg: DictConfig, processes: int = 1) -> Estimate:
    """The cost of the run ``cfg`` describes, per process when ``processes`` share it."""
    parts = build_parts(cfg)
    tokens = plan_run(parts, compat_facts(cfg), processes).tokens  # what the first step would hit, as a run checks
    video_tokens, audio_tokens = tokens.video, tokens.audio

    empty = parts.model.build_empty()
    with torch.device("meta"):  # peft would otherwise make and initialise the adapters in host memory
        parts.lora.apply(empty)
    transformer, config = empty.transformer, empty.config
    total = sum(p.numel() for p in transformer.parameters())
    trainable = sum(p.numel() for p in trainable_parameters(transformer))

    t = config["transformer"]
    video_width = t.get("num_attention_heads", 32) * t.get("attention_head_dim", 128)
    audio_width = t.get("audio_num_attention_heads", 32) * t.get("audio_attention_head_dim", 64)
    layers = t.get("num_layers", 48)
    settings = parts.trainer
    act_bytes = 2 if settings.mixed_precision != "no" else 4
    per_layer = (video_tokens * video_width + audio_tokens * audio_width) * act_bytes * settings.batch_size
    if settings.gradient_checkpointing:  # each block keeps its input; one block at a time is recomputed
        activations = per_layer * layers + per_layer * _SAVED_PER_TOKEN_AND_WIDTH
    else:
        activations = per_layer * layers * _SAVED_PER_TOKEN_AND_WIDTH
    weight_bytes = _BYTES.get(getattr(parts.model, "dtype", "float32"), 4)
    if quantization := getattr(parts.model, "quantization", None):  # block linears (almost all weights)
        weight_bytes = WEIGHT_BYTES[quantization]
    gb = 1024**3
    sharded = settings.distributed == "fsdp" and processes > 1
    shards = processes if sharded else 1
    per_block = sum(p.numel() for p in transformer.transformer_blocks[0].parameters()) * weight_bytes
    return Estimate(
        total_params=total,
        trainable_params=trainable,
        video_tokens=video_tokens,
        audio_tokens=audio_tokens,
        text_tokens=tokens.text,
        weights_gb=(total - trainable) * weight_bytes / gb / shards,
        # float32 weight and gradient, and the optimizer's moments (8-bit ones for adamw8bit)
        optimizer_gb=trainable * (8 + getattr(parts.optimizer, "state_bytes", 8)) / gb / shards,
        activations_gb=activations / gb,  # each process runs its own micro-batch through every block
        processes=processes,
        sharded=sharded,
        gathered_gb=2 * per_block / gb if sharded else 0.0,  # FSDP2 prefetches the next block's all-gather
    )
