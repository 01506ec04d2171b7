"""What is trained, and the file it is saved as: a LoRA (ltx-core/ComfyUI layout) or the full transformer."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ltxtune import __version__
from ltxtune.errors import ConfigError, TrainingError, check_range
from ltxtune.files import canonical_safetensors_header, readable_by_all, writing
from ltxtune.ltx_core_api import LTX25, LTX25_TRANSFORMER_FLAGS, model_family
from ltxtune.model.base import CHECKPOINT_PREFIX, LoadedModel

# LoRA keys in the ComfyUI / ltx-core layout: diffusion_model.<module path>.lora_{A,B}.weight
LORA_PREFIX = "diffusion_model."
DEFAULT_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """What the optimizer steps and the gradient clipping measures: the parameters the adapter left trainable."""
    return [p for p in module.parameters() if p.requires_grad]


class Adapter(ABC):
    """Decides which parameters train (``apply``) and writes them in the format inference loads (``save``)."""

    filename: str

    @abstractmethod
    def apply(self, model: LoadedModel) -> None:
        """Mark what trains (and add adapter layers) on ``model.transformer``, in place."""

    @abstractmethod
    def state_dict(
        self, transformer: nn.Module, weights: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """The tensors of the inference file, keyed as ltx-core expects.

        ``weights``: the trainable weights as full tensors under the module's own names (what FSDP gathers
        from the shards); ``None`` reads them from ``transformer``, which then holds them whole.
        """

    @abstractmethod
    def metadata(self) -> dict[str, Any]: ...

    def save(
        self,
        transformer: nn.Module,
        path: Path,
        extra: dict[str, Any],
        weights: Mapping[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write the inference file with ``extra`` (strategy metadata, step...) in its safetensors metadata."""
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict(transformer, weights).items()}
        if bad := [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]:
            raise TrainingError(
                f"not writing {path}: {len(bad)} of {len(tensors)} tensors hold NaN/inf ({bad[0]}, ...)"
            )
        meta = {"ltxtune_version": __version__, **self.metadata(), **extra}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with writing(path, cleanup=tmp):
            save_file(
                tensors, str(tmp), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
            )
            canonical_safetensors_header(tmp)
        readable_by_all(tmp)
        tmp.replace(path)
        return path


def check_lora_file(path: Path, rank: int) -> None:
    """Refuse as ``lora.init_from`` what is not a LoRA file of ``rank`` (read from the header: no tensor loads)."""
    from safetensors import safe_open

    allowed = "a LoRA .safetensors file (a run's lora.safetensors, or the ComfyUI layout), or null"
    if not path.is_file():
        raise ConfigError("init_from", str(path), allowed)
    try:
        with safe_open(str(path), "pt") as f:
            ranks = {f.get_slice(k).get_shape()[0] for k in f.keys() if k.endswith(".lora_A.weight")}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error type for a file of another format
        first = next(iter(str(exc).splitlines()), type(exc).__name__)
        raise ConfigError("init_from", str(path), f"{allowed}; this file is not safetensors ({first})") from None
    if not ranks:
        raise ConfigError("init_from", str(path), f"{allowed}; this file holds no '<module>.lora_A.weight' tensors")
    if ranks != {rank}:
        found = ", ".join(str(r) for r in sorted(ranks))
        fix = f"train it with lora.rank={found}" if len(ranks) == 1 else "one rank is all lora.rank can match"
        raise ConfigError(
            "init_from", str(path), f"a LoRA of rank {rank} (lora.rank); this one has rank {found}: {fix}"
        )


