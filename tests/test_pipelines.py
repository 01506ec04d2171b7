"""A LoRA trained on an LTX-2 checkpoint plays in LTX-2's own inference package, ltx-pipelines (the release that
goes with the installed ltx-core: 1.0, or 1.2 for LTX-2.5): its pipelines are built as a user builds them (the
checkpoint file, a Gemma directory, the LoRA as ltx-pipelines takes LoRAs) and generate videos from a prompt.

Everything is tiny and random: the single-file checkpoint (``write_tiny_checkpoint(vaes=True)``: transformer,
text path, video VAE encoder and decoder, audio VAE decoder and vocoder) and the tiny Gemma 3. Two things differ
from a user's GPU run, both outside ltx-pipelines' own code: ltx-core hard-wires Gemma 3 12B's configuration
(the tiny one is substituted at the one place it is read, ``substitute_gemma_config``), and the pipelines call
``torch.cuda.synchronize()`` unconditionally, which fails without CUDA (a no-op here when there is none).
ltx-pipelines 1.2 takes the model's files as one ``ModelPaths`` and decodes frames as floats in [0, 1]
(``release_paths``, ``levels``); with ltx-core 1.2 an LTX-2.5 LoRA plays too (tiny LTX-2.5 release, tiny Gemma 4).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import ROOT, compose_cfg
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, builds_ltx25
from ltxtune.model.tiny import write_tiny_checkpoint
from ltxtune.model.tiny_gemma import gemma_config_from, write_tiny_gemma
from ltxtune.training.run import train

pytestmark = pytest.mark.slow

PROMPT = "a red car drives fast at night"
SIZE = ["--height", "64", "--width", "64", "--num-frames", "9", "--num-inference-steps", "3"]
LTX2_MODEL = ("model.caption_channels=32", "data.text_tokens=128")
# The tiny LTX-2.5 takes LTX-2.3's layout of text features: each stream's own width.
LTX25_MODEL = ("model.caption_channels=64", "model.audio_caption_channels=32", "data.text_tokens=128")


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gemma(tmp_path_factory.mktemp("gemma") / "gemma-3-tiny")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LTX-2 as one file, everything ltx-pipelines builds from a checkpoint."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("release") / "ltx-2-tiny.safetensors", vaes=True)


def train_lora(
    release: Path, run_dir: Path, data_root: Path, *overrides: str, model: tuple[str, ...] = LTX2_MODEL
) -> Path:
    """A few steps at a high learning rate on ``model=ltx2`` (the tiny release), so the LoRA is clearly non-zero."""
    cfg = compose_cfg(
        "model=ltx2",
        f"model.checkpoint={release}",
        *model,
        "model.dtype=float32",
        "trainer.max_steps=3",
        "optimizer.lr=0.05",
        "validation_videos.enabled=false",
        *overrides,
        data_root=data_root,
    )
    train(cfg, run_dir)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    return run_dir


def with_encoders(release: Path, gemma: Path) -> tuple[str, ...]:
    """The Gemma directory the card's command names: the validation prompts' encoders' (none are encoded here)."""
    return ("encoders@validation_videos.encoders=ltx2", f"validation_videos.encoders.checkpoint={release}",
            f"validation_videos.encoders.text_encoder_path={gemma}")  # fmt: skip


@pytest.fixture(scope="module")
def t2v_run(release, gemma, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("t2v")
    return train_lora(release, root / "run", root / "data", *with_encoders(release, gemma))


@pytest.fixture()
def cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: None)


def zeroed(lora: Path, where: Path) -> Path:
    """The same LoRA file with every ``lora_B`` zeroed (and its metadata kept): a LoRA that changes nothing."""
    from safetensors import safe_open

    with safe_open(str(lora), "pt") as f:
        metadata = f.metadata()
    tensors = {k: torch.zeros_like(v) if ".lora_B." in k else v for k, v in load_file(str(lora)).items()}
    save_file(tensors, str(where), metadata=metadata)
    return where


def loras(*paths: Path) -> list:
    """LoRAs as ltx-pipelines takes them (its ``--lora PATH STRENGTH``): path, strength, ltx-core's key map."""
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

    return [LoraPathStrengthAndSDOps(str(p), 1.0, LTXV_LORA_COMFY_RENAMING_MAP) for p in paths]


def release_paths(release: Path, gemma: Path, checkpoint_key: str = "checkpoint_path") -> dict[str, object]:
    """A pipeline's keyword arguments naming a single-file release and a Gemma directory: ltx-pipelines 1.0 takes
    the two paths (``checkpoint_key``: the IC-LoRA pipeline's is ``distilled_checkpoint_path``), 1.2 one
    ``ModelPaths``."""
    if not builds_ltx25():
        return {checkpoint_key: str(release), "gemma_root": str(gemma)}
    from ltx_pipelines.utils.model_paths import ModelPaths

    return {"model_paths": ModelPaths.from_monolith(str(release), str(gemma))}


