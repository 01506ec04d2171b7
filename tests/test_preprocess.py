"""preprocess.py: real .mp4 files (made here with PyAV) -> the precomputed layout -> training on it."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from safetensors.torch import save_file

from conftest import CONF, ROOT, compose_cfg
from ltxtune.app.preprocess import build_encoders, preprocess
from ltxtune.data.batch import collate
from ltxtune.data.needs import DataNeeds
from ltxtune.data.preprocess.buckets import Bucket, choose_bucket, mask_fraction_grid, parse_buckets
from ltxtune.data.preprocess.encoders import AudioVAE, VideoVAE
from ltxtune.data.preprocess.manifest import Columns, Row, read_manifest
from ltxtune.data.preprocess.pipeline import Preprocessor
from ltxtune.data.preprocess.text import HashTextEncoder
from ltxtune.data.sampler import BucketBatchSampler
from ltxtune.data.spec import PrecomputedData
from ltxtune.errors import ConfigError, DataError
from ltxtune.training.run import train

BUCKETS = "[192x128x25,128x128x25,128x192x25]"


def write_mp4(
    path: Path, width: int, height: int, frames: int, seed: int, audio: bool = True, mask: bool = False
) -> None:
    """An H.264 clip (moving noise, or with ``mask`` a white box top-left from frame 9 on, losslessly) and mono AAC."""
    g = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "0" if mask else "23"}
        sound = container.add_stream("aac", rate=22050, layout="mono") if audio else None  # before any muxing
        base = g.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for i in range(frames):
            rgb = np.zeros_like(base) if mask else np.roll(base, 4 * i, axis=1)
            if mask and i >= 9:
                rgb[:32, :64] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            t = np.arange(int(22050 * frames / 24)) / 22050
            wave = (0.3 * np.sin(2 * math.pi * (200 + 100 * seed) * t)).astype(np.float32)[None]
            for start in range(0, wave.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start : start + 1024]), "fltp", "mono")
                chunk.sample_rate, chunk.pts = 22050, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))


def write_csv(path: Path, rows: list[dict]) -> Path:
    fields = sorted({k for row in rows for k in row})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def compose_pre(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="preprocess", overrides=[f"buckets={BUCKETS}", *overrides])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six clips, three landscape (256x160) and three square (160x160), 30 frames with sound; and a mask video."""
    root = tmp_path_factory.mktemp("clips")
    (root / "videos").mkdir()
    for i in range(6):
        width = 256 if i % 2 == 0 else 160
        write_mp4(root / "videos" / f"clip{i}.mp4", width, 160, 30, seed=i, audio=i != 5)
    write_mp4(root / "mask.mp4", 192, 128, 25, seed=0, audio=False, mask=True)
    rows = [{"media_path": f"videos/clip{i}.mp4", "caption": f"clip number {i} of noise"} for i in range(6)]
    write_csv(root / "dataset.csv", rows)
    return root


@pytest.fixture(scope="module")
def encoders():
    return build_encoders(compose_pre())


# ---- pure pieces ---------------------------------------------------------------------------------------------


def test_buckets_take_the_nearest_aspect_then_the_most_frames() -> None:
    buckets = parse_buckets(["192x128x25", "192x128x9", "128x128x25", "128x192x17"])
    assert choose_bucket(buckets, 1920, 1080, 100, False) == Bucket(192, 128, 25)
    assert choose_bucket(buckets, 1920, 1080, 20, False) == Bucket(192, 128, 9)  # too short for 25 frames
    assert choose_bucket(buckets, 500, 480, 30, False) == Bucket(128, 128, 25)
    assert choose_bucket(buckets, 480, 720, 30, False) == Bucket(128, 192, 17)
    assert choose_bucket(buckets, 480, 720, 5, False) is None  # shorter than every bucket
    assert choose_bucket(buckets, 640, 480, 1, True) == Bucket(192, 128, 1)  # an image: one frame
    for bad in (["100x128x25"], ["128x128x24"], ["128x128"], []):
        with pytest.raises(ConfigError, match="buckets="):
            parse_buckets(bad)


