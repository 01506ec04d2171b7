"""What a model option builds: the transformer, its config (the checkpoint metadata), and the text path."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from torch import nn

from ltxtune.ltx_core_api import build, model_family

# ltx-core checkpoints keep the transformer under this prefix, with the config JSON in the metadata.
CHECKPOINT_PREFIX = "model.diffusion_model."


@dataclass
class LoadedModel:
    """A built transformer ready to train.

    ``config`` is the dict ltx-core's configurator reads (``{"transformer": {...}}``); it is written into
    every full checkpoint so that ``SingleGPUModelBuilder`` can rebuild the model. ``encode_text`` turns the
    stored text features of a batch into the context the transformer attends to (identity when the stored
    features already are that context).
    """

    transformer: nn.Module
    config: dict[str, Any]
    encode_text: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = field(default=lambda c: c)


@dataclass(frozen=True)
class InputNeeds:
    """What the model's first step needs of the data, read from its config without loading weights.

    ``text_width`` / ``audio_text_width``: the widths of the stored video / audio text features (LTX-2 stores
    one width for both; LTX-2.3 stores each stream's own, ``None`` = ``text_width``); ``text_multiple``: their
    token count must be a multiple of it (ltx-core's text connectors tile their learnable registers over the
    sequence), or ``None``; ``blocks``: the transformer's depth, when its config says.
    """

    video_channels: int
    audio_channels: int
    text_width: int
    text_multiple: int | None = None
    audio_text_width: int | None = None
    blocks: int | None = None  # transformer blocks (validation's STG perturbs some of them)

    @property
    def text_widths(self) -> tuple[int, int]:
        """(video, audio) widths of the stored text features."""
        return self.text_width, self.audio_text_width or self.text_width


class ModelSpec(ABC):
    """A model config option: validated on construction, built (the heavy part) by ``build``."""

    caption_channels: int
    audio_caption_channels: int | None = None  # the audio text features' width when it differs (LTX-2.3)

    @property
    def text_widths(self) -> tuple[int, int]:
        """(video, audio) widths of the text features this option is set for (``model.caption_channels``...)."""
        return self.caption_channels, self.audio_caption_channels or self.caption_channels

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The ltx-core model config (``{"transformer": {...}}``), read without building anything."""

    def input_needs(self) -> InputNeeds:
        """The latent channels and text features the transformer takes (its context is the stored features)."""
        t = self.config()["transformer"]
        return InputNeeds(
            t.get("in_channels", 128),
            t.get("audio_in_channels", 128),
            t["caption_channels"],
            blocks=t.get("num_layers"),
        )

    def version(self) -> str:
        """The model version (``LTX-2``, ``LTX-2.3`` or ``LTX-2.5``), which picks inference's sampling defaults."""
        return model_family(self.config())

    @abstractmethod
    def build(self, seed: int, device: torch.device) -> LoadedModel: ...

    def build_empty(self) -> LoadedModel:
        """The transformer of this config on the meta device: its shapes and parameter counts, no memory."""
        config = self.config()
        with torch.device("meta"):
            return LoadedModel(transformer=build(LTXModelConfigurator, config), config=config)


def fsdp_units(transformer: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards one unit each: ltx-core's ``BasicAVTransformerBlock`` list (the root is the last unit).

    A block takes and returns ``TransformerArgs`` dataclasses. FSDP finds the tensors on which it hooks its
    backward (gathering the block's weights again, then reduce-scattering its gradients) by flattening the
    block's inputs and outputs as pytrees: unregistered, the dataclass hides them and backward reads weights
    already freed ("storage of size 0"). So the class is registered as a pytree node, once.
    """
    import torch.utils._pytree as pytree
    from ltx_core.model.transformer.transformer_args import TransformerArgs

    if TransformerArgs not in pytree.SUPPORTED_NODES:
        pytree.register_dataclass(TransformerArgs)
    return list(transformer.transformer_blocks)
