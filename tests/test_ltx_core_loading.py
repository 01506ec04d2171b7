"""The files ltxtune writes load in ltx-core's own loader and give the trained model's output."""

from __future__ import annotations

import json

import pytest
import torch
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator

from conftest import compose_cfg, ltx_core_fused
from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.model.adapters import FullFinetune
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def write_base_checkpoint(parts, path, dtype=torch.bfloat16) -> None:
    """The tiny base model in the real checkpoint layout (prefixed keys, config in metadata), as bf16 like LTX-2."""
    model = parts.model.build(0, torch.device("cpu"))
    model.transformer.to(dtype)
    adapter = FullFinetune()
    adapter.apply(model)
    adapter.save(model.transformer, path, {})


def model_inputs(parts, data_root):
    train_set = parts.data.split(parts.strategy.data_needs(), "t2v").train
    batch = collate([train_set[i] for i in range(2)])
    return parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(3))


def outputs(transformer, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return transformer(video=inputs.video, audio=inputs.audio, perturbations=None)


@pytest.mark.parametrize(("rank", "alpha"), [(4, 4), (4, 12)])
def test_trained_lora_fused_by_ltx_core_matches_the_trained_model(rank, alpha, synthetic_root, tmp_path) -> None:
    overrides = (f"lora.rank={rank}", f"lora.alpha={alpha}", "strategy.with_audio=true", "trainer.max_steps=6")
    train(compose_cfg(*overrides, data_root=synthetic_root), tmp_path)
    lora_file = tmp_path / "lora.safetensors"

    # The trained model: the same seeded base with the trained adapters loaded back.
    parts = build_parts(compose_cfg(*overrides, f"lora.init_from={lora_file}", data_root=synthetic_root))
    trained = parts.model.build(0, torch.device("cpu"))
    parts.lora.apply(trained)
    assert any(float(p.detach().abs().max()) > 0 for n, p in trained.transformer.named_parameters() if "lora_B" in n)

    base_file = tmp_path / "base.safetensors"
    write_base_checkpoint(parts, base_file)
    # ltx-core fuses B @ A in float32 here and leaves untouched weights as stored (bf16, exact here): the whole
    # model in float32 compares without bf16 rounding of the activations.
    fused = ltx_core_fused(base_file, lora_file)

    inputs = model_inputs(parts, synthetic_root)
    want_video, want_audio = outputs(trained.transformer, inputs)
    got_video, got_audio = outputs(fused, inputs)
    base_video, _ = outputs(parts.model.build(0, torch.device("cpu")).transformer, inputs)
    assert (want_video - base_video).abs().max() > 1e-3, "the LoRA changed nothing: the test would prove nothing"
    torch.testing.assert_close(got_video, want_video, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_audio, want_audio, rtol=1e-4, atol=1e-4)


def test_full_finetune_checkpoint_loads_in_ltx_core(synthetic_root, tmp_path) -> None:
    train(compose_cfg("lora=none", "trainer.max_steps=3", data_root=synthetic_root), tmp_path)
    builder = SingleGPUModelBuilder(
        model_class_configurator=LTXModelConfigurator,
        model_path=str(tmp_path / "model.safetensors"),
        model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,
    )
    assert builder.model_config()["transformer"]["num_layers"] == 2
    loaded = builder.build(device=torch.device("cpu"))

    parts = build_parts(compose_cfg("lora=none", data_root=synthetic_root))
    untrained = parts.model.build(0, torch.device("cpu")).transformer
    inputs = model_inputs(parts, synthetic_root)
    got, _ = outputs(loaded, inputs)
    before, _ = outputs(untrained, inputs)
    assert (got - before).abs().max() > 1e-4  # the loaded weights are the trained ones, not the initial ones
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        meta = f.metadata()
        trained = {k.removeprefix("model.diffusion_model."): f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    untrained.load_state_dict(trained)
    torch.testing.assert_close(got, outputs(untrained, inputs)[0])
    assert json.loads(meta["config"]) == parts.model.config()
