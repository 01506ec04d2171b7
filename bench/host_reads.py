"""Host reads of tensor values per training step: each is a host-device synchronisation on a GPU.

    python bench/host_reads.py [--steps 20] [overrides ...]

Counts the calls of ``Tensor.item``, ``float(tensor)``, ``int(tensor)``, ``bool(tensor)`` and ``Tensor.tolist``
made while ``Trainer.train_steps`` runs (data, forward, backward, clipping, optimizer, metrics, the non-finite
guard; no validation), and prints them per step. Works on the CPU: it counts the calls, it does not time them.
Written to compare commits (e.g. with and without a change to the training step), so it uses only what every
version of the trainer has.
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

READS = ("item", "__float__", "__int__", "__bool__", "tolist")


def count_reads(counts: collections.Counter) -> None:
    for name in READS:
        original = getattr(torch.Tensor, name)

        @functools.wraps(original)
        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        setattr(torch.Tensor, name, counted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    from accelerate import Accelerator
    from tqdm import tqdm

    import ltxtune
    from ltxtune.training.build import build_training, reset_accelerate_state
    from ltxtune.training.parts import build_parts
    from ltxtune.training.plan import plan_run
    from ltxtune.training.run import compat_facts

    root = Path(ltxtune.__file__).resolve().parents[2]  # the checkout being measured
    shipped = Path(ltxtune.__file__).resolve().parent / "conf"  # its configs: in the package, or (older) beside it
    conf = shipped if shipped.is_dir() else root / "conf"

    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", "validation.every=0", *args.overrides])
    parts = build_parts(cfg)
    plan = plan_run(parts, compat_facts(cfg), processes=1)
    reset_accelerate_state()
    trainer = build_training(parts, plan, root / "outputs/bench-host-reads", Accelerator(cpu=True)).trainer
    trainer.bar, trainer.last["val/loss"] = tqdm(disable=True), float("nan")  # what fit() sets up
    trainer.train_steps(2, None)  # warm-up: lazy initialisations read values once
    counts: collections.Counter = collections.Counter()
    count_reads(counts)
    trainer.train_steps(2 + args.steps, None)
    total = sum(counts.values())
    per_kind = ", ".join(f"{k} {v / args.steps:g}" for k, v in sorted(counts.items()))
    print(f"{' '.join(args.overrides) or 'defaults'}: {total / args.steps:g} host reads per step ({per_kind})")


if __name__ == "__main__":
    sys.exit(main())
