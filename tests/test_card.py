"""The model card a completed run writes beside its weights: the run's own numbers, and a snippet that loads them."""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import compose_cfg, run_snippet
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, builds_ltx25
from ltxtune.training.card import MARKER, BaseFiles, pipelines_command
from ltxtune.training.loop import Trainer
from ltxtune.training.run import train


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, synthetic_root) -> Path:
    run_dir = tmp_path_factory.mktemp("card-run")
    cfg = compose_cfg("lora.rank=4", "lora.alpha=8", "validation_videos.num_prompts=1", data_root=synthetic_root)
    train(cfg, run_dir, {"model": "tiny", "strategy": "text_to_video", "optimizer": "adamw"})
    return run_dir


def test_card_holds_the_run_numbers_and_file_names(lora_run) -> None:
    card = (lora_run / "README.md").read_text()
    result = json.loads((lora_run / "result.json").read_text())
    last_val = [m for m in map(json.loads, (lora_run / "metrics.jsonl").read_text().splitlines()) if "val/loss" in m][
        -1
    ]
    assert card.startswith(MARKER) and "`lora.safetensors`" in card and "`model=tiny`" in card
    assert f"| `train/loss` | {result['train/loss']:.4f} |" in card
    assert f"| `val/loss` | {result['val/loss']:.4f} |" in card
    assert f"| `val/loss_sigma_0.5` | {last_val['val/loss_sigma_0.5']:.4f} |" in card
    assert "| steps | 4 (`trainer.max_steps=4`) |" in card and "| seed | 0 |" in card
    assert "rank 4, alpha 8" in card and "to_k, to_q, to_v, to_out.0" in card
    assert "| batch | 2 samples x 1 accumulation x 1 process |" in card
    assert "`strategy=text_to_video`" in card and "first_frame_p: `0.1`" in card
    # The held-out samples' captions (the synthetic dataset writes captions.json): 12 samples, the last 2 held out.
    assert "sample_0010.pt" in card and "sample_0011.pt" in card and "sample_0000.pt" not in card
    assert "![latent preview at step 4](samples/step_000004/preview.png)" in card
    assert (lora_run / "samples" / "step_000004" / "preview.png").is_file()
    assert "LoraLoaderModelOnly" in card


def test_card_lists_the_training_captions_with_a_count_and_the_users_validation_prompts(synthetic_root, tmp_path):
    prompts = "validation_videos.prompts=[a green kite over a hill,{text: a red ball rolls,image: %s}]"
    image = tmp_path / "ball.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(image)
    cfg = compose_cfg(
        "trainer.max_steps=1", "validation_videos.num_prompts=0", prompts % image, data_root=synthetic_root
    )
    train(cfg, tmp_path / "run")
    card = (tmp_path / "run" / "README.md").read_text()
    assert "Your validation prompts (`validation_videos.prompts`):" in card
    assert '- "a green kite over a hill"' in card and f'- "a red ball rolls" (image `{image}`)' in card
    # 12 synthetic samples, the last 2 held out: 10 train, their captions cycle through 4 texts (3, 3, 2, 2).
    assert "All 10 training samples have a caption (" in card and "), 4 distinct:" in card
    assert '- "a red ball bouncing on a wooden floor" (3 samples)' in card


def test_card_snippet_loads_the_lora_in_ltx_core(lora_run, monkeypatch) -> None:
    transformer = run_snippet((lora_run / "README.md").read_text(), lora_run, monkeypatch)
    lora = load_file(str(lora_run / "lora.safetensors"))
    base = load_file(str(lora_run / "tiny-base.safetensors"))
    name = "transformer_blocks.0.attn1.to_q"
    delta = lora[f"diffusion_model.{name}.lora_B.weight"] @ lora[f"diffusion_model.{name}.lora_A.weight"]
    assert delta.abs().max() > 1e-3, "the LoRA changed nothing: the test would prove nothing"
    fused = dict(transformer.named_parameters())[f"{name}.weight"].float()
    want = base[f"model.diffusion_model.{name}.weight"].float() + delta
    torch.testing.assert_close(fused, want, atol=2e-2, rtol=1e-2)  # ltx-core fuses in bf16