class LoraAdapter(Adapter):
    """Low-rank adapters (through peft) on the linear layers named by ``target_modules``.

    ltx-core's fuser adds ``strength * B @ A`` and ignores alpha, so ``alpha / rank`` is baked into B on save.
    """

    filename = "lora.safetensors"

    def __init__(
        self,
        rank: int = 16,
        alpha: float = 16.0,
        dropout: float = 0.0,
        target_modules: Sequence[str] = DEFAULT_TARGETS,
        init_from: str | None = None,
    ) -> None:
        check_range("rank", rank, 1)
        check_range("alpha", alpha, 0.0, lo_open=True)
        check_range("dropout", dropout, 0.0, 1.0)
        if not target_modules:
            raise ConfigError("target_modules", list(target_modules), "a non-empty list of module name suffixes")
        self.rank, self.alpha, self.dropout = rank, float(alpha), dropout
        self.target_modules = list(target_modules)
        self.init_from = Path(init_from).expanduser() if init_from else None
        if self.init_from is not None:
            check_lora_file(self.init_from, rank)
        self.base: dict[str, Any] = {}

    def apply(self, model: LoadedModel) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        transformer = model.transformer
        transformer.requires_grad_(False)
        self.base = base_model(model.config)
        config = LoraConfig(
            r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=self.target_modules
        )
        try:
            inject_adapter_in_model(config, transformer)
        except ValueError as exc:
            raise ConfigError("lora.target_modules", self.target_modules, f"names of linear layers ({exc})") from exc
        for name, param in transformer.named_parameters():
            param.requires_grad_("lora_" in name)
            if "lora_" in name:  # a bf16 base still trains its adapters in float32
                param.data = param.data.float()
        if self.init_from is not None:
            self.load_weights(transformer, self.init_from)

    @torch.no_grad()
    def load_weights(self, transformer: nn.Module, path: Path) -> None:
        """Start from a LoRA file in the inference layout (fine-tune further); it must match rank and targets."""
        from safetensors import safe_open

        ours = self.state_dict(transformer)
        with safe_open(str(path), "pt") as f:
            theirs = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
        if set(theirs) != set(ours) or any(theirs[k].shape != ours[k].shape for k in ours):
            extra, missing = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
            raise ConfigError(
                "lora.init_from",
                str(path),
                f"a LoRA with rank {self.rank} on {self.target_modules} "
                f"(file has {len(extra)} unknown and lacks {len(missing)} of our keys, or other shapes)",
            )
        layers = self.layers(transformer)
        for key, layer in layers.items():
            layer.lora_A["default"].weight.copy_(theirs[f"{key}.lora_A.weight"])
            # The file's B carries alpha / rank (see state_dict); peft applies that scaling itself.
            layer.lora_B["default"].weight.copy_(theirs[f"{key}.lora_B.weight"] / layer.scaling["default"])

    @staticmethod
    def layers(transformer: nn.Module) -> dict[str, nn.Module]:
        """The peft LoRA layers, keyed by their name in the inference file (without the .lora_X suffix)."""
        from peft.tuners.lora import LoraLayer

        return {
            LORA_PREFIX + name.removeprefix("module."): module
            for name, module in transformer.named_modules()
            if isinstance(module, LoraLayer) and "default" in module.lora_A
        }

    def state_dict(
        self, transformer: nn.Module, weights: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        tensors = {}
        for key, layer in self.layers(transformer).items():
            a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
            if weights is not None:
                name = key.removeprefix(LORA_PREFIX)
                a, b = weights[f"{name}.lora_A.default.weight"], weights[f"{name}.lora_B.default.weight"]
            tensors[f"{key}.lora_A.weight"] = a.float()
            tensors[f"{key}.lora_B.weight"] = b.float() * layer.scaling["default"]
        return tensors

    def metadata(self) -> dict[str, Any]:
        return {
            "format": "lora",
            "lora_rank": self.rank,
            "lora_alpha": self.alpha,
            "target_modules": self.target_modules,
            **self.base,
        }


# The config flags that tell LTX-2.3 from LTX-2 (a LoRA fits the architecture it was trained on); an LTX-2.5 base
# adds its own (ltx_core_api.LTX25_TRANSFORMER_FLAGS).
_ARCHITECTURE_FLAGS = ("apply_gated_attention", "cross_attention_adaln", "caption_proj_before_connector")


def base_model(config: dict[str, Any]) -> dict[str, Any]:
    """What a LoRA file records of its base: the family and the architecture flags, from the model config."""
    t = config.get("transformer", {})
    flags = {flag: bool(t.get(flag, False)) for flag in _ARCHITECTURE_FLAGS}
    name = model_family(config)
    if name == LTX25:
        flags.update({flag: bool(t.get(flag, not value)) for flag, value in LTX25_TRANSFORMER_FLAGS.items()})
    return {"base_model": name, "base_model_flags": flags, "base_model_layers": t.get("num_layers", 48)}


class FullFinetune(Adapter):
    """Every transformer weight trains; saved as an ltx-core checkpoint (prefixed keys, config in metadata)."""

    filename = "model.safetensors"

    def __init__(self) -> None:
        self.model_config: dict[str, Any] = {}

    def apply(self, model: LoadedModel) -> None:
        model.transformer.requires_grad_(True)
        self.model_config = model.config

    def state_dict(
        self, transformer: nn.Module, weights: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        # Every weight trains (and the transformer has no buffers), so the trainable weights are all of it.
        source = transformer.state_dict() if weights is None else weights
        return {CHECKPOINT_PREFIX + k: v for k, v in source.items()}

    def metadata(self) -> dict[str, Any]:
        return {"format": "full", "config": self.model_config}