def levels(frames: torch.Tensor) -> torch.Tensor:
    """Decoded frames as uint8 levels (ltx-pipelines 1.0 decodes uint8; 1.2 floats in [0, 1])."""
    if frames.dtype == torch.uint8:
        return frames
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8)


@torch.inference_mode()
def one_stage(release: Path, gemma: Path, lora_list: list) -> tuple[torch.Tensor, object]:
    """ltx-pipelines' one-stage text-to-video at 64x64, 9 frames, 3 steps, seed 7: the frames ``[9, 64, 64, 3]`` as
    the pipeline decodes them, and the audio."""
    from ltx_core.components.guiders import MultiModalGuiderParams
    from ltx_pipelines.ti2vid_one_stage import TI2VidOneStagePipeline

    with gemma_config_from(gemma):
        pipeline = TI2VidOneStagePipeline(**release_paths(release, gemma), loras=lora_list)
        video, audio, *_ = pipeline(  # 1.2 also returns its tiling
            prompt=PROMPT,
            negative_prompt="blurry",
            seed=7,
            height=64,
            width=64,
            num_frames=9,
            frame_rate=8.0,
            num_inference_steps=3,
            video_guider_params=MultiModalGuiderParams(cfg_scale=3.0),
            audio_guider_params=MultiModalGuiderParams(cfg_scale=3.0),
            images=[],
        )
        return torch.cat(list(video)), audio


def read_frames(path: Path) -> torch.Tensor:
    import av

    with av.open(str(path)) as container:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)])


def assert_one_stage_plays(lora: Path, release: Path, gemma: Path, where: Path) -> None:
    """The LoRA changes the one-stage pipeline's video (same seed), its zeroed copy does not, and the pipeline's
    own writer makes the video file a user gets."""
    base, _ = one_stage(release, gemma, [])
    again, _ = one_stage(release, gemma, [])
    played, audio = one_stage(release, gemma, loras(lora))
    silent, _ = one_stage(release, gemma, loras(zeroed(lora, where / "zero.safetensors")))
    assert levels(base).shape == (9, 64, 64, 3)
    assert torch.equal(base, again)  # the same seed gives the same video: a difference is the LoRA's
    changed = (levels(played).float() - levels(base).float()).abs().mean()
    assert changed > 1.0, f"the LoRA moved the frames by {changed:.3f} levels on average"
    assert torch.equal(silent, base)  # the same file with lora_B = 0 is the base model
    from ltx_pipelines.utils.media_io import encode_video

    out = where / "lora.mp4"
    encode_video(video=iter([played]), fps=8, audio=audio, output_path=str(out), video_chunks_number=1)
    assert read_frames(out).shape == (9, 64, 64, 3)


def test_one_stage_pipeline_plays_the_trained_lora(t2v_run, release, gemma, cpu_without_cuda, tmp_path) -> None:
    assert_one_stage_plays(t2v_run / "lora.safetensors", release, gemma, tmp_path)


def with_pipeline_site(gemma: Path, where: Path) -> dict[str, str]:
    """A subprocess environment whose ltx-core builds the tiny Gemma, and where CUDA's synchronize is a no-op
    when there is no CUDA (see the module docstring)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(
        "import torch\n"
        "from ltxtune.model.tiny_gemma import substitute_gemma_config\n"
        f"substitute_gemma_config({str(gemma)!r})\n"
        "if not torch.cuda.is_available():\n"
        "    torch.cuda.synchronize = lambda *args, **kwargs: None\n"
    )
    paths = [str(where), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def card_command(run_dir: Path) -> str:
    """The card's ltx-pipelines command, as written (a bash command over several lines)."""
    card = (run_dir / "README.md").read_text()
    return card.split("## Play it with ltx-pipelines", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].strip()


def test_card_command_generates_a_video_with_the_lora(t2v_run, release, gemma, tmp_path) -> None:
    """The card's command, run by bash as written from the run directory with a small size appended
    (ltx-pipelines' defaults are 121 frames at 768x512 and 40 steps), writes ``lora.mp4``; without its
    ``--lora`` line the video differs."""
    command = card_command(t2v_run)
    assert f"--checkpoint-path {release}" in command and f"--gemma-root {gemma}" in command
    # ltx-pipelines 1.2 predicts a clip's length with LTX-2.5's duration head, which LTX-2 has not.
    assert ("--num-frames 121" in command) == builds_ltx25()
    assert_card_command_plays(t2v_run, gemma, tmp_path)


