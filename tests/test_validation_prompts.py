"""The user's validation prompts: text with an optional image, video or audio, encoded once with the
configured encoders and rendered beside (or instead of) held-out samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from conftest import ROOT, compose_cfg
from ltxtune.data.preprocess.media import write_clip
from ltxtune.errors import ConfigError, DataError
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def image(path: Path, width: int = 192, height: int = 128, seed: int = 0) -> Path:
    """A one-frame picture file (a still .mp4, as the preprocessing reads images through FFmpeg too)."""
    g = torch.Generator().manual_seed(seed)
    write_clip(path, torch.randint(0, 255, (1, height, width, 3), generator=g, dtype=torch.uint8), 24)
    return path


def preview_frames(png: Path, row: int, frames: int = 3, height: int = 4, width: int = 6) -> list[torch.Tensor]:
    """The generated frames and then the given media's frames of one row of ``preview.png``."""
    from PIL import Image

    from ltxtune.evaluation.previews import CELL_PIXELS, GAP_PIXELS

    pixels = torch.from_numpy(numpy.array(Image.open(png)))
    cell_h, cell_w = height * CELL_PIXELS, width * CELL_PIXELS + GAP_PIXELS
    top = row * (cell_h + GAP_PIXELS)
    starts = [i * cell_w for i in range(frames)] + [
        frames * cell_w + 2 * GAP_PIXELS + i * cell_w for i in range(frames)
    ]
    return [pixels[top : top + cell_h, x : x + width * CELL_PIXELS] for x in starts]


def test_text_prompts_render_first_then_the_held_out_samples(synthetic_root, tmp_path) -> None:
    prompts = "validation_videos.prompts=['a red ball bouncing on a wooden floor','waves at dusk']"
    train(compose_cfg(prompts, "validation_videos.num_prompts=1", data_root=synthetic_root), tmp_path)
    step = tmp_path / "samples" / "step_000004"
    assert sorted(p.name for p in step.iterdir()) == ["preview.png", "prompt0.mp4", "prompt1.mp4", "prompt2.mp4"]
    cached = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)
    assert [p["text"] for p in cached["prompts"]] == ["a red ball bouncing on a wooden floor", "waves at dusk"]


def test_an_i2v_prompts_first_frame_is_its_image(synthetic_root, tmp_path) -> None:
    """i2v validates with the first frame always given: the generated clip's first latent frame is the image's
    latent, so its preview matches the given frame pixel for pixel (and the last frame does not)."""
    picture = image(tmp_path / "picture.mp4")
    prompt = f"validation_videos.prompts=[{{text: 'a red ball', image: '{picture}'}}]"
    train(compose_cfg("experiment=i2v", prompt, "validation_videos.num_prompts=0", "trainer.max_steps=1",
                      data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    frames = preview_frames(tmp_path / "run" / "samples" / "step_000001" / "preview.png", row=0)
    generated, given = frames[:3], frames[3:]
    assert torch.equal(generated[0], given[0]) and not torch.equal(generated[2], given[0])
    cached = torch.load(tmp_path / "run" / "validation_prompts.pt", weights_only=True)
    latents = cached["sources"][0]["video_latents"]["latents"]
    assert latents[0, :, 0].abs().sum() > 0 and latents[0, :, 1:].abs().sum() == 0  # only the image is given


def test_an_ic_lora_prompts_video_is_its_reference(synthetic_root, tmp_path) -> None:
    g = torch.Generator().manual_seed(1)
    write_clip(tmp_path / "ref.mp4", torch.randint(0, 255, (17, 64, 96, 3), generator=g, dtype=torch.uint8), 24)
    prompt = f"validation_videos.prompts=[{{text: 'a street', video: '{tmp_path / 'ref.mp4'}'}}]"
    train(compose_cfg("strategy=video_to_video", prompt, "validation_videos.num_prompts=0", "trainer.max_steps=1",
                      data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    cached = torch.load(tmp_path / "run" / "validation_prompts.pt", weights_only=True)
    assert cached["sources"][0]["reference_latents"]["latents"].shape == (1, 128, 3, 2, 3)  # downscale 2


def test_bad_prompts_are_refused_before_training_with_the_file_named(synthetic_root, tmp_path) -> None:
    missing = tmp_path / "nowhere.png"
    with pytest.raises(ConfigError, match=r"validation_videos\.prompts\[0\]\.image=.*nowhere\.png.*an existing file"):
        build_parts(compose_cfg(f"validation_videos.prompts=[{{text: a, image: '{missing}'}}]"))
    with pytest.raises(ConfigError, match=r"validation_videos\.prompts\[1\]"):
        build_parts(compose_cfg("validation_videos.prompts=['a',{image: x}]"))
    short = tmp_path / "short.mp4"  # 2 frames; the IC-LoRA reference needs 17
    write_clip(short, torch.zeros(2, 64, 96, 3, dtype=torch.uint8), 24)
    prompt = f"validation_videos.prompts=[{{text: 'a', video: '{short}'}}]"
    with pytest.raises(DataError, match=r"validation prompt 0: .*short\.mp4: decoded 2 frames, 17 needed"):
        train(compose_cfg("strategy=video_to_video", prompt, data_root=synthetic_root), tmp_path / "run")
    assert not (tmp_path / "run" / "lora.safetensors").exists()


def test_a_prompt_mistake_on_the_command_line_ends_in_one_line(tmp_path) -> None:
    args = [sys.executable, "train.py", "logger=none", f"hydra.run.dir={tmp_path}",
            f"validation_videos.prompts=[{{text: a, image: '{tmp_path / 'no.png'}'}}]"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "validation_videos.prompts[0].image" in done.stderr.strip().splitlines()[-1]
