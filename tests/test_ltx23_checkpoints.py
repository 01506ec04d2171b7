"""model=ltx2 on LTX-2.3-style checkpoints and on split releases: they load, train, and their LoRA fuses in
ltx-core's own loader to the trained model's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from conftest import compose_cfg, ltx_core_fused
from ltxtune.app.estimate import estimate
from ltxtune.data.batch import collate
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.errors import ConfigError, DataError
from ltxtune.model.tiny import write_split_checkpoint, write_tiny_checkpoint
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train

# The tiny LTX-2.3: video attention 64 wide, audio 32 wide; its stored text features have each stream's width.
LTX23 = ("model=ltx2", "model.caption_channels=64", "model.audio_caption_channels=32", "data.text_tokens=128")
LTX2 = ("model=ltx2", "model.caption_channels=32", "data.text_tokens=128")
TRAIN = ("model.dtype=float32", "strategy.with_audio=true", "trainer.max_steps=3", "validation_videos.enabled=false")


@pytest.fixture(scope="module")
def ltx23_file(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ltx23") / "ltx-2.3-tiny.safetensors", ltx23=True)


@pytest.fixture(scope="module")
def split23(tmp_path_factory) -> dict[str, Path]:
    return write_split_checkpoint(tmp_path_factory.mktemp("split23"), ltx23=True)


@pytest.fixture(scope="module")
def data23(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data23") / "synthetic"


def split_overrides(files: dict[str, Path]) -> tuple[str, ...]:
    """How a user points model=ltx2 at a split release."""
    return (
        f"model.checkpoint={files['transformer']}",
        f"model.connectors_checkpoint={files['connectors']}",
        f"model.vae_checkpoint={files['vae']}",
        f"model.audio_vae_checkpoint={files['audio_vae']}",
    )


def outputs(model, parts, batch) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = parts.strategy.prepare_training_inputs(
        batch.encoded(model.encode_text), UniformSampler(), torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        return model.transformer(video=inputs.video, audio=inputs.audio, perturbations=None)


def assert_lora_fuses_in_ltx_core(overrides: tuple[str, ...], transformer_file: Path, run_dir: Path, root: Path):
    """The trained model (the base with the trained adapters loaded back) and ltx-core's fused model agree."""
    lora_file = run_dir / "lora.safetensors"
    parts = build_parts(compose_cfg(*overrides, f"lora.init_from={lora_file}", data_root=root))
    trained = parts.model.build(0, torch.device("cpu"))
    base_video, _ = outputs(trained, parts, batch := first_batch(parts))
    parts.lora.apply(trained)
    fused = parts.model.build(0, torch.device("cpu"))
    fused.transformer = ltx_core_fused(transformer_file, lora_file)
    want_video, want_audio = outputs(trained, parts, batch)
    got_video, got_audio = outputs(fused, parts, batch)
    assert (want_video - base_video).abs().max() > 1e-3, "the LoRA changed nothing: the test would prove nothing"
    torch.testing.assert_close(got_video, want_video, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got_audio, want_audio, rtol=1e-4, atol=1e-4)


def first_batch(parts):
    train_set = parts.data.split(parts.strategy.data_needs(), "t2v").train
    return collate([train_set[i] for i in range(2)])