def test_pixel_mask_becomes_the_masked_fraction_of_each_latent_cell() -> None:
    generate = torch.zeros(17, 64, 96, dtype=torch.bool)
    generate[0, :16, :32] = True  # half of the first frame's first cell: latent frame 0 is pixel frame 0 alone
    generate[9:13, 32:64, 64:96] = True  # 4 of the 8 pixel frames of latent frame 2, whole cell (row 1, column 2)
    fraction = mask_fraction_grid(generate)
    assert fraction.shape == (3, 2, 3)
    assert fraction[0, 0, 0] == 0.5 and fraction[2, 1, 2] == 0.5 and fraction.sum() == 1.0


def test_hash_text_encoder_is_deterministic_left_padded_and_caption_dependent() -> None:
    enc = HashTextEncoder(dim=32, max_tokens=8)
    a, b = enc.encode("A red ball, bouncing"), HashTextEncoder(dim=32, max_tokens=8).encode("a red ball, bouncing")
    assert torch.equal(a.video, b.video) and a.video.shape == (8, 32)
    assert a.mask.tolist() == [0, 0, 0, 1, 1, 1, 1, 1] and a.mask.dtype == torch.int64
    assert (a.video[:3] == 0).all() and not torch.equal(a.video, enc.encode("a blue ball, bouncing").video)


def test_dataset_files_in_csv_json_and_jsonl_read_the_same(tmp_path) -> None:
    rows = [{"media_path": "v/a.mp4", "caption": " hi "}, {"media_path": "v/a.mp4", "caption": "again"}]
    write_csv(tmp_path / "d.csv", rows)
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    read = [read_manifest(tmp_path / f"d.{ext}", Columns())[0] for ext in ("csv", "json", "jsonl")]
    assert read[0] == read[1] == read[2]
    assert [r.name for r in read[0]] == ["v/a.pt", "v/a-1.pt"] and read[0][0].caption == "hi"
    assert read[0][0].media == tmp_path / "v" / "a.mp4"
    with pytest.raises(DataError, match="no column 'video'"):
        read_manifest(tmp_path / "d.csv", Columns(media="video"))[0]


def test_reference_trainer_column_names_are_read_without_renaming(tmp_path) -> None:
    theirs = [{"video": "v/a.mp4", "caption": "hi", "reference_video": "v/r.mp4", "video_mask": "v/m.mp4"}]
    (tmp_path / "theirs.json").write_text(json.dumps(theirs))
    row = read_manifest(tmp_path / "theirs.json", Columns())[0][0]
    assert (row.media, row.reference, row.mask) == (tmp_path / "v/a.mp4", tmp_path / "v/r.mp4", tmp_path / "v/m.mp4")
    write_csv(tmp_path / "both.csv", [{"media_path": "a.mp4", "video": "b.mp4", "caption": "hi"}])
    with pytest.raises(DataError, match=r"'media_path' and 'video' both name the media.*columns.media="):
        read_manifest(tmp_path / "both.csv", Columns())[0]
    assert read_manifest(tmp_path / "both.csv", Columns(media="video"))[0][0].media == tmp_path / "b.mp4"


