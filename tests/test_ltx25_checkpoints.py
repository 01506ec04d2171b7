"""model=ltx2 on LTX-2.5 checkpoints (ltx-core 1.2): they load, train a LoRA or the whole transformer, and what is
saved loads in ltx-core 1.2's own loader onto the LTX-2.5 model. With ltx-core 1.0 they are refused in one line
that names the ltx-core they need; a dataset encoded by another Gemma than the model's is refused too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import compose_cfg
from ltxtune import ltx_core_api
from ltxtune.app.estimate import estimate
from ltxtune.errors import DataError
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, LTX25_TRANSFORMER_FLAGS, builds_ltx25
from ltxtune.model.tiny import write_split_checkpoint, write_tiny_checkpoint
from ltxtune.training.run import train
from test_ltx23_checkpoints import LTX23, TRAIN, assert_lora_fuses_in_ltx_core, split_overrides

needs_ltx_core_12 = pytest.mark.skipif(
    not builds_ltx25(), reason=f"LTX-2.5 needs ltx-core 1.2 (installed: 1.0); {INSTALL_LTX_CORE_12}"
)
# What LTX-2.5 has to adapt: the attention projections and gates, and its feed-forward layers (without bias).
FEED_FORWARD = "ff.net.0.proj,ff.net.2,audio_ff.net.0.proj,audio_ff.net.2"
TARGETS = f"lora.target_modules=[to_k,to_q,to_v,to_out.0,to_gate_logits,{FEED_FORWARD}]"


@pytest.fixture(scope="module")
def ltx25_file(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ltx25") / "ltx-2.5-tiny.safetensors", ltx25=True)


@pytest.fixture(scope="module")
def data25(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data25") / "synthetic"


def metadata_of(path: Path) -> tuple[dict[str, str], list[str]]:
    with safe_open(str(path), "pt") as f:
        return f.metadata(), list(f.keys())


@needs_ltx_core_12
def test_tiny_ltx25_checkpoint_is_in_the_real_layout(ltx25_file) -> None:
    """What ltx-core 1.2 writes and reads: the 2.5 flags and Gemma 4 source in the metadata, no feed-forward bias,
    the keyframe embedding and the duration head beside the transformer."""
    meta, keys = metadata_of(ltx25_file)
    config = json.loads(meta["config"])["transformer"]
    assert {k: config[k] for k in LTX25_TRANSFORMER_FLAGS} == LTX25_TRANSFORMER_FLAGS
    assert json.loads(meta["gemma_source_checkpoint"])["gemma_version"]
    assert meta["model_version"].startswith("2.5")
    assert "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.weight" in keys
    assert "model.diffusion_model.transformer_blocks.0.ff.net.0.proj.bias" not in keys
    assert "model.diffusion_model.keyframes_abs_pos_embedding" in keys
    assert any(k.startswith("duration_head.") for k in keys)
    assert not any(".prompt_adaln_single." in k for k in keys)  # the prompt's modulation is timestep-free


@needs_ltx_core_12
def test_ltx25_checkpoint_trains_a_lora_on_its_feed_forward_that_ltx_core_fuses(ltx25_file, data25, tmp_path) -> None:
    overrides = (*LTX23, f"model.checkpoint={ltx25_file}", *TRAIN, TARGETS)
    train(compose_cfg(*overrides, data_root=data25), tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    meta, keys = metadata_of(tmp_path / "lora.safetensors")
    assert "diffusion_model.transformer_blocks.0.ff.net.0.proj.lora_A.weight" in keys
    assert "diffusion_model.transformer_blocks.1.audio_ff.net.2.lora_B.weight" in keys
    assert "diffusion_model.transformer_blocks.0.attn2.to_gate_logits.lora_A.weight" in keys
    assert meta["base_model"] == "LTX-2.5"
    flags = json.loads(meta["base_model_flags"])
    assert flags["ff_bias"] is False and flags["use_prompt_adaln_single"] is False
    assert "# LoRA of LTX-2.5: " in (tmp_path / "README.md").read_text()  # the model card
    assert_lora_fuses_in_ltx_core(overrides, ltx25_file, tmp_path, data25)


@needs_ltx_core_12
def test_split_ltx25_release_trains_and_its_lora_fuses_onto_the_transformer_file(tmp_path) -> None:
    files = write_split_checkpoint(tmp_path / "split25", ltx25=True)
    assert files["connectors"] == files["transformer"]  # LTX-2.5 keeps the text connectors with the blocks
    overrides = (*LTX23, *split_overrides(files), *TRAIN)
    data = tmp_path / "data"
    train(compose_cfg(*overrides, data_root=data), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "completed"
    assert_lora_fuses_in_ltx_core(overrides, files["transformer"], tmp_path / "run", data)


@needs_ltx_core_12
def test_ltx25_full_fine_tune_loads_in_ltx_core_as_the_trained_model(ltx25_file, data25, tmp_path) -> None:
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator

    overrides = (*LTX23, f"model.checkpoint={ltx25_file}", *TRAIN, "lora=none")
    train(compose_cfg(*overrides, data_root=data25), tmp_path)
    saved = tmp_path / "model.safetensors"
    loaded = SingleGPUModelBuilder(
        model_class_configurator=LTXModelConfigurator, model_path=str(saved), model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP
    ).build(device=torch.device("cpu"), dtype=torch.float32)
    assert loaded.transformer_blocks[0].ff.net[0].proj.bias is None  # built as LTX-2.5
    key = "model.diffusion_model.transformer_blocks.0.ff.net.2.weight"
    with safe_open(str(saved), "pt") as f, safe_open(str(ltx25_file), "pt") as b:
        trained, base = f.get_tensor(key).float(), b.get_tensor(key).float()
    torch.testing.assert_close(loaded.transformer_blocks[0].ff.net[2].weight, trained)
    assert (trained - base).abs().max() > 0  # it did train
    assert "# full fine-tune of LTX-2.5: " in (tmp_path / "README.md").read_text()


def ltx25_made_by_hand(tmp_path: Path) -> Path:
    """An LTX-2.5 checkpoint's header without ltx-core 1.2: an LTX-2.3 file with LTX-2.5's metadata."""
    source = write_tiny_checkpoint(tmp_path / "ltx23.safetensors", ltx23=True)
    with safe_open(str(source), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if not k.endswith("ff.net.0.proj.bias")}  # noqa: SIM118
        config = json.loads(f.metadata()["config"])
    config["transformer"].update(LTX25_TRANSFORMER_FLAGS)
    path = tmp_path / "ltx-2.5.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config), "model_version": "2.5.0"})
    return path


def test_ltx25_checkpoint_with_ltx_core_10_names_the_ltx_core_it_needs(tmp_path, monkeypatch) -> None:
    path = ltx25_made_by_hand(tmp_path)
    monkeypatch.setattr(ltx_core_api, "ltx_core_version", lambda: (1, 0, 0))  # what the index installs
    cfg = compose_cfg(*LTX23, f"model.checkpoint={path}", "model.dtype=float32", data_root=tmp_path / "data")
    with pytest.raises(DataError) as error:
        estimate(cfg)  # the dry run: before any weight is read
    line = str(error.value)
    assert line.startswith(f"{path}: an LTX-2.5 checkpoint (ff_bias=False")
    assert "needs ltx-core 1.2 (installed: 1.0.0); install it: pip install " in line
    assert "\n" not in line


@needs_ltx_core_12
def test_gemma_3_features_with_an_ltx25_model_say_to_re_encode(ltx25_file, tmp_path) -> None:
    """LTX-2.3's Gemma 3 features are as wide as LTX-2.5's: only the dataset's record tells them apart."""
    data = tmp_path / "data"
    cfg = compose_cfg(*LTX23, f"model.checkpoint={ltx25_file}", "model.dtype=float32", data_root=data)
    estimate(cfg)  # synthetic data with no record of its text encoder: nothing to compare
    record = {"encoders": {"text": {"class": "GemmaText", "checkpoint": "ltx-2.3.safetensors", "gemma_root": "g3"}}}
    (data / "preprocess.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"text features from gemma3 .*\(LTX-2.5\) reads gemma4's: re-encode"):
        estimate(cfg)
    record["encoders"]["text"]["gemma"] = "gemma4_unified"
    (data / "preprocess.json").write_text(json.dumps(record))
    assert estimate(cfg).text_tokens == 128


@needs_ltx_core_12
@pytest.mark.parametrize("strategy", ["video_to_video", "inpainting", "flexible"])
def test_ltx25_trains_with_each_strategy(ltx25_file, strategy, tmp_path) -> None:
    """The strategies' conditions (reference clips, masks, first frames) train LTX-2.5 as they train LTX-2.3."""
    overrides = (*LTX23, f"model.checkpoint={ltx25_file}", "model.dtype=float32", f"strategy={strategy}",
                 "trainer.max_steps=2", "validation_videos.enabled=false")  # fmt: skip
    train(compose_cfg(*overrides, data_root=tmp_path / "data"), tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed", result
    assert (tmp_path / "run" / "lora.safetensors").is_file()
