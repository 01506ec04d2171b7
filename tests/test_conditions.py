"""Each condition covers exactly the tokens it says, drawn as docs/custom-strategies.md says; bad settings refused."""

from __future__ import annotations

import pytest
import torch

from ltxtune.data.batch import Batch
from ltxtune.errors import ConfigError, DataError
from ltxtune.strategies.base import AudioTokens, VideoTokens
from ltxtune.strategies.conditions import FirstFrame, Mask, Prefix, Reference, SpatialCrop, Stream, Suffix
from ltxtune.strategies.flexible import AudioTrack, Flexible, VideoTrack

NO_DATA = Batch({}, ())


def video(b: int = 2, f: int = 3, h: int = 4, w: int = 6, fps: float = 24.0, seed: int = 0) -> VideoTokens:
    latents = torch.randn(b, 128, f, h, w, generator=torch.Generator().manual_seed(seed))
    return VideoTokens.from_source({"latents": latents, "fps": torch.full((b,), fps)})


def audio(b: int = 2, t: int = 10) -> AudioTokens:
    return AudioTokens.from_source({"latents": torch.randn(b, 8, t, 16, generator=torch.Generator().manual_seed(3))})


def start(target: VideoTokens | AudioTokens, sigma: float = 0.5) -> Stream:
    b = target.tokens.shape[0]
    return Stream.generated(target, torch.full((b,), sigma), torch.Generator().manual_seed(11))


def apply(condition, stream: Stream, batch: Batch = NO_DATA, seed: int = 0) -> Stream:
    return condition.apply(stream, batch, torch.Generator().manual_seed(seed))


def assert_conditioned(before: Stream, after: Stream, mask: torch.Tensor) -> None:
    """``mask [B, T]`` tokens are clean, timestep 0 and unscored; every other token is as it was."""
    n = after.noised
    assert torch.equal(n.latent[mask], after.x0[mask])
    assert torch.equal(n.latent[~mask], before.noised.latent[~mask])
    assert not n.timesteps[mask].any()
    assert torch.equal(n.timesteps[~mask], before.noised.timesteps[~mask])
    assert torch.equal(n.loss_mask, ~mask)


def frames_mask(b: int, frames: list[int], f: int, hw: int) -> torch.Tensor:
    per_frame = torch.zeros(f, hw, dtype=torch.bool)
    per_frame[frames] = True
    return per_frame.flatten().expand(b, -1)


def test_first_frame_makes_the_first_hw_tokens_conditioning() -> None:
    s = start(video(f=3, h=2, w=3))
    assert_conditioned(s, apply(FirstFrame(1.0), s), frames_mask(2, [0], 3, 6))
    assert_conditioned(s, apply(FirstFrame(0.0), s), frames_mask(2, [], 3, 6))


def test_first_frame_leaves_a_one_frame_clip_to_generate() -> None:
    s = start(video(f=1))
    assert apply(FirstFrame(1.0), s).noised.loss_mask.all()


@pytest.mark.parametrize(
    ("condition", "frames"), [(Prefix(2), [0, 1]), (Suffix(1), [2]), (Suffix(2), [1, 2]), (Prefix(1), [0])]
)
def test_prefix_and_suffix_cover_whole_latent_frames(condition, frames: list[int]) -> None:
    s = start(video(f=3, h=2, w=3))
    assert_conditioned(s, apply(condition, s), frames_mask(2, frames, 3, 6))


def test_prefix_and_suffix_count_audio_latent_steps() -> None:
    s = start(audio(t=10))
    assert_conditioned(s, apply(Prefix(3), s), frames_mask(2, [0, 1, 2], 10, 1))
    assert_conditioned(s, apply(Suffix(4), s), frames_mask(2, [6, 7, 8, 9], 10, 1))


