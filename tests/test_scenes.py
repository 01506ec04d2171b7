"""Scene splitting: the length rules on their own, then real footage with a known cut (two real clips joined)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from ltxtune.data.preprocess.manifest import Columns, read_manifest
from ltxtune.data.scenes.__main__ import main
from ltxtune.data.scenes.plan import Segment, plan_segments
from test_real_masks import sample_clips

FPS, SIZE, SHOT = 25, (192, 108), 40  # each shot: 40 frames (1.6 s) at 25 fps
RATE = 48000
needs_scenedetect = pytest.mark.skipif(
    importlib.util.find_spec("scenedetect") is None, reason="needs PySceneDetect: pip install -e '.[scenes]'"
)


def test_short_scenes_are_dropped_and_counted() -> None:
    plan = plan_segments([Segment(0, 10), Segment(10, 60), Segment(60, 64)], fps=25, min_seconds=1.0, max_seconds=None)
    assert plan.segments == [Segment(10, 60)]
    assert plan.dropped == 2


def test_a_long_scene_is_cut_into_equal_pieces_none_longer_than_the_maximum() -> None:
    plan = plan_segments([Segment(0, 250)], fps=25, min_seconds=1.0, max_seconds=4.0)  # 10 s, at most 4 s each
    assert [s.frames for s in plan.segments] == [83, 83, 84]  # not 4 + 4 + 2
    assert plan.segments[0].start == 0 and plan.segments[-1].end == 250
    assert all(a.end == b.start for a, b in pairwise(plan.segments))


def test_pieces_that_would_be_too_short_keep_the_maximum_and_drop_the_rest() -> None:
    plan = plan_segments([Segment(0, 125)], fps=25, min_seconds=3.0, max_seconds=4.0)  # 5 s: 2 x 2.5 s < 3 s
    assert plan.segments == [Segment(0, 100)]
    assert plan.trimmed_frames == 25


def frames_of(clip: Path, count: int) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        frames = (f.to_ndarray(width=SIZE[0], height=SIZE[1], format="rgb24") for f in container.decode(video=0))
        return [next(frames) for _ in range(count)]


def sound_of(clip: Path, seconds: float) -> np.ndarray:
    """``[2, S]`` float: the clip's own soundtrack at 48 kHz stereo."""
    with av.open(str(clip)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE)
        chunks = [out.to_ndarray() for f in container.decode(audio=0) for out in resampler.resample(f)]
    return np.concatenate(chunks, axis=1)[:, : round(seconds * RATE)]


def write_joined(path: Path) -> None:
    """Big Buck Bunny's first shot, then the carphone clip (no cut inside either), with the bunny's sound under both."""
    clips = sample_clips()
    pixels = frames_of(clips / "bigbuckbunny.mp4", SHOT) + frames_of(clips / "carphone_pristine.mp4", SHOT)
    sound = sound_of(clips / "bigbuckbunny.mp4", 2 * SHOT / FPS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        audio = container.add_stream("aac", rate=RATE, layout="stereo")
        for i, rgb in enumerate(pixels):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for start in range(0, sound.shape[1], 1024):
            chunk = np.ascontiguousarray(sound[:, start : start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


def decoded(path: Path) -> tuple[int, float]:
    """A segment's frame count and its sound's length in seconds, by decoding both."""
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
        rate = container.streams.audio[0].rate
    return frames, samples / rate


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    write_joined(folder / "shots" / "joined.mp4")
    (folder / "shots" / "joined.txt").write_text("a rabbit in a meadow, then a man on the phone in a car\n")
    return folder


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "dataset.csv").open() as f:
        return list(csv.DictReader(f))


@needs_scenedetect
def test_real_footage_is_cut_at_the_join(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(source), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    listed = rows(out)
    assert len(listed) == 2, listed
    cut = round(float(listed[1]["start_seconds"]) * FPS)
    assert abs(cut - SHOT) <= 2, f"cut at frame {cut}, the join is at {SHOT}"
    for row in listed:
        frames, seconds = decoded(out / row["media_path"])
        assert frames == int(row["frames"])
        assert seconds == pytest.approx(frames / FPS, abs=0.05)  # its own stretch of the sound
    assert sum(int(r["frames"]) for r in listed) == 2 * SHOT
    assert listed[0]["media_path"] == "shots/joined-scene001.mp4"  # the source folder's layout is kept
    assert (out / "shots" / "joined-scene002.txt").read_text().startswith("a rabbit in a meadow")
    manifest, _ = read_manifest(out / "dataset.csv", Columns())  # what preprocess.py reads
    assert [r.media.is_file() and bool(r.caption) for r in manifest] == [True, True]
    assert "wrote 2 segments" in capsys.readouterr().out


@needs_scenedetect
def test_scenes_longer_than_the_maximum_are_split_and_short_ones_dropped(source: Path, tmp_path: Path) -> None:
    video = source / "shots" / "joined.mp4"
    assert main([str(video), "--out", str(tmp_path), "--max-seconds", "0.7", "--min-seconds", "0.3"]) == 0
    assert [int(r["frames"]) for r in rows(tmp_path)] == [13, 13, 14, 13, 13, 14]  # each 1.6 s shot in 3
    assert [decoded(tmp_path / r["media_path"])[0] for r in rows(tmp_path)] == [13, 13, 14, 13, 13, 14]
    assert main([str(video), "--out", str(tmp_path / "long"), "--min-seconds", "2"]) == 0
    assert not (tmp_path / "long" / "joined-scene001.mp4").exists()  # both 1.6 s shots are under 2 s


def test_without_scenedetect_the_error_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "scenedetect", None)  # import fails as when it is not installed
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "pip install 'ltxtune[scenes]'" in capsys.readouterr().err


def test_bad_lengths_are_refused_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.mp4").write_bytes(b"")
    assert main([str(tmp_path), "--out", str(tmp_path / "o"), "--min-seconds", "2", "--max-seconds", "1"]) == 2
    assert "--max-seconds=1.0 is not allowed: must be >= --min-seconds (2)" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@needs_scenedetect
def test_an_unreadable_source_is_reported_and_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 1  # nothing was written
    assert "broken.mp4: skipped, cannot be read" in capsys.readouterr().err