def test_ltx23_checkpoint_trains_a_lora_on_its_gates_that_ltx_core_fuses(ltx23_file, data23, tmp_path) -> None:
    targets = "lora.target_modules=[to_k,to_q,to_v,to_out.0,to_gate_logits]"
    overrides = (*LTX23, f"model.checkpoint={ltx23_file}", *TRAIN, targets)
    train(compose_cfg(*overrides, data_root=data23), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    with safe_open(str(tmp_path / "lora.safetensors"), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert "diffusion_model.transformer_blocks.0.attn1.to_gate_logits.lora_A.weight" in keys
    assert "diffusion_model.transformer_blocks.0.audio_attn2.to_gate_logits.lora_B.weight" in keys
    assert meta["base_model"] == "LTX-2.3"
    assert "# LoRA of LTX-2.3: " in (tmp_path / "README.md").read_text()  # the model card
    assert json.loads(meta["base_model_flags"]) == {
        "apply_gated_attention": True,
        "cross_attention_adaln": True,
        "caption_proj_before_connector": True,
    }
    assert_lora_fuses_in_ltx_core(overrides, ltx23_file, tmp_path, data23)


def test_split_ltx23_release_trains_and_its_lora_fuses_onto_the_transformer_file(split23, data23, tmp_path) -> None:
    overrides = (*LTX23, *split_overrides(split23), *TRAIN)
    cfg = compose_cfg(*overrides, data_root=data23)
    # The validation clips are decoded with the release's VAE files.
    assert cfg.validation_videos.decoder_checkpoint == str(split23["vae"])
    assert cfg.validation_videos.audio_decoder_checkpoint == str(split23["audio_vae"])
    train(cfg, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    assert_lora_fuses_in_ltx_core(overrides, split23["transformer"], tmp_path, data23)


def test_split_ltx2_release_loads_its_connectors_from_their_own_file(tmp_path) -> None:
    files = write_split_checkpoint(tmp_path / "ltx2-split")
    parts = build_parts(compose_cfg(*LTX2, *split_overrides(files), "model.dtype=float32"))
    model = parts.model.build(0, torch.device("cpu"))
    with safe_open(str(files["connectors"]), "pt") as f:
        want = f.get_tensor("model.diffusion_model.video_embeddings_connector.learnable_registers").float()
    assert torch.equal(model.encode_text.video_connector.learnable_registers, want)
    assert model.config["transformer"].get("caption_channels") == 32  # LTX-2: the projection is in the transformer
    # One file of the default layout: the connectors and VAEs default to the checkpoint itself.
    single = compose_cfg(*LTX2, f"model.checkpoint={files['transformer']}")
    transformer = str(files["transformer"])
    assert single.model.connectors_checkpoint == single.validation_videos.decoder_checkpoint == transformer


def test_split_parts_that_are_missing_or_wrong_are_named(split23) -> None:
    missing = "/no/connectors.safetensors"
    with pytest.raises(ConfigError, match=rf"^model.connectors_checkpoint='{missing}' .*existing"):
        build_parts(compose_cfg(*LTX23, *split_overrides(split23), f"model.connectors_checkpoint={missing}"))
    with pytest.raises(ConfigError, match=r"^model.vae_checkpoint='/no/vae.safetensors' "):
        build_parts(compose_cfg(*LTX23, *split_overrides(split23), "model.vae_checkpoint=/no/vae.safetensors"))
    # The transformer file given as the connectors' file: it holds none of their weights.
    wrong = (*LTX23, *split_overrides(split23), f"model.connectors_checkpoint={split23['transformer']}")
    parts = build_parts(compose_cfg(*wrong, "model.dtype=float32"))
    with pytest.raises(DataError, match=rf"^{split23['transformer']}: holds no text connector weights"):
        parts.model.input_needs()  # what the dry run and a run check before loading any weight


def test_ltx23_widths_are_named_by_the_dry_run(ltx23_file, tmp_path) -> None:
    """LTX-2.3 stores video and audio text features of different widths: a wrong width names both values."""
    base = ("model=ltx2", f"model.checkpoint={ltx23_file}", "model.dtype=float32", "data.text_tokens=128")
    cfg = compose_cfg(*base, "model.caption_channels=64", "strategy.with_audio=true", data_root=tmp_path / "same")
    with pytest.raises(ConfigError, match=r"^model.audio_caption_channels=64 is not allowed: 32, the text width .*"
                       r"model.caption_channels=64 model.audio_caption_channels=32"):  # fmt: skip
        estimate(cfg)
    # Video alone reads no audio text features: their width is not asked for.
    assert estimate(compose_cfg(*base, "model.caption_channels=64", data_root=tmp_path / "video")).text_tokens == 128
    cfg = compose_cfg(*base, "model.caption_channels=64", "model.audio_caption_channels=32", data_root=tmp_path / "ok")
    found = estimate(cfg)
    assert found.text_tokens == 128


def test_a_target_the_model_lacks_is_refused(tmp_path) -> None:
    """LTX-2 has no attention gates: a LoRA on them is refused, naming the key."""
    ltx2_file = write_tiny_checkpoint(tmp_path / "ltx2.safetensors")
    cfg = compose_cfg(*LTX2, f"model.checkpoint={ltx2_file}", "model.dtype=float32",
                      "lora.target_modules=[to_gate_logits]", data_root=tmp_path / "data")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^lora.target_modules=\['to_gate_logits'\]"):
        train(cfg, tmp_path / "run")
