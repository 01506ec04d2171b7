"""What the step benchmark runs: the clip shapes, the variants a user chooses between, and their configs.

Every variant is the real training config (``conf/train.yaml`` composed as ``python train.py`` would) with
``model=random19b``, a LoRA of rank 32 on the attention projections, batch 1, video with its audio, and the
real text length; a variant adds its own overrides. The list is in the order they run: the figures a user
decides on first, so that a spent time budget drops the least important.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from ltxtune.app import CONFIG_MODULE

CHECKPOINTING = "trainer.gradient_checkpointing=true"


@dataclass(frozen=True)
class Shape:
    """A clip in pixels (``width x height x frames``), and the latent grid LTX-2's VAE makes of it."""

    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"

    def latent(self) -> tuple[int, int, int]:
        """(frames, height, width) of the latents: 8 frames and 32 x 32 pixels per cell, the first frame alone."""
        return (self.frames - 1) // 8 + 1, self.height // 32, self.width // 32


# Users' shapes: 4,096 and 6,144 video tokens (and their audio); the smoke run's are tiny.
SHAPES = (Shape(512, 512, 121), Shape(768, 512, 121))
SMOKE_SHAPES = (Shape(128, 128, 17), Shape(192, 128, 17))
TEXT_TOKENS = 1024  # LTX-2's text features: Gemma's 1024 tokens, a multiple of the connectors' 128 registers
SMOKE_TEXT_TOKENS = 128
SMOKE_BLOCKS = 2
# The smoke run's model: LTX-2's architecture at a width a CPU steps through in milliseconds.
SMOKE_MODEL = (
    f"model.num_layers={SMOKE_BLOCKS}",
    "model.caption_channels=32",
    "model.sizes={num_attention_heads:2,attention_head_dim:16,audio_num_attention_heads:2,audio_attention_head_dim:8,"
    "connector_num_attention_heads:2,connector_attention_head_dim:16,connector_num_layers:1}",
    "trainer.cpu=true",
)


@dataclass(frozen=True)
class Variant:
    """One measured configuration. ``shape``: index into the shapes; ``bare``: the same model and batches
    stepped by a plain PyTorch loop instead of ``Trainer.train_step``; ``unsupported``: why it cannot run at
    all (recorded, never measured); ``smoke_skip``: why a smoke run leaves it out unless it is named."""

    name: str
    what: str
    overrides: tuple[str, ...] = ()
    shape: int = 0
    bare: bool = False
    unsupported: str | None = None
    smoke_skip: str | None = None


VARIANTS = (
    Variant("ckpt", "LoRA r32, gradient checkpointing", (CHECKPOINTING,)),
    Variant(
        "ckpt-bare",
        "the same step in a bare PyTorch loop, alternating with ltxtune's on one model",
        (CHECKPOINTING,),
        bare=True,
    ),
    Variant("ckpt-768x512", "LoRA r32, gradient checkpointing, the larger clip", (CHECKPOINTING,), shape=1),
    Variant("no-ckpt", "LoRA r32, no gradient checkpointing"),
    Variant(
        "ckpt-compile",
        "gradient checkpointing, torch.compile per block",
        (CHECKPOINTING, "trainer.compile=true"),
        smoke_skip="on a CPU inductor builds its C++ kernels for a minute or more: name it in --variants to run it",
    ),
    Variant("ckpt-fused-adamw", "gradient checkpointing, fused AdamW", (CHECKPOINTING, "optimizer.fused=true")),
    Variant("ckpt-int8", "gradient checkpointing, int8 base (torchao)", (CHECKPOINTING, "model.quantization=int8")),
    Variant("ckpt-fp8", "gradient checkpointing, fp8_cast base", (CHECKPOINTING, "model.quantization=fp8_cast")),
    Variant(
        "ckpt-every-2",
        "gradient checkpointing every 2nd block",
        unsupported="not supported: ltx-core's LTXModel checkpoints every block or none"
        " (set_gradient_checkpointing(bool)), and trainer.gradient_checkpointing is a bool",
    ),
)


@dataclass(frozen=True)
class BenchSettings:
    """The run as asked for on the command line."""

    out: Path
    data_root: Path
    smoke: bool = False
    blocks: int = 48
    steps: int = 10
    warmup: int = 3
    budget_s: float = 450.0
    names: tuple[str, ...] = tuple(v.name for v in VARIANTS)
    named: bool = False  # the variants were named on the command line (a smoke run then skips none of them)

    @property
    def shapes(self) -> tuple[Shape, ...]:
        return SMOKE_SHAPES if self.smoke else SHAPES

    @property
    def depth(self) -> int:
        """The model's blocks."""
        return SMOKE_BLOCKS if self.smoke else self.blocks

    @property
    def text_tokens(self) -> int:
        return SMOKE_TEXT_TOKENS if self.smoke else TEXT_TOKENS

    def variants(self) -> list[Variant]:
        return [v for v in VARIANTS if v.name in self.names]


def variant_config(variant: Variant, settings: BenchSettings) -> DictConfig:
    """The training config of ``variant``: the run's common overrides, then the variant's own."""
    shape = settings.shapes[variant.shape]
    frames, height, width = shape.latent()
    common = [
        "model=random19b",
        "logger=none",
        "trainer.batch_size=1",
        "trainer.mixed_precision=bf16",
        "trainer.max_steps=100000",  # the schedule stays in its plateau however many steps are measured
        "lora.rank=32",
        "lora.alpha=32",
        "strategy.with_audio=true",
        "strategy.first_frame_p=0.0",  # every step denoises the whole clip
        "validation.every=0",
        "validation_videos.enabled=false",
        f"data.root={settings.data_root / str(shape)}",
        "data.num_samples=3",
        "data.val_samples=1",
        f"data.frames={frames}",
        f"data.height={height}",
        f"data.width={width}",
        f"data.text_tokens={settings.text_tokens}",
    ]
    size = list(SMOKE_MODEL) if settings.smoke else [f"model.num_layers={settings.blocks}"]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose("train", overrides=[*common, *size, *variant.overrides])
