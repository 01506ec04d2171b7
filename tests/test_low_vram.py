"""Low-VRAM options: an int8 base (torchao) trains a LoRA that loads onto the unquantized model in ltx-core's
loader; the low_vram preset composes and its dry run estimates less memory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import compose_cfg, ltx_core_fused
from ltxtune.app.estimate import estimate
from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.errors import ConfigError
from ltxtune.model.tiny import write_tiny_checkpoint
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train

LTX2 = ("model=ltx2", "model.caption_channels=32", "data.text_tokens=128")
NO_TORCHAO = importlib.util.find_spec("torchao") is None
needs_torchao = pytest.mark.skipif(NO_TORCHAO, reason="torchao is an optional extra: pip install -e '.[lowvram]'")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lowvram-data") / "synthetic"


def outputs(model, parts, batch) -> torch.Tensor:
    inputs = parts.strategy.prepare_training_inputs(
        batch.encoded(model.encode_text), UniformSampler(), torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        video, _ = model.transformer(video=inputs.video, audio=inputs.audio, perturbations=None)
    return video.float()


@needs_torchao
def test_int8_base_trains_a_lora_that_loads_onto_the_unquantized_model(checkpoint, data, tmp_path) -> None:
    int8 = (*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8", "trainer.mixed_precision=bf16")
    parts = build_parts(compose_cfg(*int8, data_root=data))
    model = parts.model.build(0, torch.device("cpu"))
    to_q = model.transformer.transformer_blocks[0].attn1.to_q.weight
    assert to_q.qdata.dtype == torch.int8  # torchao's int8 weight-only tensor: a byte per weight
    assert model.transformer.patchify_proj.weight.dtype == torch.bfloat16  # outside the blocks: as loaded

    train(compose_cfg(*int8, "trainer.max_steps=4", "validation_videos.enabled=false", data_root=data), tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["val/loss"] < float("inf")
    lora_file = tmp_path / "lora.safetensors"

    # ltx-core fuses the LoRA into the unquantized checkpoint; ltxtune's float32 base with the LoRA agrees.
    plain = ("model.dtype=float32", f"lora.init_from={lora_file}")
    parts = build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", *plain, data_root=data))
    ours = parts.model.build(0, torch.device("cpu"))
    train_set = parts.data.split(parts.strategy.data_needs(), "t2v").train
    batch = collate([train_set[i] for i in range(2)])
    base = outputs(ours, parts, batch)
    parts.lora.apply(ours)
    fused = parts.model.build(0, torch.device("cpu"))
    fused.transformer = ltx_core_fused(checkpoint, lora_file)
    want = outputs(ours, parts, batch)
    assert (want - base).abs().max() > 1e-3, "the LoRA changed nothing: the test would prove nothing"
    torch.testing.assert_close(outputs(fused, parts, batch), want, rtol=1e-4, atol=1e-4)


def test_quantization_choices_are_checked_before_loading(checkpoint) -> None:
    with pytest.raises(ConfigError, match=r"^model.quantization='int4' is not allowed: fp8_cast or int8 \(4-bit"):
        build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int4"))
    with pytest.raises(ConfigError, match=r"^model.quantization='nf4' is not allowed: one of fp8_cast, int8"):
        build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=nf4"))
    if NO_TORCHAO:  # int8 itself is refused first (test_int8_without_torchao_names_the_extra)
        return
    with pytest.raises(ConfigError, match=r"^model.dtype='float32' is not allowed: bfloat16 with quantization=int8"):
        build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8",
                                "model.dtype=float32"))  # fmt: skip


def test_int8_without_torchao_names_the_extra(checkpoint, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchao" else real(name, *a))
    with pytest.raises(
        ConfigError, match=r"^model.quantization='int8' is not allowed: .*pip install -e '.\[lowvram\]'"
    ):
        build_parts(compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8"))


@needs_torchao
def test_int8_base_refuses_a_full_finetune_and_several_processes(checkpoint, data, tmp_path, monkeypatch) -> None:
    cfg = compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8", "lora=none",
                      "trainer.mixed_precision=bf16", data_root=data)  # fmt: skip
    with pytest.raises(ConfigError, match=r"^model.quantization='int8' is not allowed: null with lora=none"):
        train(cfg, tmp_path)
    cfg = compose_cfg(*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8",
                      "trainer.mixed_precision=bf16", data_root=data)  # fmt: skip
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets: DDP cannot broadcast torchao's int8 weights
    with pytest.raises(ConfigError, match=r"^model.quantization='int8' is not allowed: fp8_cast or null with 2 proc"):
        train(cfg, tmp_path / "ddp")


@needs_torchao
def test_low_vram_preset_estimates_less_memory_than_the_plain_bf16_run(checkpoint, data) -> None:
    """The dry run builds no optimizer, so the preset's 8-bit AdamW (CUDA only) is estimated on a CPU too."""
    common = (f"model.checkpoint={checkpoint}", "model.caption_channels=32", "data.text_tokens=128")
    low = compose_cfg("experiment=low_vram", *common, data_root=data)
    assert (low.model.quantization, low.trainer.gradient_checkpointing) == ("int8", True)
    assert low.optimizer._target_.endswith("AdamW8bit")
    plain = compose_cfg("model=ltx2", *common, "trainer.mixed_precision=bf16", data_root=data)
    low_found, plain_found = estimate(low), estimate(plain)
    assert low_found.weights_gb < 0.75 * plain_found.weights_gb  # block linears: 1 byte instead of 2
    assert low_found.optimizer_gb == pytest.approx(plain_found.optimizer_gb * 10 / 16)  # 8-bit moments
    assert low_found.activations_gb < plain_found.activations_gb