def test_full_finetune_card_loads_model_safetensors(synthetic_root, tmp_path, monkeypatch) -> None:
    train(compose_cfg("lora=none", "trainer.max_steps=2", "validation_videos.enabled=false", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    card = (tmp_path / "README.md").read_text()
    assert "`model.safetensors`" in card and "lora.safetensors" not in card and "Preview" not in card
    transformer = run_snippet(card, tmp_path, monkeypatch)
    saved = load_file(str(tmp_path / "model.safetensors"))
    key = "transformer_blocks.1.ff.net.2.weight"
    loaded = dict(transformer.named_parameters())[key]
    torch.testing.assert_close(loaded, saved[f"model.diffusion_model.{key}"].to(loaded.dtype))


def test_failed_run_leaves_no_card_not_even_an_earlier_runs(lora_run, synthetic_root, tmp_path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "README.md").write_text((lora_run / "README.md").read_text())  # an earlier run's card
    (run_dir / "result.json").write_text((lora_run / "result.json").read_text())

    def broken(self, *args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(Trainer, "fit", broken)
    cfg = compose_cfg("trainer.overwrite=true", "validation_videos.enabled=false", data_root=synthetic_root)
    with pytest.raises(RuntimeError):
        train(cfg, run_dir)
    assert json.loads((run_dir / "result.json").read_text())["status"] == "failed"
    assert not (run_dir / "README.md").exists()


def test_a_readme_that_is_no_card_is_left_alone(synthetic_root, tmp_path, capsys) -> None:
    (tmp_path / "README.md").write_text("# my notes\n")
    train(compose_cfg("trainer.max_steps=1", "validation_videos.enabled=false", data_root=synthetic_root), tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    assert "is not an ltxtune model card" in capsys.readouterr().out


class _Built(Exception):
    """What ltx-pipelines' CLI built and called its pipeline with, raised in place of generating a video."""


def run_cli(command: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The keyword arguments the installed ltx-pipelines' own ``main`` builds and calls its pipeline with from the
    card's ``command`` (from ``cwd``), the pipeline replaced by a recorder: its argument parsing, not a model."""
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[:2] == ["python", "-m"]
    module = importlib.import_module(argv[2])

    class Recorder:
        def __init__(self, **built: Any) -> None:
            self.built = built

        def __call__(self, **called: Any) -> None:
            raise _Built({**self.built, **called})

    name = "ICLoraPipeline" if argv[2].endswith(".ic_lora") else "TI2VidOneStagePipeline"
    monkeypatch.setattr(module, name, Recorder)
    monkeypatch.setattr(sys, "argv", argv[2:])
    monkeypatch.chdir(cwd)
    with pytest.raises(_Built) as built:
        module.main()
    return built.value.args[0]


def files(where: Path, *names: str) -> list[str]:
    """Empty files (ltx-pipelines 1.2 checks that each path exists; none is read here)."""
    for name in names:
        (where / name).touch()
    return [str(where / name) for name in names]


@pytest.mark.parametrize("ic_lora", [False, True], ids=["one_stage", "ic_lora"])
def test_card_command_parses_in_the_installed_ltx_pipelines(ic_lora, tmp_path, monkeypatch) -> None:
    """A single-file LTX-2 release and its Gemma directory, as the CLI of the ltx-pipelines that goes with the
    installed ltx-core takes them (1.2 predicts a length only with LTX-2.5's duration head: 121 frames here)."""
    checkpoint, upsampler, reference = files(tmp_path, "ltx-2.safetensors", "up.safetensors", "ref.mp4")
    (tmp_path / "gemma").mkdir()
    base = BaseFiles(checkpoint, str(tmp_path / "gemma"), checkpoint, checkpoint)
    strategy = "video_to_video.VideoToVideo" if ic_lora else "text_to_video.TextToVideo"
    command = pipelines_command(f"ltxtune.strategies.{strategy}", base, "lora.safetensors", "a red car")
    command = command.replace("/path/to/ltx-2-spatial-upscaler-x2-1.0.safetensors", upsampler)
    command = command.replace("/path/to/reference.mp4", reference)
    files(tmp_path, "lora.safetensors")
    args = run_cli(command, tmp_path, monkeypatch)
    assert args["prompt"] == "a red car" and [lora.path for lora in args["loras"]] == [
        str(tmp_path / "lora.safetensors")
    ]
    if builds_ltx25():
        paths = args["model_paths"]
        assert (paths.mode, paths.transformer_path, paths.text_encoder_path) == (
            "monolith",
            checkpoint,
            base.text_encoder,
        )
    else:
        key = "distilled_checkpoint_path" if ic_lora else "checkpoint_path"
        assert (args[key], args["gemma_root"]) == (checkpoint, base.text_encoder)
    assert args["num_frames"] == 121


@pytest.mark.skipif(not builds_ltx25(), reason=f"a split LTX-2.5 release needs ltx-core 1.2; {INSTALL_LTX_CORE_12}")
def test_card_command_names_a_split_ltx25_release_file_by_file(tmp_path, monkeypatch) -> None:
    """LTX-2.5's split release: the transformer, the packed text encoder and both VAE files, each with its own
    flag of ltx-pipelines 1.2 (no Gemma directory), and a length (the run knows no duration head file)."""
    names = ("transformer.safetensors", "text_encoder.safetensors", "vae.safetensors", "audio_vae.safetensors")
    transformer, text, video, audio = files(tmp_path, *names, "lora.safetensors")[:4]
    base = BaseFiles(transformer, text, video, audio, family="LTX-2.5")
    command = pipelines_command("ltxtune.strategies.text_to_video.TextToVideo", base, "lora.safetensors", "a red car")
    assert "--gemma-root" not in command and "--checkpoint-path" not in command
    paths = run_cli(command, tmp_path, monkeypatch)["model_paths"]
    assert paths.mode == "split"
    assert (paths.transformer_path, paths.text_encoder_path, paths.video_vae_path, paths.audio_vae_path) == (
        transformer,
        text,
        video,
        audio,
    )
    assert paths.embeddings_weight_paths == (transformer, text)  # the text projection is read from the packed file
