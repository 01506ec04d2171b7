"""The only package that builds ltx-core's transformer: the tiny embedded model, real checkpoints, LoRA."""

from ltxtune.model.base import LoadedModel, ModelSpec

__all__ = ["LoadedModel", "ModelSpec"]
