"""CPU benchmark: ltxtune's training step against a bare PyTorch loop doing the same math on the same model.

    python -m ltxtune.app.bench [--steps 60] [--data-root .ltxtune/bench-data]

Prints (and returns) three figures: the per-step time of both loops and their ratio, the data loader's
samples per second against what the loop consumes, and the wall time of `python train.py` to its first step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from ltxtune.app import CONFIG_MODULE
from ltxtune.data.batch import collate
from ltxtune.diffusion import flow, positions
from ltxtune.training.build import build_training, reset_accelerate_state
from ltxtune.training.parts import build_parts
from ltxtune.training.plan import plan_run
from ltxtune.training.run import compat_facts


def compose_default(data_root: str, *overrides: str):
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose("train", overrides=["logger=none", f"data.root={data_root}", *overrides])


def interleaved_times(steps: dict[str, Callable[[], None]], total: int, rounds: int = 5) -> dict[str, list[float]]:
    """Per-step seconds of each loop, measured in alternating rounds so that machine noise hits all alike."""
    for step in steps.values():  # warm-up: allocator, autograd graph caches, lazy inits
        for _ in range(5):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(max(1, total // rounds)):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return times


def ltxtune_step(cfg) -> Callable[[], None]:
    """One ``Trainer.train_step`` (data loading included) and a schedule step."""
    from accelerate import Accelerator

    parts = build_parts(cfg)
    plan = plan_run(parts, compat_facts(cfg), processes=1)
    reset_accelerate_state()
    accelerator = Accelerator(cpu=True)
    trainer = build_training(parts, plan, Path("outputs/bench"), accelerator, schedule_steps=10_000).trainer

    def step() -> None:
        trainer.train_step()
        trainer.scheduler.step()

    return step


def bare_step(cfg) -> Callable[[], None]:
    """The same model, LoRA, batch size and math in a plain loop over batches held in memory."""
    parts = build_parts(cfg)
    train_set = parts.data.split(parts.strategy.data_needs(), "bench").train
    torch.manual_seed(0)
    model = parts.model.build(0, torch.device("cpu"))
    parts.lora.apply(model)
    net = model.transformer
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    b = parts.trainer.batch_size
    batches = [collate([train_set[j] for j in range(i, i + b)]) for i in range(0, len(train_set) - b + 1, b)]
    g = torch.Generator().manual_seed(0)
    k = [0]

    def step() -> None:
        batch = batches[k[0] % len(batches)]
        k[0] += 1
        latents = batch.video_latents.latents
        x0 = positions.patchify_video(latents)
        _, _, f, h, w = latents.shape
        sigma = parts.sampler.sample_for(x0, g)
        cond = torch.zeros(x0.shape[:2], dtype=torch.bool)
        noised = flow.noise_tokens(x0, sigma, cond, g)
        from ltxtune.diffusion.inputs import Modality

        text = batch.text
        video = Modality(
            latent=noised.latent, sigma=sigma, timesteps=noised.timesteps,
            positions=positions.video_positions(f, h, w, batch.video_latents.fps.float(), x0.device),
            context=text.video_embeds, context_mask=text.attention_mask.long(),
        )  # fmt: skip
        pred, _ = net(video=video, audio=None, perturbations=None)
        loss = flow.masked_loss(pred, noised.target, noised.loss_mask).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def loader_samples_per_s(cfg, seconds: float = 3.0) -> float:
    """Samples per second read and collated from disk (no in-memory cache), in the training process."""
    parts = build_parts(cfg)
    parts.data.cache = False
    train_set = parts.data.split(parts.strategy.data_needs(), "bench").train
    b = parts.trainer.batch_size
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        collate([train_set[(n + j) % len(train_set)] for j in range(b)])
        n += b
    return n / (time.perf_counter() - start)


def startup_to_first_step(data_root: str) -> float:
    """Wall seconds of `python train.py` with one step and no validation: imports, data check, model, one step.

    The run goes to a fresh temporary directory each time (a run directory holds one run: a second benchmark
    into the same one would be refused), removed afterwards; a failed run ends the benchmark with its last line.
    """
    with tempfile.TemporaryDirectory(prefix="ltxtune-bench-") as run_dir:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ltxtune.app.train", "logger=none", "trainer.max_steps=1",
             "validation.every=0", "validation.sigmas=[0.5]", f"data.root={data_root}", f"hydra.run.dir={run_dir}"],
            capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = next(iter(done.stderr.strip().splitlines()[-1:]), f"exit code {done.returncode}")
        sys.exit(f"error: the one-step run of `python train.py` failed: {last.removeprefix('error: ')}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--data-root", default=".ltxtune/synthetic")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    cfg = compose_default(args.data_root)
    build_parts(cfg).data.prepare()

    batch = build_parts(cfg).trainer.batch_size
    times = interleaved_times(
        {
            "bare": bare_step(cfg),
            "ltxtune": ltxtune_step(cfg),
            "uncached": ltxtune_step(compose_default(args.data_root, "data.cache=false")),
        },
        args.steps,
    )
    bare, ours, uncached = (statistics.median(times[k]) for k in ("bare", "ltxtune", "uncached"))
    loader = loader_samples_per_s(cfg)
    first = startup_to_first_step(args.data_root)
    print(f"machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, CPU")
    print(f"step time (median of {len(times['bare'])}, interleaved rounds): ltxtune {1000 * ours:.2f} ms,"
          f" bare PyTorch {1000 * bare:.2f} ms, ratio {ours / bare:.3f}")  # fmt: skip
    print(f"data loader (from disk, uncached): {loader:.0f} samples/s; the loop consumes {batch / ours:.0f}"
          f" samples/s ({100 * batch / ours / loader:.1f}% of the loader's rate)")  # fmt: skip
    print(f"step time with data.cache=false (every sample read from disk): {1000 * uncached:.2f} ms,"
          f" ratio {uncached / bare:.3f}")  # fmt: skip
    print(f"start-up to the end of the first step (`python train.py trainer.max_steps=1`): {first:.2f} s")


if __name__ == "__main__":
    main()
