"""encoders=ltx2's text path on a tiny random Gemma 3: ltx-core's own Gemma loading and ltxtune's ``GemmaText``,
in preprocessing, in training's validation prompts, and the one-line refusals of what does not fit.

ltx-core 1.0.0 builds Gemma 3 12B's configuration whatever the directory holds: these tests substitute the tiny
Gemma's at the one place ltx-core reads it (``gemma_config_from``, ``ltxtune/model/tiny_gemma.py``); the
subprocesses get it through a ``sitecustomize`` module. Everything else runs as users run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from conftest import CONF, ROOT, compose_cfg
from ltxtune.data.preprocess.text import GemmaText
from ltxtune.errors import ConfigError, DataError
from ltxtune.ltx_core_api import builds_ltx25, gemma_kinds
from ltxtune.model.tiny import TinyLTX2, write_split_checkpoint, write_tiny_checkpoint
from ltxtune.model.tiny_gemma import TINY_GEMMA_LAYERS, gemma_config_from, write_tiny_gemma

TOKENS = 1024  # ltx-core's tokenizer pads every caption to 1,024 tokens


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gemma(tmp_path_factory.mktemp("gemma") / "gemma-3-tiny")


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vae_encoders(tmp_path_factory.mktemp("vae") / "vae.safetensors")


@pytest.fixture()
def tiny_gemma_config(gemma: Path) -> Iterator[None]:
    """ltx-core builds the tiny Gemma's configuration in this process (1.0 hard-wires the 12B one)."""
    with gemma_config_from(gemma):
        yield


def on_tiny_ltx2(checkpoint: Path) -> list[str]:
    """The overrides of a run on the tiny LTX-2 checkpoint with features of the tiny Gemma (32 wide, 128 tokens)."""
    return [
        "model=ltx2",
        f"model.checkpoint={checkpoint}",
        "model.caption_channels=32",
        "model.dtype=float32",
        "data.text_tokens=128",
    ]


def token_count(gemma: Path, text: str) -> int:
    """The caption's tokens as Gemma's tokenizer counts them (with the leading <bos>): its ``tokenizer.json``,
    which ltx-core reads as it is (transformers 5's ``GemmaTokenizer`` class rebuilds a BPE model from it)."""
    from tokenizers import Tokenizer

    return len(Tokenizer.from_file(str(gemma / "tokenizer.json")).encode(text).ids)


