"""The same Optuna search with and without pruning, on the tiny model and the CPU (docs/performance.md).

    python bench/search_pruning.py [--trials 16] [--workers 2] [--seeds 0 1 2] [--pruner successive_halving]

For each seed, runs ``hparams_search=inpainting`` twice (pruner=none, then the pruner) with an lr range wide
enough that some trials are clearly bad, ``--workers`` asynchronous workers (joblib), and prints a Markdown
table: total training steps of all trials, wall time, best objective, and the trials pruned.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRUNER_ARGS = {
    "none": "{}",
    "median": "{n_startup_trials: 4, n_warmup_steps: 4}",
    "successive_halving": "{min_resource: 4, reduction_factor: 3}",
    "hyperband": "{min_resource: 4, max_resource: 24, reduction_factor: 3}",
}


def search(out: Path, data: Path, seed: int, pruner: str, trials: int, workers: int, steps: int) -> dict:
    sweep_dir = out / f"{pruner}-seed{seed}"
    args = [
        "hparams_search=inpainting",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.seed={seed}",
        f"hydra.sweeper.pruner={pruner}",
        f"hydra.sweeper.pruner_args={PRUNER_ARGS[pruner]}",
        "optimizer.lr=tag(log, interval(1e-5, 1.0))",  # a command-line search key replaces the config's
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={workers}",
        f"trainer.max_steps={steps}",
        "trainer.batch_size=2",
        "scheduler.warmup_steps=0",
        "validation.every=4",
        "validation.sigmas=[0.5]",
        "validation_videos.enabled=false",
        "data.num_samples=12",
        "data.val_samples=2",
        f"data.root={data}",
        "logger.mode=disabled",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"search failed ({sweep_dir}):\n{done.stderr[-3000:]}")
    results = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    completed = [r["objective"] for r in results if r["status"] == "completed" and math.isfinite(r["objective"])]
    return {
        "seed": seed,
        "pruner": pruner,
        "trials": len(results),
        "pruned": sum(r["status"] == "pruned" for r in results),
        "steps": sum(int(r.get("steps", 0)) for r in results),
        "wall_s": wall,
        "best": min(completed) if completed else math.inf,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=24, help="training steps of a trial that is not pruned")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pruner", default="successive_halving", choices=sorted(set(PRUNER_ARGS) - {"none"}))
    parser.add_argument("--out", type=Path, default=None, help="where the sweeps go (default: a temporary dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="search-pruning-"))
    rows = []
    for seed in args.seeds:
        for pruner in ("none", args.pruner):
            row = search(out, out / "data", seed, pruner, args.trials, args.workers, args.steps)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print("| seed | pruner | trials | pruned | training steps | wall s | best objective |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["seed"], r["pruner"], r["trials"], r["pruned"], r["steps"], f"{r['wall_s']:.0f}", f"{r['best']:.4f}"]
        print("| " + " | ".join(map(str, cells)) + " |")
    for pruner in ("none", args.pruner):
        mine = [r for r in rows if r["pruner"] == pruner]
        steps = sum(r["steps"] for r in mine) / len(mine)
        wall = sum(r["wall_s"] for r in mine) / len(mine)
        bests = [r["best"] for r in mine]
        print(f"\n{pruner}: mean {steps:.0f} steps, {wall:.0f} s; best objective {min(bests):.4f} ... {max(bests):.4f}")


if __name__ == "__main__":
    main()
