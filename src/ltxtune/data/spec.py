"""Data options: where the precomputed samples are, and how they split into training and validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ltxtune.data import legacy
from ltxtune.data.batch import TextFeatures
from ltxtune.data.checks import SampleExpectations
from ltxtune.data.dataset import PrecomputedDataset, check_sources
from ltxtune.data.dropout import read_empty_text
from ltxtune.data.needs import DataNeeds
from ltxtune.errors import ConfigError, DataError, check_range

# With data.val_samples=0 the objective is measured on this many training samples, spread over the set.
VAL_FROM_TRAINING = 8


@dataclass(frozen=True)
class Split:
    """The training set, the set ``val/loss`` is measured on, and what the split left out.

    ``val_from_training``: nothing is held out (``data.val_samples=0``); ``val`` is a fixed subset of
    ``train``. ``left_out``: sample -> why it was unreadable (``data.strict=false``). ``without_audio``:
    sample -> why it was left out for a strategy with audio (a clip without sound). ``incomplete``: sample ->
    the file it lacks in another directory the strategy reads (``data.strict=false``). ``empty_text``: the
    empty prompt's features ``[1, L, D]``, read when ``data.caption_dropout`` is above 0 (only training drops).
    """

    train: PrecomputedDataset
    val: PrecomputedDataset
    val_from_training: bool = False
    left_out: dict[str, str] = field(default_factory=dict)
    without_audio: dict[str, str] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)
    empty_text: TextFeatures | None = None

    def left_out_groups(self) -> dict[str, dict[str, str]]:
        """Every sample left out, by why (a few words), each with its full reason; empty groups omitted."""
        groups = {
            "unreadable (data.strict=false)": self.left_out,
            "missing a file (data.strict=false)": self.incomplete,
            "without audio": self.without_audio,
        }
        return {label: samples for label, samples in groups.items() if samples}

    def describe(self) -> str:
        val = (
            f"val/loss on {len(self.val)} of them (nothing held out)"
            if self.val_from_training
            else (f"{len(self.val)} held out")
        )
        left = "".join(f", {len(s)} {label.split(' (')[0]} left out" for label, s in self.left_out_groups().items())
        return f"{len(self.train)} training samples, {val}{left}"


class PrecomputedData:
    """A dataset already on disk in ltxtune's layout (or ltx-trainer's, see ``legacy``); the last samples (sorted
    by name) are held out.

    Args:
        root: the dataset directory.
        val_samples: how many to hold out; ``null`` = ``val_fraction`` of them; ``0`` = none (``val/loss`` is
            then measured on a fixed subset of the training samples, at the same fixed sigmas and noise).
        val_fraction: the share held out when ``val_samples`` is null (at least one, never every sample).
        cache: keep loaded samples in memory.
        strict: ``false`` reads every sample once before training and leaves out the unreadable ones, and
            those missing a file the strategy reads (a row without a reference or a mask), counted and reported,
            instead of refusing the dataset.
        caption_dropout: the probability that a training sample sees the empty prompt's text features instead of
            its caption's (preprocessing writes them: ``conditions_empty.pt``); validation never drops.
    """

    def __init__(
        self,
        root: str,
        val_samples: int | None = None,
        cache: bool = False,
        strict: bool = True,
        val_fraction: float = 0.1,
        caption_dropout: float = 0.0,
    ) -> None:
        if not root:
            raise ConfigError("root", root, "the path of a precomputed dataset (data.root=/path/to/data)")
        if val_samples is not None:
            if isinstance(val_samples, bool) or not isinstance(val_samples, int):
                raise ConfigError("val_samples", val_samples, "a whole number of samples (0 = hold none out), or null")
            check_range("val_samples", val_samples, 0)
        check_range("val_fraction", val_fraction, 0.0, 1.0)
        check_range("caption_dropout", caption_dropout, 0.0, 1.0)
        # ltx-trainer's preprocessing writes under <root>/.precomputed/: its users pass the root they know
        self.root = legacy.data_root(Path(root).expanduser())
        self.val_samples, self.val_fraction = val_samples, val_fraction
        self.cache, self.strict = cache, bool(strict)
        self.caption_dropout = float(caption_dropout)

    def prepare(self) -> None:
        """Make the data exist (a no-op here; the synthetic option generates it)."""

    def held_out(self, total: int) -> int:
        """How many of ``total`` samples to hold out."""
        if self.val_samples is not None:
            if self.val_samples >= total:
                raise ConfigError(
                    "data.val_samples", self.val_samples, f"fewer than the {total} samples under {self.root}"
                )
            return self.val_samples
        if self.val_fraction == 0 or total < 2:
            return 0
        return min(total - 1, max(1, round(total * self.val_fraction)))

    def split(self, needs: DataNeeds, strategy: str, text_widths: tuple[int, int] | None = None) -> Split:
        """Training and validation datasets over the samples every directory of ``needs`` holds; each sample is
        checked as it is read, its text features against ``text_widths`` (video, audio; the model's) when given.
        Samples missing from one of ``needs.audio_dirs`` (clips without sound) are left out."""
        expect = SampleExpectations(needs, *(text_widths or (None, None)))
        self.prepare()
        listing = check_sources(self.root, needs, strategy, self.strict)
        empty = None
        if self.caption_dropout > 0 and needs.text is not None:  # refused before any sample is read
            empty = read_empty_text(self.root, expect, "data.caption_dropout", self.caption_dropout)
        names, without_audio, incomplete = listing.names, listing.without_audio, listing.incomplete
        dataset = PrecomputedDataset(self.root, expect, tuple(names), self.cache)
        left_out = {} if self.strict else unreadable(dataset)
        if len(left_out) == len(names):
            raise DataError(
                f"no sample under {self.root} is readable (data.strict=false); the first: "
                + next(iter(left_out.values()))
            )
        names = [n for n in names if n not in left_out]
        cut = len(names) - self.held_out(len(names))
        train = PrecomputedDataset(self.root, expect, tuple(names[:cut]), self.cache)
        if cut == len(names):
            every = max(1, len(names) // VAL_FROM_TRAINING)
            val = PrecomputedDataset(self.root, expect, tuple(names[::every][:VAL_FROM_TRAINING]), audio_text=True)
            return Split(train, val, True, left_out, without_audio, incomplete, empty)
        val = PrecomputedDataset(self.root, expect, tuple(names[cut:]), audio_text=True)
        return Split(train, val, False, left_out, without_audio, incomplete, empty)


def unreadable(dataset: PrecomputedDataset) -> dict[str, str]:
    """Sample -> the problem of every sample of ``dataset`` that cannot be read or trained on."""
    print(f"data.strict=false: reading all {len(dataset)} samples under {dataset.root} once", flush=True)
    problems = {}
    for index, name in enumerate(dataset.names):
        try:
            dataset[index]
        except DataError as exc:
            problems[name] = str(exc)
    return problems