def test_tiny_gemma_is_a_gemma_3_release_in_small(gemma: Path) -> None:
    files = {p.name for p in gemma.iterdir()}
    assert {"config.json", "tokenizer.model", "tokenizer.json", "preprocessor_config.json"} <= files
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= files
    assert sum(p.stat().st_size for p in gemma.iterdir()) < 2**20
    from safetensors import safe_open

    with safe_open(str(gemma / "model-00001-of-00002.safetensors"), "pt") as f:
        assert "language_model.model.embed_tokens.weight" in set(f.keys())
    config = json.loads((gemma / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == TINY_GEMMA_LAYERS
    # tokenizer.model is a real SentencePiece model: transformers' own converter reads the same tokenizer from it.
    from transformers import AutoTokenizer
    from transformers.convert_slow_tokenizer import GemmaConverter

    fast = AutoTokenizer.from_pretrained(str(gemma), local_files_only=True)
    fast.vocab_file = str(gemma / "tokenizer.model")
    converted = GemmaConverter(fast).converted()
    text = "a dog runs in the park, Zebra 42"
    ids = converted.encode(text).ids
    # What ltx-core reads (tokenizer.json) is that tokenizer, with Gemma's leading <bos>.
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(gemma / "tokenizer.json")).encode(text).ids == [fast.bos_token_id, *ids]


@pytest.mark.parametrize("ltx23", [False, True], ids=["ltx2", "ltx2.3"])
def test_gemma_text_encodes_captions_through_ltx_core(ltx23, gemma, tiny_gemma_config, tmp_path) -> None:
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors", ltx23=ltx23)
    encoder = GemmaText(str(checkpoint), str(gemma), device="cpu")
    caption = "a dog runs in the park"
    features = encoder.encode(caption)
    # LTX-2: one width, Gemma's (= the connectors'); LTX-2.3: each stream its attention's width.
    video_width, audio_width = (64, 32) if ltx23 else (32, 32)
    assert features.video.shape == (TOKENS, video_width) and features.audio.shape == (TOKENS, audio_width)
    assert features.video.dtype == torch.bfloat16
    # Left-padded: the caption's tokens are the last ones; padding carries no features.
    n = token_count(gemma, caption)
    assert features.mask.tolist() == [0] * (TOKENS - n) + [1] * n
    assert features.video[: TOKENS - n].abs().sum() == 0 and features.video[-n:].abs().sum() > 0
    again, other = encoder.encode(caption), encoder.encode("a red car drives fast at night")
    assert torch.equal(again.video, features.video) and not torch.equal(other.video[-n:], features.video[-n:])


def write_vae_encoders(path: Path) -> Path:
    """The tiny video and audio VAE encoders (conf/encoders/tiny.yaml) in LTX-2's checkpoint layout
    (``vae.encoder.*``, ``audio_vae.encoder.*``, config in the metadata): the VAE file of a split release."""
    from hydra.utils import instantiate

    node = OmegaConf.load(CONF / "encoders" / "tiny.yaml")
    node.video.device = node.audio.device = "cpu"
    tensors, config = {}, {}
    for prefix, name in (("vae", "video"), ("audio_vae", "audio")):
        model = instantiate(node[name]).model
        config[prefix] = OmegaConf.to_container(node[name].config)
        for key, value in model.state_dict().items():
            stats = key.startswith("per_channel_statistics.")
            tensors[f"{prefix}.{key}" if stats else f"{prefix}.encoder.{key}"] = value.contiguous()
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    return path


def with_tiny_gemma_config(gemma: Path, where: Path) -> dict[str, str]:
    """The environment of a subprocess whose ltx-core builds the tiny Gemma's configuration."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(
        "# ltx-core 1.0.0 hard-wires Gemma 3 12B's configuration: build the tiny Gemma's in this process\n"
        "from ltxtune.model.tiny_gemma import substitute_gemma_config\n"
        f"substitute_gemma_config({str(gemma)!r})\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(where), os.environ.get("PYTHONPATH")]))}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_preprocess_with_gemma_then_train_on_it_with_gemma_prompts(gemma, checkpoint, vae, tmp_path) -> None:
    env = with_tiny_gemma_config(gemma, tmp_path / "site")
    out = tmp_path / "data"
    pre = run(
        [
            "preprocess.py",
            "encoders=ltx2",
            f"encoders.checkpoint={checkpoint}",
            f"encoders.text_encoder_path={gemma}",
            f"encoders.video.checkpoint={vae}",
            f"encoders.audio.checkpoint={vae}",
            "encoders.video.dtype=float32",
            f"output={out}",
            f"demo.dir={tmp_path / 'demo'}",
            "demo.num_clips=4",
            "device=cpu",
        ],
        env,
    )
    # What loads from where, before it loads.
    for line in (
        f"loading Gemma 3 from {gemma} (2 files, 0.0 GiB) onto cpu\n",
        f"loading the text feature extractor from {checkpoint}\n",
        f"loading the video VAE encoder from {vae} onto cpu\n",
        f"loading the audio VAE encoder from {vae} onto cpu\n",
        "preprocessed 4 clips",
    ):
        assert line in pre.stdout, pre.stdout
    captions = json.loads((out / "preprocess.json").read_text())["encoders"]["text"]
    # Which Gemma made the features is recorded: an LTX-2.5 model refuses Gemma 3 features by it.
    expected = {"class": "GemmaText", "checkpoint": str(checkpoint), "gemma_root": str(gemma), "gemma": "gemma3"}
    assert captions == expected
    demo = (tmp_path / "demo" / "dataset.csv").read_text().splitlines()[1:]
    for row in demo:
        name, caption = row.split(",", 1)
        stored = torch.load(out / "conditions" / Path(name).with_suffix(".pt"), weights_only=True)
        assert stored["video_prompt_embeds"].shape == (TOKENS, 32) == stored["audio_prompt_embeds"].shape
        assert int(stored["prompt_attention_mask"].sum()) == token_count(gemma, caption.strip('"'))
    empty = torch.load(out / "conditions_empty.pt", weights_only=True)  # the empty prompt, for caption dropout
    assert empty["video_prompt_embeds"].shape == (TOKENS, 32) == empty["audio_prompt_embeds"].shape
    assert int(empty["prompt_attention_mask"].sum()) == token_count(gemma, "")

    # Training reads them through the checkpoint's connectors (half the captions dropped for the empty prompt's
    # features); the prompts and the negative prompt are Gemma's.
    run_dir = tmp_path / "run"
    negative = "blurry, still"
    proc = run(
        [
            "train.py",
            "model=ltx2",
            f"model.checkpoint={checkpoint}",
            "model.caption_channels=32",
            "model.dtype=float32",
            "data=precomputed",
            f"data.root={out}",
            "data.val_samples=1",
            "data.caption_dropout=0.5",
            "trainer.max_steps=2",
            "trainer.batch_size=1",
            "logger=none",
            "validation.sigmas=[0.5]",
            "validation_videos.num_steps=2",
            "validation_videos.num_prompts=0",
            "validation_videos.prompts=['a red disc moving left']",
            f"validation_videos.negative_prompt='{negative}'",
            "encoders@validation_videos.encoders=ltx2",
            f"validation_videos.encoders.checkpoint={checkpoint}",
            f"validation_videos.encoders.text_encoder_path={gemma}",
            f"validation_videos.encoders.video.checkpoint={vae}",
            f"validation_videos.encoders.audio.checkpoint={vae}",
            f"hydra.run.dir={run_dir}",
        ],
        env,
    )
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    # One load of Gemma serves the prompts and the negative prompt.
    assert proc.stdout.count(f"loading Gemma 3 from {gemma}") == 1, proc.stdout
    prompt = torch.load(run_dir / "validation_prompts.pt", weights_only=True)["sources"][0]
    stored_negative = torch.load(run_dir / "validation_negative_prompt.pt", weights_only=True)["features"]
    with gemma_config_from(gemma):
        encoder = GemmaText(str(checkpoint), str(gemma), device="cpu")
    want = encoder.encode("a red disc moving left").to_file()
    assert torch.equal(prompt["text"]["video_embeds"][0], want["video_prompt_embeds"])
    want_negative = encoder.encode(negative).to_file()
    assert torch.equal(stored_negative["video_prompt_embeds"][0], want_negative["video_prompt_embeds"])
    assert int(stored_negative["prompt_attention_mask"].sum()) == token_count(gemma, negative)
    assert list((run_dir / "samples").rglob("prompt0.mp4"))


def test_gemma_is_freed_before_the_transformer_is_built(
    gemma, checkpoint, vae, tiny_gemma_config, tmp_path, monkeypatch
) -> None:
    """With validation prompts and a negative prompt, Gemma is loaded, used and collected before the transformer
    is built: its memory is not held beside the transformer's."""
    from ltxtune.model.ltx2 import LTX2Checkpoint
    from ltxtune.training.run import train

    loaded: list[weakref.ref] = []
    seen_at_build: list[tuple[int, int]] = []
    init, build = GemmaText.__init__, LTX2Checkpoint.build

    def remembering_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        loaded.append(weakref.ref(self.encoder))

    def noting_build(self, *args, **kwargs):
        seen_at_build.append((len(loaded), sum(ref() is not None for ref in loaded)))
        return build(self, *args, **kwargs)

    monkeypatch.setattr(GemmaText, "__init__", remembering_init)
    monkeypatch.setattr(LTX2Checkpoint, "build", noting_build)
    cfg = compose_cfg(
        *on_tiny_ltx2(checkpoint),
        "trainer.max_steps=1",
        "validation_videos.num_steps=1",
        "validation_videos.num_prompts=0",
        "validation_videos.prompts=['a dog']",
        "validation_videos.negative_prompt=blurry",
        "encoders@validation_videos.encoders=ltx2",
        f"validation_videos.encoders.checkpoint={checkpoint}",
        f"validation_videos.encoders.text_encoder_path={gemma}",
        f"validation_videos.encoders.video.checkpoint={vae}",
        f"validation_videos.encoders.audio.checkpoint={vae}",
        "validation_videos.encoders.video.dtype=float32",
        data_root=tmp_path / "data",
    )
    train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "completed"
    assert seen_at_build == [(1, 0)]  # Gemma loaded once, and gone, when the transformer was built


def test_a_transformers_the_installed_ltx_core_cannot_load_gemma_with_is_refused_in_one_line(
    gemma, checkpoint, monkeypatch
) -> None:
    """ltx-core 1.0 loads Gemma 3 with transformers 4 only; 1.2 with transformers 5 (5.8 to 5.14) only."""
    import importlib.metadata

    if builds_ltx25():
        other, expected = (
            "4.57.1",
            r"transformers 4.57.1 is installed: ltx-core 1.2.\d+ loads Gemma with transformers>=5.8",
        )
    else:
        other, expected = (
            "5.25.0",
            r"transformers 5.25.0 is installed: ltx-core 1.0.0 loads Gemma 3 with transformers 4",
        )
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: other if d == "transformers" else real(d))
    with pytest.raises(DataError, match=expected) as err:
        GemmaText(str(checkpoint), str(gemma), device="cpu")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(
    builds_ltx25(),
    reason="ltx-core 1.2 builds the Gemma that the directory's config.json describes (GemmaTextEncoderConfigurator"
    " reads it with the weights): no hard-wired size is there to disagree with",
)
def test_a_gemma_of_another_size_is_refused_before_loading(gemma, checkpoint, tmp_path) -> None:
    # Without the substitution ltx-core builds the 12B: the tiny directory's config.json says otherwise.
    with pytest.raises(ConfigError, match=r"text_encoder_path=.*hidden size 3840 and 48 layers.*this one has 32 and 2"):
        GemmaText(str(checkpoint), str(gemma), device="cpu")


