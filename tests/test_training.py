"""End to end on the tiny LTX-2: the model trains, the loss falls, the run directory holds what docs/outputs.md says."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch
from safetensors import safe_open

from conftest import compose_cfg
from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def test_tiny_model_runs_forward_and_backward_on_a_batch(synthetic_root) -> None:
    parts = build_parts(compose_cfg("strategy.with_audio=true", data_root=synthetic_root))
    train_set = parts.data.split(parts.strategy.data_needs(), "t2v").train
    model = parts.model.build(seed=0, device=torch.device("cpu"))
    parts.lora.apply(model)
    batch = collate([train_set[i] for i in range(2)])
    inputs = parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    video, audio = model.transformer(video=inputs.video, audio=inputs.audio, perturbations=None)
    assert video.shape == inputs.video.latent.shape == (2, 3 * 4 * 6, 128)
    assert audio.shape == inputs.audio.latent.shape
    loss = parts.strategy.compute_loss(video, audio, inputs)
    assert loss.shape == (2,) and torch.isfinite(loss).all()
    loss.mean().backward()
    grads = [p.grad for n, p in model.transformer.named_parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    frozen = [p for n, p in model.transformer.named_parameters() if "lora_" not in n]
    assert all(not p.requires_grad and p.grad is None for p in frozen)


def test_the_tiny_model_trains_on_bfloat16_text_features(synthetic_root, tmp_path) -> None:
    """Features from Gemma are stored in bfloat16: the tiny model takes them as a real checkpoint does."""
    build_parts(compose_cfg(data_root=synthetic_root)).data.prepare()
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    for path in (data / "conditions").glob("*.pt"):
        stored = torch.load(path, weights_only=True)
        torch.save({k: v.bfloat16() if v.is_floating_point() else v for k, v in stored.items()}, path)
    cfg = compose_cfg("data=precomputed", f"data.root={data}", "trainer.max_steps=2", "validation_videos.enabled=false")
    result = train(cfg, tmp_path / "run")
    assert result.completed and math.isfinite(result.val_loss)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_short_run_lowers_validation_loss_clearly(synthetic_root, tmp_path) -> None:
    cfg = compose_cfg("trainer.max_steps=80", "validation.every=40", data_root=synthetic_root)
    objective = train(cfg, tmp_path).objective
    vals = [m["val/loss"] for m in read_metrics(tmp_path) if "val/loss" in m]
    assert len(vals) == 3  # before the first step, at step 40, at the end
    assert vals[-1] < 0.8 * vals[0], vals
    assert objective == vals[-1]


def test_run_directory_holds_metrics_result_and_lora(synthetic_root, tmp_path) -> None:
    cfg = compose_cfg("lora.rank=4", "lora.alpha=8", data_root=synthetic_root)
    train(cfg, tmp_path)

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 4
    assert result["objective"] == result["val/loss"] and result["wall_s"] > 0
    assert "train/loss" in result

    metrics = read_metrics(tmp_path)
    steps = [m for m in metrics if "train/loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    for key in ("train/lr", "train/samples_per_s", "train/tokens_per_s", "train/cond_fraction"):
        assert all(key in m for m in steps), key
    bucket_keys = {k for m in steps for k in m if k.startswith("train/loss_sigma_")}
    assert bucket_keys and bucket_keys <= {
        f"train/loss_sigma_{a}-{b}" for a, b in [("0.00", "0.25"), ("0.25", "0.50"), ("0.50", "0.75"), ("0.75", "1.00")]
    }

    with safe_open(str(tmp_path / "lora.safetensors"), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        tensors = {k: f.get_tensor(k) for k in keys}
    pattern = re.compile(
        r"diffusion_model\.transformer_blocks\.\d+\.\w+\.(to_q|to_k|to_v|to_out\.0)\.lora_[AB]\.weight"
    )
    assert keys and all(pattern.fullmatch(k) for k in keys), keys[:4]
    assert "diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight" in keys
    assert "diffusion_model.transformer_blocks.1.audio_to_video_attn.to_out.0.lora_B.weight" in keys
    a = tensors["diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight"]
    assert a.shape == (4, 64)
    assert meta["lora_rank"] == "4" and float(meta["lora_alpha"]) == 8.0
    assert json.loads(meta["target_modules"]) == ["to_k", "to_q", "to_v", "to_out.0"]
    assert meta["ltxtune_version"] and "TextToVideo" in meta["strategy"]


@pytest.mark.parametrize(
    ("overrides", "audio_buckets"), [(("experiment=t2a",), False), (("strategy.with_audio=true",), True)]
)
def test_loss_by_sigma_is_logged_for_audio_only_runs_too(overrides, audio_buckets, synthetic_root, tmp_path) -> None:
    """t2a has no video: train/loss_sigma_* is the audio's (by the audio sigma); beside video audio has its own."""
    train(compose_cfg(*overrides, "trainer.max_steps=3", "validation_videos.enabled=false", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    steps = [m for m in read_metrics(tmp_path) if "train/loss" in m]
    for m in steps:
        buckets = [v for k, v in m.items() if k.startswith("train/loss_sigma_")]
        assert buckets and all(math.isfinite(v) for v in buckets)
        assert any(k.startswith("train/audio_loss_sigma_") for k in m) == audio_buckets
        if not audio_buckets:  # the audio is the whole loss: the buckets' mean, weighted by their samples, is it
            assert min(buckets) - 1e-5 <= m["train/loss"] <= max(buckets) + 1e-5


def test_saved_lora_b_carries_alpha_over_rank(synthetic_root, tmp_path) -> None:
    """ltx-core's fuser ignores alpha: the file's B must already be scaled so that B @ A is the trained delta."""
    parts = build_parts(compose_cfg("lora.rank=4", "lora.alpha=12", data_root=synthetic_root))
    model = parts.model.build(seed=0, device=torch.device("cpu"))
    parts.lora.apply(model)
    layer = model.transformer.transformer_blocks[0].attn1.to_q
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    saved = parts.lora.save(model.transformer, tmp_path / "lora.safetensors", {})
    with safe_open(str(saved), "pt") as f:
        b = f.get_tensor("diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight")
    torch.testing.assert_close(b, layer.lora_B["default"].weight.detach() * 3.0)
    x = torch.randn(5, 64)
    with torch.no_grad():
        delta = layer(x) - layer.base_layer(x)
    a = layer.lora_A["default"].weight.detach()
    torch.testing.assert_close(x @ (b @ a).T, delta, rtol=1e-4, atol=1e-5)


def test_same_seed_gives_the_same_lora_bit_for_bit(synthetic_root, tmp_path) -> None:
    for name in ("a", "b"):
        train(compose_cfg("strategy.with_audio=true", data_root=synthetic_root), tmp_path / name)
    with (
        safe_open(str(tmp_path / "a" / "lora.safetensors"), "pt") as fa,
        safe_open(str(tmp_path / "b" / "lora.safetensors"), "pt") as fb,
    ):
        assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())  # noqa: SIM118 (safe_open is no dict)


def test_full_finetune_writes_an_ltx_core_checkpoint(synthetic_root, tmp_path) -> None:
    train(compose_cfg("lora=none", "trainer.max_steps=2", data_root=synthetic_root), tmp_path)
    assert not (tmp_path / "lora.safetensors").exists()
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert all(k.startswith("model.diffusion_model.") for k in keys)
    assert "model.diffusion_model.transformer_blocks.0.attn1.to_q.weight" in keys
    assert json.loads(meta["config"])["transformer"]["num_layers"] == 2


def test_gradient_accumulation_and_bf16_train(synthetic_root, tmp_path) -> None:
    cfg = compose_cfg(
        "trainer.grad_accum=2", "trainer.mixed_precision=bf16", "trainer.max_steps=2", data_root=synthetic_root
    )
    train(cfg, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    samples = [m["train/samples_per_s"] for m in read_metrics(tmp_path) if "train/loss" in m]
    assert len(samples) == 2


def test_wandb_offline_run_is_written_and_finished_even_on_failure(synthetic_root, tmp_path, monkeypatch) -> None:
    import wandb

    monkeypatch.delenv("WANDB_MODE", raising=False)
    train(compose_cfg("logger=wandb", "trainer.max_steps=2", data_root=synthetic_root), tmp_path / "ok")
    assert list((tmp_path / "ok" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert wandb.run is None

    from ltxtune.strategies.text_to_video import TextToVideo

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(TextToVideo, "compute_loss", explode)
    with pytest.raises(RuntimeError, match="boom"):
        train(compose_cfg("logger=wandb", data_root=synthetic_root), tmp_path / "bad")
    assert wandb.run is None
    result = json.loads((tmp_path / "bad" / "result.json").read_text())
    assert result["status"] == "failed" and "boom" in result["error"] and result["objective"] == float("inf")


def test_loader_workers_read_the_same_batches_as_the_main_process(synthetic_root, tmp_path) -> None:
    for name, workers in (("main", 0), ("workers", 2)):
        cfg = compose_cfg(f"loader.num_workers={workers}", "loader.prefetch_factor=3", data_root=synthetic_root)
        train(cfg, tmp_path / name)
    a, b = (tmp_path / "main" / "lora.safetensors"), (tmp_path / "workers" / "lora.safetensors")
    with safe_open(str(a), "pt") as fa, safe_open(str(b), "pt") as fb:
        assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())  # noqa: SIM118


def test_8bit_adamw_without_cuda_or_bitsandbytes_says_what_to_do(synthetic_root, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine can run 8-bit AdamW; the message is for machines that cannot")
    from ltxtune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"optimizer='adamw8bit'.*(bitsandbytes|CUDA)"):
        train(compose_cfg("optimizer=adamw8bit", data_root=synthetic_root), tmp_path)