def test_a_dataset_file_in_the_reference_naming_preprocesses_like_ours(clips, tmp_path) -> None:
    ours = {"media_path": "videos/clip0.mp4", "reference_path": "videos/clip2.mp4", "mask_path": "mask.mp4"}
    theirs = {"video": "videos/clip0.mp4", "reference_video": "videos/clip2.mp4", "video_mask": "mask.mp4"}
    files = {}
    runs = (("ours", ours, "auto"), ("theirs", theirs, "generate"), ("theirs_auto", theirs, "auto"))
    for name, record, white in runs:
        (clips / f"{name}.jsonl").write_text(json.dumps(record | {"caption": "a clip"}))
        dataset, out = f"input={clips / name}.jsonl", f"output={tmp_path / name}"
        summary = preprocess(compose_pre(dataset, out, "audio=false", f"mask_white={white}"))
        assert summary.done == 1 and not summary.skipped
        root = tmp_path / name
        files[name] = {p.relative_to(root).as_posix(): torch.load(p, weights_only=True) for p in root.rglob("*.pt")}
    assert sorted(files["theirs"]) == [
        "conditions/videos/clip0.pt",
        "conditions_empty.pt",
        "latents/videos/clip0.pt",
        "mask_latents/videos/clip0.pt",
        "reference_latents/videos/clip0.pt",
        "video_masks/videos/clip0.pt",
    ]
    assert sorted(files["ours"]) == sorted(files["theirs"])
    for path, data in files["theirs"].items():
        for key, value in data.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, files["ours"][path][key]), (path, key)
    # Left to auto, ltx-trainer's column video_mask is read in its own convention (white = keep): the complement.
    mask = "video_masks/videos/clip0.pt"
    assert torch.equal(files["theirs_auto"][mask]["mask"], 1 - files["ours"][mask]["mask"])
    assert json.loads((tmp_path / "theirs_auto/preprocess.json").read_text())["mask_white"] == "keep"


def test_mask_polarity_is_explicit_and_the_two_conventions_give_complementary_masks(clips, encoders, tmp_path):
    rows = [Row(0, "m.pt", clips / "videos/clip0.mp4", "a clip", mask=clips / "mask.mp4")]
    keep = {}
    for white in ("generate", "keep"):
        out = tmp_path / white
        Preprocessor(str(out), ["192x128x25"], audio=False, mask_white=white).run(rows, lambda: encoders)
        keep[white] = torch.load(out / "video_masks/m.pt", weights_only=True)["mask"]
        assert json.loads((out / "preprocess.json").read_text())["mask_white"] == white
    assert torch.equal(keep["generate"] + keep["keep"], torch.ones(4, 4, 6))  # complementary, cell for cell
    assert keep["keep"][2:, 0, :2].eq(1).all() and keep["keep"].sum() == 4  # ltx-trainer's: the white box is kept
    with pytest.raises(ConfigError, match="mask_white='black'"):
        Preprocessor("x", ["192x128x25"], mask_white="black")
    auto = Preprocessor("x", ["192x128x25"])
    assert [auto.use_mask_column(c) for c in ("video_mask", "mask_path", None)] == ["keep", "generate", "generate"]
    assert Preprocessor("x", ["192x128x25"], mask_white="generate").use_mask_column("video_mask") == "generate"


def test_reference_audio_becomes_reference_audio_latents_for_a2a_ic_lora(clips, encoders, tmp_path) -> None:
    rows = [
        Row(0, "a.pt", clips / "videos/clip0.mp4", "target", reference_audio=clips / "videos/clip2.mp4"),
        Row(1, "b.pt", clips / "videos/clip2.mp4", "its own sound"),
        Row(2, "c.pt", clips / "videos/clip0.mp4", "silent reference", reference_audio=clips / "mask.mp4"),
    ]
    summary = Preprocessor(str(tmp_path), ["192x128x25"]).run(rows, lambda: encoders)
    assert summary.done == 2 and [(r.index, s.kind) for r, s in summary.skipped] == [(2, "unreadable")]
    ref = torch.load(tmp_path / "reference_audio_latents/a.pt", weights_only=True)
    own = torch.load(tmp_path / "audio_latents/b.pt", weights_only=True)
    assert ref["latents"].shape == (8, 26, 16) and torch.equal(ref["latents"], own["latents"])  # same span, same sound
    assert not (tmp_path / "reference_audio_latents/b.pt").exists()