@pytest.mark.parametrize("target", [video(f=3), audio(t=10)], ids=["video", "audio"])
def test_temporal_boundary_must_leave_something_to_generate(target) -> None:
    boundary = target.frames
    with pytest.raises(ConfigError) as info:
        apply(Prefix(boundary), start(target))
    assert info.value.key == "temporal_boundary" and info.value.value == boundary
    assert f"< {boundary}, the {target.time_unit}" in str(info.value)


def test_spatial_crop_maps_pixels_to_latent_cells_in_every_frame() -> None:
    s = start(video(f=2, h=4, w=6))
    # Rows 32..96 px -> latent rows 1, 2; columns 32..160 px -> latent columns 1..4.
    cell = torch.zeros(4, 6, dtype=torch.bool)
    cell[1:3, 1:5] = True
    assert_conditioned(s, apply(SpatialCrop(32, 32, 96, 160), s), cell.flatten().repeat(2).expand(2, -1))


def crop_cells(box, h: int = 4, w: int = 6) -> torch.Tensor:
    """The ``[B, T]`` region SpatialCrop ``box`` covers on a ``h x w`` latent frame."""
    return SpatialCrop(*box).region(video(h=h, w=w), NO_DATA)[0].reshape(3, h, w)[0]


def test_spatial_crop_past_the_frame_is_clamped_and_said_once_per_frame_size(capsys) -> None:
    """One pixel box meets frames of several sizes (buckets): it is clamped to each, as ltx-trainer does."""
    box = (64, 32, 1000, 128)  # rows 2.. past the 128 px frame, columns 1..3
    want = torch.zeros(4, 6, dtype=torch.bool)
    want[2:4, 1:4] = True
    crop = SpatialCrop(*box)
    for _ in range(3):  # every step meets the box again: said once
        assert torch.equal(crop.region(video(h=4, w=6), NO_DATA)[0].reshape(3, 4, 6)[0], want)
    out = capsys.readouterr().out
    assert out.count("warning: spatial_crop box") == 1
    assert "(64, 32, 1000, 128) reaches past the 128 x 192 px frame: clamped to (64, 32, 128, 128)" in out
    crop.region(video(h=8, w=6), NO_DATA)  # another bucket's frame: said for it too
    assert "past the 256 x 192 px frame: clamped to (64, 32, 256, 128)" in capsys.readouterr().out
    SpatialCrop(*box).region(video(h=4, w=6), NO_DATA)  # validation's copy of the same box: not again
    assert capsys.readouterr().out == ""
    crop_cells((32, 32, 96, 160))  # inside the frame: nothing to say
    assert capsys.readouterr().out == ""


