"""model=ltx2: real-layout checkpoints through ltx-core's loader, their errors, dry runs and memory options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import ROOT, compose_cfg, run_snippet
from ltxtune.app.estimate import estimate
from ltxtune.errors import ConfigError, DataError
from ltxtune.model.tiny import write_tiny_checkpoint
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train

# The tiny checkpoint's text connectors use ltx-core's 128 learnable registers: text length must be a multiple.
LTX2 = ("model=ltx2", "model.caption_channels=32", "data.text_tokens=128")


@pytest.fixture(scope="module")
def ltx2_data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ltx2data") / "synthetic"


def test_real_layout_checkpoint_trains_a_lora(checkpoint, ltx2_data, tmp_path, monkeypatch) -> None:
    cfg = compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.dtype=float32", data_root=ltx2_data)
    train(cfg, tmp_path, {"model": "ltx2"})
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and (tmp_path / "lora.safetensors").is_file()
    # The card's snippet fuses the LoRA onto this very checkpoint with ltx-core, as written.
    card = (tmp_path / "README.md").read_text()
    assert f"the checkpoint `{checkpoint.resolve()}`" in card
    transformer = run_snippet(card, tmp_path, monkeypatch)
    base = load_file(str(checkpoint))["model.diffusion_model.transformer_blocks.0.attn1.to_q.weight"]
    assert not torch.equal(transformer.transformer_blocks[0].attn1.to_q.weight.detach(), base)


def test_bf16_base_trains_under_bf16_autocast_and_is_refused_without(checkpoint, ltx2_data, tmp_path) -> None:
    cfg = compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "trainer.mixed_precision=bf16", data_root=ltx2_data)
    train(cfg, tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "result.json").read_text())["status"] == "completed"
    with pytest.raises(ConfigError, match=r"model.dtype='bfloat16'.*mixed_precision=bf16"):
        train(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", data_root=ltx2_data), tmp_path / "no")


def test_text_connectors_are_loaded_and_frozen(checkpoint) -> None:
    parts = build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.dtype=float32"))
    model = parts.model.build(0, torch.device("cpu"))
    connectors = model.encode_text
    assert all(not p.requires_grad for p in connectors.parameters()) and not connectors.training
    stored = load_file(str(checkpoint))
    want = stored["model.diffusion_model.video_embeddings_connector.learnable_registers"].float()
    assert torch.equal(connectors.video_connector.learnable_registers, want)
    features = torch.randn(2, 128, 32)
    mask = torch.zeros(2, 128, dtype=torch.long)
    mask[:, :20] = 1
    out = connectors({"video_prompt_embeds": features, "audio_prompt_embeds": features, "prompt_attention_mask": mask})
    assert out["video_prompt_embeds"].shape == (2, 128, 32) and out["audio_prompt_embeds"].shape == (2, 128, 32)
    # Video-only features (no audio_prompt_embeds: a strategy without audio): the video connector alone, same output.
    video_only = connectors({"video_prompt_embeds": features, "prompt_attention_mask": mask})
    assert "audio_prompt_embeds" not in video_only
    assert torch.equal(video_only["video_prompt_embeds"], out["video_prompt_embeds"])


def test_missing_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model.checkpoint='/no/such.safetensors'.*existing"):
        build_parts(compose_cfg(*LTX2, "model.checkpoint=/no/such.safetensors"))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no_config", "missing_keys"])
def test_broken_checkpoints_name_the_file_and_the_problem(damage, checkpoint, tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    data = checkpoint.read_bytes()
    expected = {
        "garbage": "not a readable safetensors file",
        "truncated": "could not be loaded|not a readable",
        "no_config": "no model config",
        "missing_keys": "weights are missing",
    }[damage]
    if damage == "garbage":
        bad.write_bytes(b"this is not a checkpoint" * 10)
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) * 2 // 3])
    else:
        from safetensors import safe_open

        with safe_open(str(checkpoint), "pt") as f:
            meta = f.metadata() if damage == "missing_keys" else {}
        tensors = load_file(str(checkpoint))
        if damage == "missing_keys":
            tensors = {k: v for k, v in tensors.items() if ".1.attn1." not in k}
        save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(DataError, match=expected) as info:  # a header it cannot read: already by build_parts
        parts = build_parts(compose_cfg(*LTX2, f"model.checkpoint={bad}", "model.dtype=float32"))
        parts.model.build(0, torch.device("cpu"))
    assert str(bad) in str(info.value)


def test_dry_run_counts_parameters_and_tokens_without_training(synthetic_root, tmp_path) -> None:
    cfg = compose_cfg("strategy.with_audio=true", "lora.rank=4", data_root=synthetic_root)
    found = estimate(cfg)
    parts = build_parts(cfg)
    model = parts.model.build(0, torch.device("cpu"))
    base = sum(p.numel() for p in model.transformer.parameters())
    parts.lora.apply(model)
    assert found.trainable_params == sum(p.numel() for p in model.transformer.parameters() if p.requires_grad)
    assert found.total_params == base + found.trainable_params
    assert (found.video_tokens, found.audio_tokens, found.text_tokens) == (72, 18, 16)
    with_ckpt = estimate(compose_cfg("strategy.with_audio=true", "trainer.gradient_checkpointing=true",
                                     data_root=synthetic_root))  # fmt: skip
    assert with_ckpt.activations_gb < found.activations_gb

    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.dry_run=true", f"data.root={synthetic_root}",
         f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "trainable" in proc.stdout and "peak memory estimate" in proc.stdout
    assert not (tmp_path / "lora.safetensors").exists()


def test_gradient_checkpointing_gives_the_same_training(synthetic_root, tmp_path) -> None:
    losses = {}
    for flag in ("false", "true"):
        run_dir = tmp_path / flag
        train(compose_cfg(f"trainer.gradient_checkpointing={flag}", "trainer.max_steps=3", data_root=synthetic_root),
              run_dir)  # fmt: skip
        lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses[flag] = [m["train/loss"] for m in lines if "train/loss" in m]
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-5)


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones(synthetic_root, tmp_path) -> None:
    """torch.compile per transformer block (inductor, about a minute of compiling on a CPU)."""
    losses = {}
    for flag in ("false", "true"):
        run_dir = tmp_path / flag
        train(compose_cfg(f"trainer.compile={flag}", "trainer.max_steps=2", data_root=synthetic_root), run_dir)
        lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        losses[flag] = [m["train/loss"] for m in lines if "train/loss" in m]
    assert losses["true"] == pytest.approx(losses["false"], rel=1e-4)


def test_fp8_cast_base_stores_block_linears_in_fp8_and_trains(checkpoint, ltx2_data, tmp_path) -> None:
    """ltx-core's fp8_cast policy runs on a CPU too (plain casts); on GPU it halves the frozen base's memory."""
    fp8 = (*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=fp8_cast", "trainer.mixed_precision=bf16")
    parts = build_parts(compose_cfg(*fp8, data_root=ltx2_data))
    model = parts.model.build(0, torch.device("cpu"))
    assert model.transformer.transformer_blocks[0].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    train(compose_cfg(*fp8, data_root=ltx2_data), tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["val/loss"] < float("inf")
    with pytest.raises(ConfigError, match=r"model.dtype='float32'"):
        build_parts(compose_cfg(*fp8, "model.dtype=float32"))


# -- the dry run checks what the first step would hit ------------------------------------------------------


def test_dry_run_refuses_text_length_the_connectors_cannot_take(checkpoint, ltx2_data) -> None:
    """ltx-core's connectors tile 128 learnable registers over the text: 16 tokens would assert in step 1."""
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={checkpoint}", "model.caption_channels=32",
                      "model.dtype=float32", "data.text_tokens=16", data_root=ltx2_data.parent / "t16")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^data.text_tokens=16 is not allowed: a multiple of 128: .*registers"):
        estimate(cfg)
    with pytest.raises(ConfigError, match=r"^data.text_tokens=16"):
        train(cfg, ltx2_data.parent / "t16-run")  # the run refuses it before building the model, too