# ---- end to end ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_preprocessed_clips_have_the_spec_layout_and_train_with_two_buckets_at_batch_2(clips, tmp_path) -> None:
    rows = [{"media_path": f"videos/clip{i}.mp4", "caption": f"clip {i}"} for i in range(6)]
    rows[0] |= {"reference_path": "videos/clip0.mp4", "mask_path": "mask.mp4"}
    rows.append({"media_path": "still.png", "caption": "a still image"})
    with av.open(str(clips / "still.png"), "w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 300, 200, "rgb24"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((200, 300, 3), 90, np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    dataset = write_csv(clips / "layout.csv", rows)
    out = tmp_path / "data"
    summary = preprocess(compose_pre(f"input={dataset}", f"output={out}", "reference_downscale=2"))
    assert summary.done == 7 and not summary.skipped and summary.silent == 2  # clip5 and the image: no audio
    assert summary.buckets == {"192x128x25": 3, "128x128x25": 3, "192x128x1": 1}

    load = lambda d, i: torch.load(out / d / f"videos/clip{i}.pt", weights_only=True)  # noqa: E731
    for i, (h, w) in enumerate([(4, 6), (4, 4)] * 3):
        latents = load("latents", i)
        assert latents["latents"].shape == (128, 4, h, w) and torch.isfinite(latents["latents"]).all()
        assert (latents["num_frames"], latents["height"], latents["width"], latents["fps"]) == (4, h, w, 24.0)
        cond = load("conditions", i)
        assert cond["video_prompt_embeds"].shape == cond["audio_prompt_embeds"].shape == (32, 32)
        assert cond["prompt_attention_mask"].dtype == torch.int64 and cond["prompt_attention_mask"].sum() == 2
        if i == 5:  # no audio track: no audio latents (not the latents of silence)
            assert not (out / "audio_latents/videos/clip5.pt").exists()
            continue
        audio = load("audio_latents", i)
        assert audio["latents"].shape == (8, 26, 16) and audio["num_time_steps"] == 26  # 25 frames / 24 fps * 25
    assert "2 without an audio track (no audio_latents/: audio strategies leave them out)" in summary.line()
    again = preprocess(compose_pre(f"input={dataset}", f"output={out}", "reference_downscale=2"))
    assert (again.done, again.already) == (0, 7)  # clips without sound are complete without audio latents
    still = torch.load(out / "latents/still.pt", weights_only=True)
    assert not (out / "audio_latents/still.pt").exists()
    assert still["latents"].shape == (128, 1, 4, 6) and still["fps"] == 24.0  # an image is a one-frame clip
    ref = load("reference_latents", 0)
    assert ref["latents"].shape == (128, 4, 2, 3) and (ref["height"], ref["width"]) == (2, 3)
    keep = load("video_masks", 0)["mask"]
    expected = torch.ones(4, 4, 6)
    expected[2:, 0, :2] = 0  # white box: pixels 0-31 x 0-63 from frame 9 = latent frames 2, 3
    assert torch.equal(keep, expected)
    assert load("mask_latents", 0)["latents"].shape == (128, 4, 4, 6)
    assert json.loads((out / "preprocess.json").read_text())["encoders"]["video"]["class"] == "VideoEncoder"
    assert not (out / "skipped.jsonl").exists()  # a report only when something was skipped

    # Three shapes (two resolutions and the image), batch size 2: each batch holds one shape; training runs on it.
    train_set = (
        PrecomputedData(str(out), val_samples=2).split(DataNeeds(video_latents="latents", text="conditions"), "t").train
    )
    sampler = BucketBatchSampler([train_set.shape_key(i) for i in range(len(train_set))], batch_size=2, seed=0)
    batches = [batch for _, batch in zip(range(6), sampler, strict=False)]
    assert sorted(len(b) for b in batches) == [1, 1, 2, 2, 2, 2]  # 2 per video bucket, the image alone
    shapes = {collate([train_set[i] for i in b]).video_latents.latents.shape[-3:] for b in batches}
    assert shapes == {(4, 4, 6), (4, 4, 4), (1, 4, 6)}
    cfg = compose_cfg(
        "data=precomputed", f"data.root={out}", "data.val_samples=2", "strategy.with_audio=true", "trainer.max_steps=3"
    )
    objective = train(cfg, tmp_path / "run").objective
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 3 and math.isfinite(objective)
    assert result["left_out_samples"] == 2  # with audio: the two samples without sound are left out, named
    assert sorted(json.loads((tmp_path / "run" / "left_out_samples.json").read_text())) == [
        "still.pt",
        "videos/clip5.pt",
    ]
    card = (tmp_path / "run" / "README.md").read_text()  # the captions preprocessing recorded
    assert "None recorded" not in card and '- "clip 0"' in card and "training samples have a caption" in card

    # Only row 0 has a reference: an IC-LoRA run leaves the others out (strict=false) and trains on it.
    ic_lora = compose_cfg(
        "data=precomputed", f"data.root={out}", "data.val_samples=0", "data.strict=false", "strategy=video_to_video",
        "trainer.max_steps=1", "trainer.batch_size=1", "validation_videos.enabled=false",
    )  # fmt: skip
    train(ic_lora, tmp_path / "ic_lora")
    left_out = json.loads((tmp_path / "ic_lora" / "left_out_samples.json").read_text())
    assert len(left_out) == 6 and "videos/clip0.pt" not in left_out
    assert (
        left_out["videos/clip3.pt"]
        == f"no file {out / 'reference_latents/videos/clip3.pt'}, which strategy VideoToVideo reads"
    )


@pytest.mark.slow
def test_bad_inputs_are_skipped_with_reasons_and_leave_no_partial_sample(clips, tmp_path) -> None:
    (clips / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    write_mp4(clips / "short.mp4", 192, 128, 9, seed=7)
    dataset = write_csv(
        clips / "bad.csv",
        [
            {"media_path": "videos/clip0.mp4", "caption": "fine"},
            {"media_path": "corrupt.mp4", "caption": "broken file"},
            {"media_path": "nowhere.mp4", "caption": "missing file"},
            {"media_path": "short.mp4", "caption": "nine frames only"},
            {"media_path": "videos/clip1.mp4", "caption": "   "},
        ],
    )
    out = tmp_path / "data"
    summary = preprocess(compose_pre(f"input={dataset}", f"output={out}"))
    assert summary.done == 1
    assert "skipped 4 (1 missing file, 1 no caption, 1 too short, 1 unreadable)" in summary.line()
    report = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(r["row"], r["reason"]) for r in report] == [
        (1, "unreadable"),
        (2, "missing file"),
        (3, "too short"),
        (4, "no caption"),
    ]
    assert "nowhere.mp4" in report[1]["detail"] and "9 frames" in report[2]["detail"]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "audio_latents/videos/clip0.pt",
        "captions.json",
        "conditions/videos/clip0.pt",
        "conditions_empty.pt",
        "latents/videos/clip0.pt",
        "preprocess.json",
        "skipped.jsonl",
    ]
    with pytest.raises(DataError, match=r"row 1 .*unreadable.*strict=true"):
        preprocess(compose_pre(f"input={dataset}", f"output={tmp_path / 'strict'}", "strict=true"))


