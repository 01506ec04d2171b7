"""Datasets as ltx-trainer's preprocessing wrote them train as they are (data=precomputed data.root=...)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import compose_cfg
from ltxtune.data.batch import collate
from ltxtune.data.legacy import normalise, patchify, unpatchify
from ltxtune.data.needs import DataNeeds
from ltxtune.data.spec import PrecomputedData
from ltxtune.data.synthetic import SyntheticData
from ltxtune.diffusion.samplers import UniformSampler
from ltxtune.errors import DataError
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train

NUM_SAMPLES = 6


def write_legacy(source: Path, target: Path) -> None:
    """ltx-trainer's layout of the synthetic samples in ``source``: ``<target>/.precomputed/``, ``latent_<X>.pt`` /
    ``conditions/condition_<X>.pt`` names, patchified video latents, one ``prompt_embeds`` tensor, extra keys."""
    root = target / ".precomputed"
    for directory in sorted(p for p in source.iterdir() if p.is_dir()):
        (root / directory.name).mkdir(parents=True)
        for file in sorted(directory.glob("*.pt")):
            data = torch.load(file, weights_only=True)
            index = file.stem.removeprefix("sample_")
            if directory.name == "conditions":
                data = {
                    "prompt_embeds": data["video_prompt_embeds"],
                    "prompt_attention_mask": data["prompt_attention_mask"].bool(),
                    "caption_length": 7,
                }
                name = f"condition_{index}.pt"
            else:
                if "latents" in data and data["latents"].dim() == 4:
                    data = {**data, "latents": patchify(data["latents"])}
                data["idx"] = int(index)
                name = f"latent_{index}.pt"
            torch.save(data, root / directory.name / name)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    SyntheticData(str(root), num_samples=NUM_SAMPLES, val_samples=1).prepare()
    return root


@pytest.fixture(scope="module")
def legacy_root(synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("legacy") / "dataset"
    write_legacy(synthetic, target)
    return target


def test_unpatchify_inverts_patchify_in_frame_major_order() -> None:
    frames, height, width = 3, 2, 4
    latents = torch.randn(128, frames, height, width)
    tokens = patchify(latents)
    assert tokens.shape == (frames * height * width, 128)
    f, h, w = 2, 1, 3
    assert torch.equal(tokens[f * height * width + h * width + w], latents[:, f, h, w])
    assert torch.equal(unpatchify(tokens, frames, height, width), latents)


def test_one_prompt_embeds_tensor_feeds_both_streams_and_extra_keys_stay() -> None:
    embeds = torch.randn(5, 32)
    data = normalise(Path("c.pt"), {"prompt_embeds": embeds, "prompt_attention_mask": torch.ones(5), "extra": 1})
    assert data["video_prompt_embeds"] is embeds and data["audio_prompt_embeds"] is embeds
    assert "prompt_embeds" not in data and data["extra"] == 1


def test_patchified_latents_without_their_grid_name_the_file() -> None:
    with pytest.raises(DataError, match=r"bad\.pt: .*no num_frames, height, width"):
        normalise(Path("bad.pt"), {"latents": torch.randn(24, 128)})
    with pytest.raises(DataError, match=r"bad\.pt: latents have 24 tokens but .* make 12"):
        normalise(Path("bad.pt"), {"latents": torch.randn(24, 128), "num_frames": 1, "height": 3, "width": 4})


def test_legacy_dataset_reads_as_the_same_samples(synthetic: Path, legacy_root: Path) -> None:
    sources = DataNeeds("conditions", "latents", "audio_latents", reference_latents="reference_latents")
    new = PrecomputedData(str(synthetic), val_samples=0).split(sources, "test").train
    old = PrecomputedData(str(legacy_root), val_samples=0).split(sources, "test").train
    assert old.root == legacy_root / ".precomputed"
    assert old.names == tuple(f"latent_{i:04d}.pt" for i in range(NUM_SAMPLES))
    for i in range(NUM_SAMPLES):
        a, b = new[i], old[i]
        for key in ("video_latents", "reference_latents"):
            assert torch.equal(getattr(a, key).latents, getattr(b, key).latents)
        for key in ("video_prompt_embeds", "audio_prompt_embeds"):  # the one legacy tensor is the video one
            assert torch.equal(a.text.video_embeds, b.text.to_file()[key])


def test_legacy_ic_lora_dataset_gives_the_strategy_its_reference(legacy_root: Path) -> None:
    parts = build_parts(compose_cfg("experiment=v2v_ic_lora", "data=precomputed", f"data.root={legacy_root}"))
    train_set = parts.data.split(parts.strategy.data_needs(), "video_to_video").train
    batch = collate([train_set[0], train_set[1]])
    parts.strategy.check_data(batch)
    inputs = parts.strategy.prepare_training_inputs(batch, UniformSampler(), torch.Generator().manual_seed(0))
    assert inputs.video.latent.shape[1] == 3 * 4 * 6 + 3 * 2 * 3  # target tokens after the reference's


def test_a_bad_legacy_file_is_named(legacy_root: Path, tmp_path: Path) -> None:
    broken = tmp_path / "dataset"
    shutil.copytree(legacy_root, broken)
    bad = broken / ".precomputed" / "conditions" / "condition_0002.pt"
    torch.save({"prompt_embeds": torch.randn(16, 32)}, bad)
    data = PrecomputedData(str(broken), val_samples=0)
    train_set = data.split(DataNeeds(video_latents="latents", text="conditions"), "test").train
    with pytest.raises(DataError, match=r"condition_0002\.pt: no prompt_attention_mask"):
        train_set[2]


def test_legacy_dataset_trains_video_and_audio(legacy_root: Path, tmp_path: Path) -> None:
    cfg = compose_cfg("experiment=t2v", "data=precomputed", f"data.root={legacy_root}", "trainer.max_steps=2")
    train(cfg, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    assert (tmp_path / "lora.safetensors").is_file()


def test_a_legacy_clip_without_audio_latents_is_left_out_only_where_audio_is_read(legacy_root, tmp_path) -> None:
    """ltx-trainer writes no audio latents for a clip without sound; its loader drops it for audio strategies."""
    copy = tmp_path / "dataset"
    shutil.copytree(legacy_root, copy)
    (copy / ".precomputed/audio_latents/latent_0002.pt").unlink()
    data = PrecomputedData(str(copy), val_samples=1)
    video = DataNeeds(video_latents="latents", text="conditions")
    split = data.split(replace(video, audio_latents="audio_latents"), "t2v")
    assert list(split.without_audio) == ["latent_0002.pt"] and len(split.train) + len(split.val) == NUM_SAMPLES - 1
    video_only = data.split(video, "t2v")
    assert not video_only.without_audio and len(video_only.train) + len(video_only.val) == NUM_SAMPLES
    assert video_only.train[0].text.audio_embeds is None  # not loaded where nothing reads it