def test_dry_run_refuses_a_caption_width_the_checkpoint_does_not_take(checkpoint, ltx2_data) -> None:
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={checkpoint}", "model.caption_channels=48",
                      "model.dtype=float32", "data.text_tokens=128", data_root=ltx2_data)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^model.caption_channels=48 is not allowed: 32, the text width"):
        estimate(cfg)


def test_dry_run_refuses_text_features_of_another_width(checkpoint, ltx2_data, tmp_path) -> None:
    """Precomputed features 48 wide against a model that takes 32: named before any weight is read."""
    root = tmp_path / "wide"
    estimate(compose_cfg("data.text_tokens=128", "model.caption_channels=48", data_root=root))  # writes the data
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={checkpoint}", "model.caption_channels=32",
                      "model.dtype=float32", "data=precomputed", f"data.root={root}")  # fmt: skip
    with pytest.raises(DataError, match=r"48 wide.*model.caption_channels"):
        estimate(cfg)


def test_dry_run_refuses_precomputed_text_of_the_wrong_length(checkpoint, tmp_path) -> None:
    root = tmp_path / "t32"
    estimate(compose_cfg("data.text_tokens=32", data_root=root))  # writes a dataset with 32 text tokens
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={checkpoint}", "model.caption_channels=32",
                      "model.dtype=float32", "data=precomputed", f"data.root={root}")  # fmt: skip
    with pytest.raises(DataError, match=r"conditions: text features have 32 tokens; allowed: a multiple of 128"
                       r".*encoders.text.max_tokens=128"):  # fmt: skip
        estimate(cfg)


def test_dry_run_refuses_a_checkpoint_taking_other_latent_channels(ltx2_data, tmp_path) -> None:
    from safetensors import safe_open

    from ltxtune.model.base import CHECKPOINT_PREFIX

    other = write_tiny_checkpoint(tmp_path / "other.safetensors")
    with safe_open(str(other), "pt") as f:
        config = json.loads(f.metadata()["config"])
    config["transformer"]["in_channels"] = 64  # a transformer for 64-channel latents
    tensors = load_file(str(other))
    assert any(k.startswith(CHECKPOINT_PREFIX) for k in tensors)
    save_file(tensors, str(other), metadata={"config": json.dumps(config)})
    cfg = compose_cfg(*LTX2, f"model.checkpoint={other}", "model.dtype=float32", data_root=ltx2_data)
    with pytest.raises(ConfigError, match=r"^model.checkpoint=.*video stream takes the data's 128 latent channels"
                       r" \(it takes 64\)"):  # fmt: skip
        estimate(cfg)


def test_dry_run_divides_weights_and_trainable_state_over_fsdp_processes(synthetic_root, tmp_path) -> None:
    full = estimate(compose_cfg("lora=none", data_root=synthetic_root), 4)
    sharded = estimate(compose_cfg("lora=none", "trainer.distributed=fsdp", data_root=synthetic_root), 4)
    assert sharded.optimizer_gb == pytest.approx(full.optimizer_gb / 4)
    assert sharded.activations_gb == full.activations_gb  # every process runs its own micro-batch
    assert sharded.peak_gb < full.peak_gb

    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.dry_run=true", "trainer.distributed=fsdp", f"data.root={synthetic_root}",
         f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, "WORLD_SIZE": "8"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "per process (FSDP over 8 processes, WORLD_SIZE)" in proc.stdout