def test_spatial_crop_covering_the_whole_frame_is_said(capsys) -> None:
    assert crop_cells((0, 0, 4096, 4096), h=2, w=2).all()
    assert "all of it: nothing left to generate" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("box", "key", "allowed"),
    [
        ((160, 0, 200, 64), "y1", "latent row inside the frame (the frame is 128 x 192 px)"),  # below the frame
        ((0, 192, 64, 224), "x1", "latent column inside the frame (the frame is 128 x 192 px)"),
        ((0, 0, 20, 64), "y2", "a whole 32 px latent row"),  # no whole latent row
        ((0, 40, 64, 60), "x2", "a whole 32 px latent column"),
    ],
)
def test_spatial_crop_box_empty_after_clamping_is_refused(box, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply(SpatialCrop(*box), start(video(h=4, w=6)))
    assert info.value.key == key and allowed in info.value.allowed


def test_spatial_crop_error_names_the_full_key_and_the_frame() -> None:
    strategy = Flexible(video=VideoTrack(conditions=[SpatialCrop(200, 0, 260, 64)]))
    batch = Batch({"video_latents": {"latents": torch.randn(1, 128, 2, 4, 6)}, "conditions": {}}, ("a",))
    with pytest.raises(ConfigError, match=r"video.conditions\[0\].y1=200 .*128 x 192 px"):
        strategy.check_data(batch)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"y1": 64, "x1": 0, "y2": 64, "x2": 32}, "y2"),
        ({"y1": 0, "x1": -32, "y2": 64, "x2": 32}, "x1"),
        ({"y1": 0, "x1": 0, "y2": 64, "x2": 32, "probability": 1.2}, "probability"),
    ],
)
def test_spatial_crop_constructor_refuses_empty_boxes(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SpatialCrop(**kwargs)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: FirstFrame(-0.1), "probability"),
        (lambda: Prefix(0), "temporal_boundary"),
        (lambda: Suffix(2, probability=2.0), "probability"),
        (lambda: Mask("video_masks", threshold=1.5), "threshold"),
        (lambda: Reference(""), "latents_dir"),
    ],
)
def test_constructors_refuse_values_out_of_range(make, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == key


def test_mask_conditions_values_above_one_half_by_the_mask_formula() -> None:
    target = video(f=2, h=2, w=2)
    values = torch.tensor([0.0, 1.0, 0.6, 0.4, 0.5, 0.9, 0.1, 1.0]).view(2, 2, 2)
    masks = torch.stack([values, 1 - values])  # [B, F, H, W]
    s = start(target)
    out = apply(Mask("video_masks"), s, Batch({"video_masks": {"mask": masks}}, ("a", "b")))
    m = (masks.reshape(2, -1) > 0.5).float()
    mm = m.unsqueeze(-1)
    assert torch.equal(out.noised.latent, mm * s.x0 + (1 - mm) * s.noised.latent)
    assert torch.equal(out.noised.timesteps, s.noised.timesteps * (1 - m))
    assert torch.equal(out.noised.loss_mask, m == 0)


def test_mask_of_the_wrong_size_is_a_data_error() -> None:
    batch = Batch({"audio_masks": {"mask": torch.ones(2, 7)}}, ("a", "b"))
    with pytest.raises(DataError, match="audio_masks/ masks have shape"):
        apply(Mask("audio_masks"), start(audio(t=10)), batch)


def test_intrinsic_draws_are_independent_per_sample() -> None:
    s = start(video(b=64, f=2, h=1, w=2))
    cond = ~apply(Prefix(1, probability=0.5), s, seed=5).noised.loss_mask  # [64, 4]
    drawn = cond[:, 0]
    assert 16 < int(drawn.sum()) < 48  # some samples conditioned, some not, in one batch
    assert torch.equal(cond[:, :2], drawn.view(-1, 1).expand(-1, 2)) and not cond[:, 2:].any()
    other = ~apply(Prefix(1, probability=0.5), s, seed=6).noised.loss_mask
    assert not torch.equal(other[:, 0], drawn)


def reference_batch(b: int = 2, f: int = 3, h: int = 2, w: int = 3, fps: float = 24.0) -> Batch:
    latents = torch.randn(b, 128, f, h, w, generator=torch.Generator().manual_seed(9))
    return Batch({"reference_latents": {"latents": latents, "fps": torch.full((b,), fps)}}, tuple("ab"[:b]))


def test_reference_is_prepended_clean_unscored_and_drawn_once_per_batch() -> None:
    s = start(video(f=3, h=4, w=6))
    batch = reference_batch()
    ref = VideoTokens.from_source(batch["reference_latents"])
    lengths = set()
    for seed in range(30):
        out = apply(Reference("reference_latents", probability=0.5), s, batch, seed=seed)
        lengths.add(out.noised.latent.shape[1])
        if out.noised.latent.shape[1] > 72:  # applied: to every sample of the batch alike
            r = ref.tokens.shape[1]
            assert torch.equal(out.noised.latent[:, :r], ref.tokens)
            assert not out.noised.timesteps[:, :r].any() and not out.noised.loss_mask[:, :r].any()
            assert torch.equal(out.noised.latent[:, r:], s.noised.latent)
            assert out.positions.shape == (2, 3, r + 72, 2)
    assert lengths == {72, 72 + 18}


def test_reference_positions_are_scaled_onto_the_target_grid() -> None:
    s = start(video(f=3, h=4, w=6))
    condition = Reference("reference_latents")
    out = apply(condition, s, reference_batch(h=2, w=3))
    pos = out.positions[0]  # [3, R + T, 2]; reference tokens first: f*6 + row*3 + col
    assert pos[1, 3].tolist() == [64.0, 128.0]  # reference row 1 covers target rows 2..3 (64..128 px)
    assert pos[2, 2].tolist() == [128.0, 192.0]  # reference column 2 covers target columns 4..5
    own = VideoTokens.from_source(reference_batch(h=2, w=3)["reference_latents"]).positions()
    assert torch.equal(out.positions[:, 0, :18], own[:, 0])  # same frame count and fps: times unchanged
    assert torch.equal(out.positions[:, :, 18:], s.positions)
    assert condition.get_checkpoint_metadata() == {"reference_spatial_scale_factor": 2, "reference_downscale_factor": 2}


def test_reference_with_fewer_frames_is_shifted_back_in_time() -> None:
    s = start(video(f=3, h=2, w=2, fps=24.0))
    condition = Reference("reference_latents")
    # 2 reference frames vs 3: temporal factor (3 - 1) / (2 - 1) = 2, the reference stored at 12 fps.
    out = apply(condition, s, reference_batch(f=2, h=2, w=2, fps=12.0))
    times = out.positions[0, 0, :8:4]  # the first token of each reference frame
    # At 12 fps the frames span [0, 1/12] and [1/12, 9/12]; minus (2 - 1)/24 s, clamped at 0.
    expected = torch.tensor([[0.0, 1 / 12 - 1 / 24], [1 / 12 - 1 / 24, 9 / 12 - 1 / 24]])
    assert torch.allclose(times, expected)
    assert condition.get_checkpoint_metadata() == {"reference_temporal_scale_factor": 2}


@pytest.mark.parametrize(("f", "h", "w"), [(3, 2, 2), (3, 3, 3), (2, 4, 4)])
def test_reference_scale_factors_must_be_one_integer(f: int, h: int, w: int) -> None:
    # Against a 4-frame 4 x 6 target: 2 x 2 scales height by 2 but width by 3; 3 x 3 divides neither;
    # 4 x 4 does not divide the width (its 2 frames would be fine: 3 groups to 1).
    s = start(video(f=4, h=4, w=6))
    with pytest.raises(DataError, match="reference_latents/"):
        apply(Reference("reference_latents"), s, reference_batch(f=f, h=h, w=w))


def test_reference_refuses_a_dataset_mixing_scale_factors() -> None:
    condition = Reference("reference_latents")
    apply(condition, start(video(h=4, w=6)), reference_batch(h=2, w=3))
    with pytest.raises(DataError, match="differ from"):
        apply(condition, start(video(h=4, w=6)), reference_batch(h=4, w=6))


def test_flexible_refuses_configurations_with_nothing_to_learn_or_video_conditions_on_audio() -> None:
    cases = [
        (lambda: Flexible(video=VideoTrack(False), audio=AudioTrack(False)), "audio.is_generated"),
        (lambda: Flexible(video=None, audio=None), "video"),
        (lambda: Flexible(audio=AudioTrack(conditions=[Prefix(2), FirstFrame()])), "audio.conditions[1]"),
        (lambda: Flexible(audio=AudioTrack(conditions=[SpatialCrop(0, 0, 32, 32)])), "audio.conditions[0]"),
        (lambda: Flexible(video=VideoTrack(False, conditions=[Prefix(1)]), audio=AudioTrack()), "video.conditions"),
    ]
    for make, key in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert info.value.key == key


def test_flexible_collects_every_directory_its_tracks_and_conditions_read() -> None:
    strategy = Flexible(
        video=VideoTrack(conditions=[Reference("reference_latents"), Mask("video_masks")]),
        audio=AudioTrack(False, "audio_latents"),
    )
    assert strategy.get_data_sources() == {
        "conditions": "conditions",
        "latents": "video_latents",
        "reference_latents": "reference_latents",
        "video_masks": "video_masks",
        "audio_latents": "audio_latents",
    }
