"""Caption dropout: a training sample sometimes sees the empty prompt's text features instead of its caption's.

The model then also learns the unconditional prediction that classifier-free guidance subtracts at inference.
The empty prompt is encoded once, by preprocessing (``conditions_empty.pt`` in the dataset root), so training
needs no text encoder. Which samples are dropped depends only on the run's seed, the process and the position in
the run's stream of batches: a resumed run drops exactly the samples the uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ltxtune.data.batch import Batch, TextFeatures
from ltxtune.data.checks import SampleExpectations
from ltxtune.data.dataset import load_sample_file
from ltxtune.errors import DataError

EMPTY_CONDITIONS = "conditions_empty.pt"  # the empty prompt's conditions/ file, in the dataset root


def read_empty_text(root: Path, expect: SampleExpectations, key: str, p: float) -> TextFeatures:
    """The empty prompt's features ``[1, L, D]`` under ``root``, checked as a sample's text is; ``key=p`` is the
    setting that needs them, named when the file is missing."""
    path = root / EMPTY_CONDITIONS
    if not path.is_file():
        raise DataError(
            f"{key}={p} needs the empty prompt's text features ({path}), which this dataset lacks: preprocess it "
            f"again with the same encoders (python preprocess.py input=... output={root}; only the missing file "
            f"is written), or set {key}=0"
        )
    data = load_sample_file(path)
    expect.check(path, "text", data)
    batched = {k: v.unsqueeze(0) for k, v in data.items() if isinstance(v, Tensor)}
    return TextFeatures.from_file(batched, with_audio=True)


def mismatch(empty: TextFeatures, text: TextFeatures) -> str | None:
    """Why the empty prompt's features cannot stand in for ``text`` (a sample's), or None."""
    pairs = {"video": (text.video_embeds, empty.video_embeds), "audio": (text.audio_embeds, empty.audio_embeds)}
    for role, (sample, blank) in pairs.items():
        if sample is None:
            continue
        found = None if blank is None else tuple(blank.shape[1:])
        if found != tuple(sample.shape[1:]):
            return (
                f"{EMPTY_CONDITIONS}: {role} text features of shape {found}, the samples' are "
                f"{tuple(sample.shape[1:])}: the empty prompt was encoded by other encoders than the captions; "
                "preprocess the dataset again with overwrite=true"
            )
    return None


@dataclass(frozen=True)
class CaptionDropout:
    """Replaces each training sample's text by ``empty`` (``[1, L, D]``) with probability ``p``."""

    p: float
    empty: TextFeatures
    seed: int
    rank: int = 0

    def dropped(self, size: int, position: int) -> Tensor:
        """``[size]`` bool: which samples of the ``position``-th micro-batch of this process lose their caption."""
        key = ((self.seed * 1_000_003 + self.rank) * 1_000_033 + position) % 2**63
        return torch.rand(size, generator=torch.Generator().manual_seed(key)) < self.p

    def apply(self, batch: Batch, position: int) -> Batch:
        """``batch`` (on the host, as collated) with the dropped samples' text features replaced."""
        if batch.text is None or self.p == 0:
            return batch
        drop = self.dropped(len(batch), position)
        if not drop.any():
            return batch
        text = batch.text
        if (problem := mismatch(self.empty, text)) is not None:
            raise DataError(f"{problem} (samples {', '.join(batch.names)})")
        audio = text.audio_embeds
        if audio is not None:
            audio = _where(drop, self.empty.audio_embeds, audio)
        dropped = TextFeatures(
            _where(drop, self.empty.video_embeds, text.video_embeds),
            _where(drop, self.empty.attention_mask, text.attention_mask),
            audio,
        )
        return replace(batch, text=dropped)


def _where(drop: Tensor, empty: Tensor, values: Tensor) -> Tensor:
    """``values`` ``[B, ...]`` with the rows ``drop`` marks taken from ``empty`` ``[1, ...]``."""
    return torch.where(drop.view(-1, *[1] * (values.dim() - 1)), empty.to(values.dtype), values)
