"""LTX-2.5's text path on a tiny random Gemma 4 (ltx-core 1.2): the directory is what transformers 5 saves, ltx-core
loads it as its own trainer does, ``preprocess.py encoders=ltx2`` writes LTX-2.5's features with it, and a model
trained on the other Gemma's features refuses them in one line that says how to re-encode."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from ltxtune import ltx_core_api
from ltxtune.errors import DataError
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, builds_ltx25

_MISSING = (
    "LTX-2.5's Gemma 4 needs ltx-core 1.2 (installed: 1.0)"
    if not builds_ltx25()
    else "Gemma 4's processor needs torchvision (not installed)"
    if importlib.util.find_spec("torchvision") is None
    else ""
)
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"{_MISSING}; {INSTALL_LTX_CORE_12}")
TOKENS = 1024  # ltx-core pads every caption to 1,024 tokens


@pytest.fixture(scope="module")
def gemma4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ltxtune.model.tiny_gemma import write_tiny_gemma4

    return write_tiny_gemma4(tmp_path_factory.mktemp("gemma4") / "gemma-4-tiny")


@pytest.fixture(scope="module")
def ltx25(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ltxtune.model.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ltx25") / "ltx-2.5-tiny.safetensors", ltx25=True)


def token_count(gemma: Path, text: str) -> int:
    """The caption's tokens with the <bos> ltx-core puts in front (Gemma 4's tokenizer adds none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gemma), local_files_only=True)
    ids = tokenizer(text).input_ids
    assert tokenizer.bos_token_id not in ids
    return len(ids) + 1