def assert_card_command_plays(run: Path, gemma: Path, tmp_path: Path) -> None:
    """The card's one-stage command, run by bash with ``SIZE`` appended, writes a video its ``--lora`` changes."""
    command = card_command(run)
    assert command.startswith("python -m ltx_pipelines.ti2vid_one_stage")
    lora_line = "  --lora lora.safetensors 1.0 \\\n"
    assert lora_line in command
    env = with_pipeline_site(gemma, tmp_path / "site")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])  # `python` is this one
    videos = {}
    for name, text in (("lora", command), ("base", command.replace(lora_line, ""))):
        proc = subprocess.run(
            ["bash", "-c", f"{text} {shlex.join(SIZE)}"], cwd=run, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        videos[name] = read_frames((run / "lora.mp4").rename(tmp_path / f"{name}.mp4"))
    assert videos["lora"].shape == (9, 64, 64, 3)
    assert (videos["lora"].float() - videos["base"].float()).abs().mean() > 1.0


def write_reference(path: Path, frames: int = 9, size: int = 64) -> Path:
    """A small h264 clip, a bright bar moving right: the IC-LoRA's reference video."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.zeros((size, size, 3), np.uint8)
            pixels[:, i * 5 : i * 5 + 16] = 220
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return path


@torch.inference_mode()
def ic_lora(release: Path, upsampler: Path, gemma: Path, reference: Path, lora_list: list) -> torch.Tensor:
    """ltx-pipelines' IC-LoRA pipeline, both stages (64x64 with the LoRA and the reference, then the upsampler
    and the refinement at 128x128), 9 frames, seed 7: uint8 levels ``[9, 128, 128, 3]``."""
    from ltx_pipelines.ic_lora import ICLoraPipeline

    with gemma_config_from(gemma):
        pipeline = ICLoraPipeline(
            **release_paths(release, gemma, "distilled_checkpoint_path"),
            spatial_upsampler_path=str(upsampler),
            loras=lora_list,
        )
        video, *_ = pipeline(
            prompt=PROMPT, seed=7, height=128, width=128, num_frames=9, frame_rate=8.0, images=[],
            video_conditioning=[(str(reference), 1.0)],
        )  # fmt: skip
        return levels(torch.cat(list(video)))


def test_ic_lora_pipeline_plays_the_trained_ic_lora(release, gemma, cpu_without_cuda, tmp_path) -> None:
    """An IC-LoRA (``experiment=v2v_ic_lora``) in ltx-pipelines' two-stage IC-LoRA pipeline with a reference
    video; its second stage takes a tiny spatial upsampler (``write_tiny_upsampler``) in LTX-2's layout. The tiny
    release stands for the distilled checkpoint (the pipeline reads the same layout)."""
    from ltxtune.model.tiny import write_tiny_upsampler

    run = train_lora(release, tmp_path / "run", tmp_path / "data", "experiment=v2v_ic_lora")
    lora = run / "lora.safetensors"
    assert any(".ff.net." in k for k in load_file(str(lora)))  # an IC-LoRA: the feed-forward layers too
    upsampler = write_tiny_upsampler(tmp_path / "upsampler.safetensors")
    reference = write_reference(tmp_path / "reference.mp4")
    base = ic_lora(release, upsampler, gemma, reference, [])
    played = ic_lora(release, upsampler, gemma, reference, loras(lora))
    silent = ic_lora(release, upsampler, gemma, reference, loras(zeroed(lora, tmp_path / "zero.safetensors")))
    assert base.shape == (9, 128, 128, 3)
    changed = (played.float() - base.float()).abs().mean()
    assert changed > 1.0, f"the IC-LoRA moved the frames by {changed:.3f} levels on average"
    assert torch.equal(silent, base)


needs_ltx_core_12 = pytest.mark.skipif(
    not builds_ltx25(),
    reason=f"LTX-2.5 and ltx-pipelines 1.2 need ltx-core 1.2 (installed: 1.0); {INSTALL_LTX_CORE_12}",
)


@needs_ltx_core_12
def test_ltx25_lora_plays_in_ltx_pipelines_12(cpu_without_cuda, tmp_path) -> None:
    """A LoRA trained on the tiny LTX-2.5 release (transformer, text path and duration head, both VAEs and the
    vocoder in one file; Gemma 4 beside it) changes ltx-pipelines 1.2's one-stage video, and the card's command
    plays it: the 2.5 file and the Gemma 4 directory, the length left to the duration head."""
    from ltxtune.model.tiny_gemma import write_tiny_gemma4

    release = write_tiny_checkpoint(tmp_path / "ltx-2.5-tiny.safetensors", ltx25=True, vaes=True)
    gemma = write_tiny_gemma4(tmp_path / "gemma-4-tiny")
    run = train_lora(release, tmp_path / "run", tmp_path / "data", *with_encoders(release, gemma), model=LTX25_MODEL)
    assert "# LoRA of LTX-2.5: " in (run / "README.md").read_text()
    assert_one_stage_plays(run / "lora.safetensors", release, gemma, tmp_path)
    command = card_command(run)
    assert f"--checkpoint-path {release}" in command and f"--gemma-root {gemma}" in command
    assert "--num-frames" not in command
    assert_card_command_plays(run, gemma, tmp_path)