@needs_torchao
def test_int8_run_resumes_to_the_same_lora(checkpoint, data, tmp_path) -> None:
    """Only the LoRA and optimizer are checkpointed; the int8 base is rebuilt from the file the same way."""
    from safetensors.torch import load_file

    int8 = (*LTX2, f"model.checkpoint={checkpoint}", "model.quantization=int8", "trainer.mixed_precision=bf16",
            "scheduler=constant", "validation_videos.enabled=false", "checkpoint.every=2")  # fmt: skip
    train(compose_cfg(*int8, "trainer.max_steps=4", data_root=data), tmp_path)
    whole = load_file(str(tmp_path / "lora.safetensors"))
    # Steps 3 and 4 again, from the step-2 checkpoint: the run continues in its directory.
    resume = f"checkpoint.resume={tmp_path / 'checkpoints' / 'step_000002'}"
    train(compose_cfg(*int8, "trainer.max_steps=4", resume, data_root=data), tmp_path / "elsewhere")
    again = load_file(str(tmp_path / "lora.safetensors"))
    assert not (tmp_path / "elsewhere" / "lora.safetensors").exists()
    assert whole.keys() == again.keys() and all(torch.equal(whole[k], again[k]) for k in whole)


@pytest.mark.parametrize(
    "quantization", ["fp8_cast", pytest.param("int8", marks=needs_torchao)], ids=["fp8_cast", "int8"]
)
def test_quantized_ltx23_base_trains_with_audio(quantization, tmp_path) -> None:
    """Both quantize LTX-2.3's block linears; its attention gates (heads-wide, tiny) follow each policy:
    torchao's int8 takes every block linear, ltx-core's fp8_cast map leaves the gates in bf16."""
    ltx23 = write_tiny_checkpoint(tmp_path / "ltx23.safetensors", ltx23=True)
    cfg = compose_cfg("model=ltx2", f"model.checkpoint={ltx23}", "model.caption_channels=64",
                      "model.audio_caption_channels=32", "data.text_tokens=128", f"model.quantization={quantization}",
                      "trainer.mixed_precision=bf16", "strategy.with_audio=true", "trainer.max_steps=2",
                      "validation_videos.enabled=false", data_root=tmp_path / "data")  # fmt: skip
    parts = build_parts(cfg)
    attn = parts.model.build(0, torch.device("cpu")).transformer.transformer_blocks[0].audio_attn2
    stored = {"int8": lambda w: w.qdata.dtype, "fp8_cast": lambda w: w.dtype}[quantization]
    want = {"int8": (torch.int8, torch.int8), "fp8_cast": (torch.float8_e4m3fn, torch.bfloat16)}[quantization]
    assert (stored(attn.to_q.weight), stored(attn.to_gate_logits.weight)) == want
    train(cfg, tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["val/loss"] < float("inf")