def test_a_checkpoint_without_the_feature_extractor_is_named(gemma, tiny_gemma_config, tmp_path) -> None:
    transformer_only = write_split_checkpoint(tmp_path / "split")["transformer"]
    with pytest.raises(DataError, match=rf"{transformer_only}: no text feature extractor"):
        GemmaText(str(transformer_only), str(gemma), device="cpu")


def test_a_feature_extractor_for_another_gemma_is_named_in_one_line(gemma, tiny_gemma_config, tmp_path) -> None:
    other = write_tiny_checkpoint(tmp_path / "wide.safetensors", TinyLTX2(caption_channels=64))  # for a 64-wide Gemma
    with pytest.raises(DataError, match=rf"{other}: its text feature extractor does not fit .*size mismatch") as err:
        GemmaText(str(other), str(gemma), device="cpu")
    assert "\n" not in str(err.value)


def test_a_gemma_directory_without_its_tokenizer_ends_a_run_in_one_line(gemma, checkpoint, vae, tmp_path) -> None:
    import shutil

    from ltxtune.app.failures import user_error
    from ltxtune.training.run import train

    broken = shutil.copytree(gemma, tmp_path / "gemma")
    # The tokenizer file the installed ltx-core reads: 1.0 SentencePiece's, 1.2 the tokenizers library's.
    tokenizer = "tokenizer.json" if builds_ltx25() else "tokenizer.model"
    (broken / tokenizer).unlink()
    with pytest.raises(ConfigError, match=rf"text_encoder_path=.*it has no {tokenizer}"):
        GemmaText(str(checkpoint), str(broken), device="cpu")
    # In a training run the validation prompts' encoders are built by Hydra, which wraps the refusal.
    cfg = compose_cfg(
        *on_tiny_ltx2(checkpoint),
        "validation_videos.prompts=['a dog']",
        "encoders@validation_videos.encoders=ltx2",
        f"validation_videos.encoders.checkpoint={checkpoint}",
        f"validation_videos.encoders.text_encoder_path={broken}",
        f"validation_videos.encoders.video.checkpoint={vae}",
        f"validation_videos.encoders.audio.checkpoint={vae}",
        data_root=tmp_path / "data",
    )
    with pytest.raises(Exception) as err:
        train(cfg, tmp_path / "run")
    line = user_error(err.value)
    assert line is not None and line.startswith(
        f"text_encoder_path='{broken}' is not allowed: a {gemma_kinds()} directory"
    )
    assert "\n" not in line
