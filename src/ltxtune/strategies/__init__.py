"""Training strategies: what data a mode needs, how a batch becomes model inputs, and the loss."""

from ltxtune.strategies.base import ModelInputs, TrainingStrategy

__all__ = ["ModelInputs", "TrainingStrategy"]