@pytest.mark.slow
def test_rerun_resumes_and_processes_share_the_rows(clips, encoders, tmp_path) -> None:
    rows = read_manifest(clips / "dataset.csv", Columns())[0]
    pre = Preprocessor(str(tmp_path), ["192x128x25", "128x128x25"], rank=0, world=2)
    first = pre.run(rows, lambda: encoders)
    assert first.done == 3 and sorted(p.name for p in (tmp_path / "latents/videos").iterdir()) == [
        "clip0.pt",
        "clip2.pt",
        "clip4.pt",
    ]
    other = Preprocessor(str(tmp_path), ["192x128x25", "128x128x25"], rank=1, world=2).run(rows, lambda: encoders)
    assert other.done == 3 and len(list((tmp_path / "latents/videos").iterdir())) == 6

    # An interrupted sample (latents/ not yet written) is redone; complete ones are not touched.
    (tmp_path / "latents/videos/clip2.pt").unlink()
    before = (tmp_path / "latents/videos/clip0.pt").stat().st_mtime_ns
    again = pre.run(rows, lambda: encoders)
    assert (again.done, again.already) == (1, 2)
    assert (tmp_path / "latents/videos/clip0.pt").stat().st_mtime_ns == before
    done = pre.run(rows, lambda: pytest.fail("encoders are built although nothing is left to do"))
    assert (done.done, done.already) == (0, 3)
    assert Preprocessor(str(tmp_path), ["192x128x25"], overwrite=True).plan(rows)[0] == rows


