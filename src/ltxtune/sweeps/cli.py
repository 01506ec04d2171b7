"""``python -m ltxtune.sweeps <sweep dir> [--wandb]``: rebuild a sweep's summary files."""

from __future__ import annotations

import argparse
from pathlib import Path

from omegaconf import OmegaConf

from ltxtune.sweeps.summary import log_wandb_table, write_summary

# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ltxtune.sweeps",
        description="Rebuild the summary files and plots of a sweep directory.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory (holds one directory per job)")
    parser.add_argument("--wandb", action="store_true", help="also log the summary table to the sweep's wandb group")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if not (args.sweep_dir / "multirun.yaml").is_file():  # Hydra writes it in every sweep directory
        below = [p.parent for p in sorted(args.sweep_dir.rglob("multirun.yaml"))]
        where = ("; sweeps below it: " + ", ".join(str(p) for p in below)) if below else "; no sweeps below it either"
        parser.error(f"{args.sweep_dir} holds no sweep jobs (it has no multirun.yaml){where}")
    jobs = write_summary(args.sweep_dir)
    if not jobs:
        parser.error(f"no job directories (with .hydra/overrides.yaml) under {args.sweep_dir}")
    print((args.sweep_dir / "summary.md").read_text(), end="")
    if args.wandb:
        config = OmegaConf.load(args.sweep_dir / "multirun.yaml")
        log_wandb_table(args.sweep_dir, OmegaConf.to_container(config.logger, resolve=True))