def test_tiny_gemma4_is_a_gemma_4_release_in_small(gemma4: Path, ltx25: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoConfig

    files = {p.name for p in gemma4.iterdir()}
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "processor_config.json"} <= files
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= files
    assert sum(p.stat().st_size for p in gemma4.iterdir()) < 2**20
    keys = set()
    for shard in gemma4.glob("model-*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            keys |= set(f.keys())
    assert "model.language_model.embed_tokens.weight" in keys and "lm_head.weight" not in keys  # tied
    assert any(k.startswith("model.vision_embedder.") for k in keys)
    config = AutoConfig.from_pretrained(str(gemma4), local_files_only=True)
    assert config.model_type == "gemma4_unified" and config.text_config.hidden_size == 32
    # The Gemma the tiny LTX-2.5 checkpoint names is this one.
    with safe_open(str(ltx25), "pt") as f:
        wanted = json.loads(f.metadata()["gemma_source_checkpoint"])["gemma_version"]
    assert json.loads((gemma4 / "config.json").read_text())["gemma_version"] == wanted
    assert json.loads((gemma4 / "processor_config.json").read_text())["processor_class"] == "Gemma4UnifiedProcessor"


def test_gemma4_encodes_captions_for_ltx25_through_ltx_core(gemma4: Path, ltx25: Path) -> None:
    from ltxtune.data.preprocess.text import GemmaText

    encoder = GemmaText(str(ltx25), str(gemma4), device="cpu")
    assert encoder.describe()["gemma"] == "gemma4_unified"
    caption = "a dog runs in the park"
    features = encoder.encode(caption)
    # LTX-2.5 projects Gemma 4's layers to each stream's attention width: 64 (video) and 32 (audio) here.
    assert features.video.shape == (TOKENS, 64) and features.audio.shape == (TOKENS, 32)
    n = token_count(gemma4, caption)
    assert features.mask.tolist() == [0] * (TOKENS - n) + [1] * n  # left-padded, <bos> first
    assert features.video[: TOKENS - n].abs().sum() == 0 and features.video[-n:].abs().sum() > 0
    again, other = encoder.encode(caption), encoder.encode("a red car drives fast at night")
    assert torch.equal(again.video, features.video) and not torch.equal(other.video[-n:], features.video[-n:])


def without_gemma_version(gemma: Path, where: Path) -> Path:
    """Google's Gemma 4 as published: no ``gemma_version`` (LTX-2.5 was trained on LTX's own fine-tune)."""
    import shutil

    copy = shutil.copytree(gemma, where)
    config = json.loads((copy / "config.json").read_text())
    del config["gemma_version"]
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("case", ["another_gemma4", "vanilla_gemma4", "gemma4_for_ltx23"])
def test_a_gemma_other_than_the_checkpoints_is_refused_in_one_line(case, gemma4, ltx25, tmp_path) -> None:
    """ltx-core 1.2 checks the checkpoint's Gemma (``gemma_source_checkpoint``) against the directory's."""
    from ltxtune.data.preprocess.text import GemmaText
    from ltxtune.model.tiny import write_tiny_checkpoint
    from ltxtune.model.tiny_gemma import write_tiny_gemma4

    checkpoint, gemma = {
        "another_gemma4": (ltx25, lambda: write_tiny_gemma4(tmp_path / "g4", gemma_version="gemma-4-12b-it")),
        "vanilla_gemma4": (ltx25, lambda: without_gemma_version(gemma4, tmp_path / "vanilla")),
        "gemma4_for_ltx23": (write_tiny_checkpoint(tmp_path / "ltx23.safetensors", ltx23=True), lambda: gemma4),
    }[case]
    with pytest.raises(DataError) as err:
        GemmaText(str(checkpoint), str(gemma()), device="cpu")
    line = str(err.value)
    assert line.startswith(f"{checkpoint}: ") and "encoders.text_encoder_path: the Gemma this checkpoint" in line
    assert "\n" not in line


def split_text_side(ltx25: Path, gemma4: Path, where: Path) -> tuple[Path, Path]:
    """LTX-2.5's split release's text side, packed as ltx-core packs it: (the transformer file without the text
    projection, the text encoder file holding Gemma 4, its Hugging Face files and the projection)."""
    from ltx_core.text_encoders.gemma.gemma_assets import (
        build_text_encoder_tensors_from_gemma_root,
        save_text_encoder_safetensors,
    )
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ltxtune.model.tiny_gemma import TINY_GEMMA4_VERSION

    with safe_open(str(ltx25), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    projection = {k: tensors.pop(k) for k in list(tensors) if k.startswith("text_embedding_projection.")}
    where.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(where / "transformer.safetensors"), metadata=metadata)
    packed, packed_metadata = build_text_encoder_tensors_from_gemma_root(
        str(gemma4), projection, gemma_version=TINY_GEMMA4_VERSION
    )
    save_text_encoder_safetensors(where / "text_encoder.safetensors", packed, packed_metadata)
    return where / "transformer.safetensors", where / "text_encoder.safetensors"


def test_a_split_release_packed_text_encoder_encodes_as_its_gemma_directory(gemma4, ltx25, tmp_path) -> None:
    """encoders.checkpoint=<transformer file> encoders.text_encoder_path=<packed text encoder>: the same features
    as the single file with the Gemma 4 directory."""
    from ltxtune.data.preprocess.text import GemmaText

    transformer, packed = split_text_side(ltx25, gemma4, tmp_path / "split")
    with pytest.raises(DataError, match=rf"^{transformer}: no text feature extractor .* its packed text encoder"):
        GemmaText(str(transformer), str(gemma4), device="cpu")
    split = GemmaText(str(transformer), str(packed), device="cpu")
    assert split.describe()["gemma"] == "gemma4_unified"
    whole = GemmaText(str(ltx25), str(gemma4), device="cpu")
    caption = "a small bird flies over the river"
    got, want = split.encode(caption), whole.encode(caption)
    assert torch.equal(got.video, want.video) and torch.equal(got.audio, want.audio)
    assert torch.equal(got.mask, want.mask) and got.video.abs().sum() > 0


def test_a_processor_that_does_not_import_names_the_install_command(gemma4, monkeypatch) -> None:
    """Gemma 4's processor imports torchvision, which ltx-core 1.2 does not install: refused before loading."""

    class WithoutTorchvision(types.ModuleType):
        def __getattr__(self, name: str):
            try:
                raise ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
            except ModuleNotFoundError as missing:
                raise ModuleNotFoundError(f"Could not import module '{name}'") from missing

    monkeypatch.setitem(sys.modules, "transformers", WithoutTorchvision("transformers"))
    with pytest.raises(DataError) as err:
        ltx_core_api.check_gemma_processor(str(gemma4))
    assert str(err.value) == (
        f"{gemma4}: its processor (Gemma4UnifiedProcessor, processor_config.json) does not import (No module named"
        f" 'torchvision'); install what ltx-core 1.2 loads Gemma 4 with: {INSTALL_LTX_CORE_12}"
    )


@pytest.mark.slow
def test_preprocess_with_gemma4_trains_ltx25_and_ltx23_refuses_its_features(gemma4, ltx25, tmp_path) -> None:
    import os
    import subprocess

    from conftest import ROOT
    from ltxtune.model.tiny import write_tiny_checkpoint
    from test_gemma import run, write_vae_encoders

    vae = write_vae_encoders(tmp_path / "vae.safetensors")
    out = tmp_path / "data"
    pre = run(
        [
            "preprocess.py",
            "encoders=ltx2",
            f"encoders.checkpoint={ltx25}",
            f"encoders.text_encoder_path={gemma4}",
            f"encoders.video.checkpoint={vae}",
            f"encoders.audio.checkpoint={vae}",
            "encoders.video.dtype=float32",
            f"output={out}",
            f"demo.dir={tmp_path / 'demo'}",
            "demo.num_clips=3",
            "device=cpu",
        ],
        dict(os.environ),
    )
    assert f"loading Gemma 4 from {gemma4} (2 files, 0.0 GiB) onto cpu\n" in pre.stdout, pre.stdout
    assert "preprocessed 3 clips" in pre.stdout
    record = json.loads((out / "preprocess.json").read_text())["encoders"]["text"]
    assert record["gemma"] == "gemma4_unified" and record["checkpoint"] == str(ltx25)
    for row in (tmp_path / "demo" / "dataset.csv").read_text().splitlines()[1:]:
        name, caption = row.split(",", 1)
        stored = torch.load(out / "conditions" / Path(name).with_suffix(".pt"), weights_only=True)
        assert stored["video_prompt_embeds"].shape == (TOKENS, 64) and stored["audio_prompt_embeds"].shape[1] == 32
        assert int(stored["prompt_attention_mask"].sum()) == token_count(gemma4, caption.strip('"'))

    def train(checkpoint: Path, run_dir: Path) -> subprocess.CompletedProcess:
        args = [
            "train.py", "model=ltx2", f"model.checkpoint={checkpoint}", "model.caption_channels=64",
            "model.audio_caption_channels=32", "model.dtype=float32", "data=precomputed", f"data.root={out}",
            "data.val_samples=1", "trainer.max_steps=2", "trainer.batch_size=1", "logger=none",
            "validation.sigmas=[0.5]", "validation_videos.enabled=false", f"hydra.run.dir={run_dir}",
        ]  # fmt: skip
        return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)

    trained = train(ltx25, tmp_path / "run25")
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    assert json.loads((tmp_path / "run25" / "result.json").read_text())["status"] == "completed"
    # LTX-2.3 reads Gemma 3's features, as wide as these: refused before training, with the command to re-encode.
    ltx23 = write_tiny_checkpoint(tmp_path / "ltx23.safetensors", ltx23=True)
    refused = train(ltx23, tmp_path / "run23")
    assert refused.returncode != 0 and not (tmp_path / "run23" / "lora.safetensors").exists()
    lines = [line for line in refused.stderr.splitlines() if "re-encode" in line]
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "text features from gemma4_unified (preprocess.json)" in lines[0]
    assert f"python preprocess.py encoders=ltx2 encoders.checkpoint={ltx23} " in lines[0]