@pytest.mark.slow
def test_real_checkpoint_layout_loads_through_ltx_core_and_matches_the_tiny_encoders(encoders, tmp_path) -> None:
    """A checkpoint in LTX-2's key layout (``vae.encoder.``, ``audio_vae.encoder.``, config in the metadata)."""
    cfg = compose_pre()
    config = {"vae": dict(cfg.encoders.video.config), "audio_vae": dict(cfg.encoders.audio.config)}
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.create(config))
    tensors = {}
    for prefix, model in (("vae", encoders.video.model), ("audio_vae", encoders.audio.model)):
        for key, value in model.state_dict().items():
            if key.startswith("per_channel_statistics."):
                tensors[f"{prefix}.{key}"] = value.clone() + 0.5  # the loaded statistics must be the file's
            else:
                tensors[f"{prefix}.encoder.{key}"] = value.clone()
    tensors["vae.decoder.conv_in.weight"] = torch.zeros(1)  # other components' keys are filtered out
    path = tmp_path / "ltx-2-tiny.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})

    video = VideoVAE(checkpoint=str(path), device="cpu")
    audio = AudioVAE(checkpoint=str(path), device="cpu")
    frames = torch.randint(0, 256, (9, 3, 64, 96), dtype=torch.uint8)
    shifted = (encoders.video.encode(frames) - 0.5) / 1.5  # tiny statistics are mean 0, std 1
    assert torch.allclose(video.encode(frames), shifted, atol=1e-5)
    wave = torch.randn(2, 16000) * 0.1
    assert torch.allclose(audio.encode(wave, 1.0), (encoders.audio.encode(wave, 1.0) - 0.5) / 1.5, atol=1e-4)

    transformer_only = tmp_path / "no-vae.safetensors"
    save_file({"model.diffusion_model.x": torch.zeros(1)}, str(transformer_only), metadata={"config": "{}"})
    with pytest.raises(DataError, match="no vae encoder weights"):
        VideoVAE(checkpoint=str(transformer_only), device="cpu")


@pytest.mark.slow
def test_preprocess_py_without_arguments_makes_demo_clips_and_preprocesses_them(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "preprocess.py",
            f"output={tmp_path / 'data'}",
            f"demo.dir={tmp_path / 'demo'}",
            "demo.num_clips=4",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "made 4 demo clips" in out.stdout and "preprocessed 4 clips" in out.stdout
    assert f"data.root={tmp_path / 'data'}" in out.stdout
    assert len(list((tmp_path / "demo" / "clips").glob("*.mp4"))) == 4
    assert len(list((tmp_path / "data" / "latents").rglob("*.pt"))) == 4
    with av.open(str(next((tmp_path / "demo" / "clips").glob("*.mp4")))) as container:
        assert container.streams.video and container.streams.audio  # real clips with sound


def test_bad_values_are_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="reference_frame_stride=2"):
        Preprocessor("x", ["128x128x25"], reference_frame_stride=2)  # every 2nd of 25 frames: 13, not 8k + 1
    with pytest.raises(ConfigError, match=r"ddconfig\.ch=64"):
        AudioVAE(config={"model": {"params": {"ddconfig": {"ch": 64, "mel_bins": 64, "ch_mult": [1, 1, 1]}}}})
