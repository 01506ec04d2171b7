"""The user's validation prompts: text with an optional image, video or audio, encoded once with the configured
encoders and rendered beside (or instead of) held-out samples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from conftest import ROOT, SMALL_SYNTHETIC, compose_cfg
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


def test_an_ic_lora_prompts_video_is_its_reference_whatever_the_directory_is_called(synthetic_root, tmp_path) -> None:
    """With the references in my_refs/, the prompt's video is still the reference the clip is generated from:
    not encoded as the clip itself while the held-out sample's own reference stays."""
    build_parts(compose_cfg(data_root=synthetic_root)).data.prepare()
    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    (data / "reference_latents").rename(data / "my_refs")
    g = torch.Generator().manual_seed(1)
    write_clip(tmp_path / "ref.mp4", torch.randint(0, 255, (17, 64, 96, 3), generator=g, dtype=torch.uint8), 24)
    prompt = f"validation_videos.prompts=[{{text: 'a street', video: '{tmp_path / 'ref.mp4'}'}}]"
    renamed = ("strategy=video_to_video", "strategy.reference_latents_dir=my_refs")
    cfg = compose_cfg(*renamed, prompt, "validation_videos.num_prompts=0", "trainer.max_steps=1", data_root=data)
    train(cfg, tmp_path / "run")
    cached = torch.load(tmp_path / "run" / "validation_prompts.pt", weights_only=True)["sources"][0]
    assert cached["video_latents"]["latents"].abs().sum() == 0  # the clip itself is generated, not the video
    reference = cached["reference_latents"]["latents"]
    assert reference.shape == (1, 128, 3, 2, 3)  # the reference's size, downscale 2
    own = [torch.load(p, weights_only=True)["latents"] for p in sorted((data / "my_refs").glob("*.pt"))]
    assert not any(torch.equal(reference[0], latents) for latents in own)  # the prompt's video, no sample's


def test_a_custom_strategys_prompt_gets_its_image(synthetic_root, tmp_path) -> None:
    """A strategy of the user's own that reads video_latents: the prompt's image is its clip's first frame."""
    from test_custom_strategy import user_config_dir

    picture = image(tmp_path / "picture.mp4")
    search = f"hydra.searchpath=[file://{user_config_dir(tmp_path / 'conf')}]"
    prompt = f"validation_videos.prompts=[{{text: 'a red ball', image: '{picture}'}}]"
    train(compose_cfg(search, "strategy=next_frame", prompt, "validation_videos.num_prompts=0", "trainer.max_steps=1",
                      data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    cached = torch.load(tmp_path / "run" / "validation_prompts.pt", weights_only=True)
    latents = cached["sources"][0]["video_latents"]["latents"]
    assert latents[0, :, 0].abs().sum() > 0 and latents[0, :, 1:].abs().sum() == 0


def test_a_resumed_run_encodes_its_prompts_again_when_the_encoder_changed_and_says_so(
    synthetic_root, tmp_path, capsys
) -> None:
    """A resume keeps validation_prompts.pt, but its text encoder may differ (it is no part of the checkpoint's
    config facts): the prompts are encoded again with it, and the run says so; a resume with the same encoder
    uses the cache as it is."""
    prompts = ("validation_videos.prompts=['a red ball']", "validation_videos.num_prompts=0", "checkpoint.every=1")
    train(compose_cfg(*prompts, "trainer.max_steps=1", data_root=synthetic_root), tmp_path)
    first = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)["sources"][0]["text"]["video_embeds"]
    capsys.readouterr()

    def resume(steps: int, *changed: str) -> tuple[torch.Tensor, str]:
        overrides = (*prompts, f"trainer.max_steps={steps}", "checkpoint.resume=auto", *changed)
        train(compose_cfg(*overrides, data_root=synthetic_root), tmp_path)
        cached = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)
        return cached["sources"][0]["text"]["video_embeds"], capsys.readouterr().out

    same, said = resume(2)
    assert torch.equal(same, first) and "encoding again" not in said
    other, said = resume(3, "validation_videos.encoders.text.seed=7")
    assert not torch.equal(other, first)
    assert f"validation prompts: {tmp_path / 'validation_prompts.pt'} was encoded for other prompts or settings" in said


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


def sampled_inputs(monkeypatch) -> dict[int, list]:
    """Clip index -> the sampler's starting inputs of each validation's clip (conditions at timestep 0)."""
    from ltxtune.evaluation.videos import ValidationClips

    seen: dict[int, list] = {}
    original = ValidationClips.sample

    def spy(self, transformer, encode_text, strategy, one, index):
        clip = original(self, transformer, encode_text, strategy, one, index)
        seen.setdefault(index, []).append(clip.inputs)
        return clip

    monkeypatch.setattr(ValidationClips, "sample", spy)
    return seen


def plan(*overrides: str, data_root: Path) -> None:
    """Everything a run checks before the model is built (the dry run's checks)."""
    from ltxtune.training.plan import plan_run
    from ltxtune.training.run import compat_facts

    cfg = compose_cfg(*overrides, data_root=data_root)
    plan_run(build_parts(cfg), compat_facts(cfg), 1)


def test_a_text_prompt_in_an_i2v_run_generates_its_whole_clip(synthetic_root, tmp_path, monkeypatch) -> None:
    """i2v trained with the first frame half of the time: a prompt without an image starts from no first frame
    (no grey one), while the held-out sample beside it keeps its own."""
    from ltxtune.evaluation.sampling import condition_tokens

    seen = sampled_inputs(monkeypatch)
    train(compose_cfg("experiment=i2v", "validation_videos.prompts=['a red ball']", "validation_videos.num_prompts=1",
                      "trainer.max_steps=1", data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    prompt, held_out = seen[0], seen[1]
    assert len(prompt) == 2  # before the first step and at the end
    assert all(condition_tokens(inputs) == 0 for inputs in prompt)
    assert all(bool((inputs.video.timesteps > 0).all()) for inputs in prompt)
    assert all(condition_tokens(inputs) == 4 * 6 for inputs in held_out)  # its first latent frame, 4 x 6 cells


def test_a_prompts_image_is_given_where_training_gives_a_first_frame_rarely(synthetic_root, tmp_path, monkeypatch):
    """text_to_video gives the first frame to 10% of its samples (too rare for the held-out clips): a prompt
    that brings an image still gets it as its first frame, not dropped."""
    from ltxtune.evaluation.sampling import condition_tokens

    seen = sampled_inputs(monkeypatch)
    prompt = f"validation_videos.prompts=[{{text: 'a red ball', image: '{image(tmp_path / 'picture.mp4')}'}}]"
    train(compose_cfg(prompt, "validation_videos.num_prompts=1", "trainer.max_steps=1", data_root=synthetic_root),
          tmp_path / "run")  # fmt: skip
    assert [condition_tokens(inputs) for inputs in seen[0]] == [4 * 6, 4 * 6]  # its first latent frame
    assert [condition_tokens(inputs) for inputs in seen[1]] == [0, 0]  # the held-out sample: drawn, and rare


def test_a_text_prompt_is_refused_where_the_first_frame_is_always_given(tmp_path) -> None:
    args = [sys.executable, "train.py", "logger=none", f"hydra.run.dir={tmp_path}", "experiment=i2v",
            "strategy.video.conditions.0.probability=1", "validation_videos.prompts=['a red ball']",
            "trainer.max_steps=1", *SMALL_SYNTHETIC]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "validation_videos.prompts[0]='a red ball'" in last and "image: <file>" in last
    assert "strategy.video.conditions[0].probability below 1" in last
    assert not (tmp_path / "lora.safetensors").exists()


REFERENCE_HALF = (
    "strategy=flexible",
    "strategy.video.conditions=[{_target_: ltxtune.strategies.conditions.Reference, latents_dir: reference_latents,"
    " probability: 0.5}]",
)


def test_a_text_prompt_in_an_ic_lora_run_uses_no_reference(synthetic_root, tmp_path, monkeypatch) -> None:
    """Trained with the reference half of the time: a prompt without a video is generated from its text alone,
    with no reference tokens (no held-out sample's reference borrowed); the held-out sample keeps its own."""
    from ltxtune.evaluation.sampling import condition_tokens

    seen = sampled_inputs(monkeypatch)
    train(compose_cfg(*REFERENCE_HALF, "validation_videos.prompts=['a street']", "validation_videos.num_prompts=1",
                      "trainer.max_steps=1", data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    clip_tokens = 3 * 4 * 6
    for inputs in seen[0]:
        assert inputs.video.latent.shape[1] == clip_tokens and condition_tokens(inputs) == 0
    for inputs in seen[1]:
        assert inputs.video.latent.shape[1] > clip_tokens and condition_tokens(inputs) > 0


def test_a_text_prompt_is_refused_where_the_reference_is_always_given(synthetic_root) -> None:
    with pytest.raises(ConfigError, match=r"prompts\[0\]='a street'.*video: <file>.*always gives the video reference"):
        plan("experiment=v2v_ic_lora", "validation_videos.prompts=['a street']", data_root=synthetic_root)


@pytest.mark.parametrize(
    ("overrides", "entry", "refusal"),
    [
        pytest.param((), "{text: a, audio: 'FILE'}", r"prompts\[0\]\.audio=.*strategy TextToVideo has no audio track",
                     id="audio-for-video-only"),
        pytest.param(("experiment=t2v",), "{text: a, audio: 'FILE'}",
                     r"prompts\[0\]\.audio=.*TextToVideo takes nothing from an audio file", id="audio-it-generates"),
        pytest.param(("strategy=flexible",), "{text: a, image: 'FILE'}",
                     r"prompts\[0\]\.image=.*Flexible takes nothing from an image", id="image-for-plain-t2v"),
    ],
)  # fmt: skip
def test_media_a_strategy_cannot_use_is_refused_before_training(synthetic_root, tmp_path, overrides, entry, refusal):
    media = image(tmp_path / "media.mp4")
    with pytest.raises(ConfigError, match=r"validation_videos\." + refusal):
        plan(*overrides, f"validation_videos.prompts=[{entry.replace('FILE', str(media))}]", data_root=synthetic_root)


@pytest.mark.parametrize(
    ("experiment", "medium"), [("i2v", "image"), ("v2v_ic_lora", "video"), ("a2v", "audio")]
)  # fmt: skip
def test_a_corrupt_prompt_file_is_refused_before_training_naming_it(synthetic_root, tmp_path, experiment, medium):
    corrupt = tmp_path / f"broken.{ {'image': 'png', 'video': 'mp4', 'audio': 'wav'}[medium] }"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a picture" * 20)
    prompt = f"validation_videos.prompts=[{{text: a, {medium}: '{corrupt}'}}]"
    with pytest.raises(DataError, match=rf"validation prompt 0: .*{corrupt.name}: cannot be read as {medium}"):
        plan(f"experiment={experiment}", prompt, data_root=synthetic_root)


def test_cached_prompts_are_encoded_again_when_the_encoders_change(synthetic_root, tmp_path) -> None:
    """A resumed run with another text encoder renders its prompts with that encoder, not the cached features."""
    common = ("validation_videos.prompts=['a red ball']", "validation_videos.num_prompts=0", "checkpoint.every=1")
    train(compose_cfg(*common, "trainer.max_steps=2", data_root=synthetic_root), tmp_path)
    first = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)["sources"][0]["text"]
    resumed = ("trainer.max_steps=3", "checkpoint.resume=auto", "validation_videos.encoders.text.seed=3")
    train(compose_cfg(*common, *resumed, data_root=synthetic_root), tmp_path)
    again = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)["sources"][0]["text"]
    assert first.keys() == again.keys()
    assert not all(torch.equal(first[k], again[k]) for k in first if isinstance(first[k], torch.Tensor))


def clip_size(path: Path) -> tuple[int, int, int]:
    """A written clip's width, height and number of frames, as a player decodes them."""
    import av

    with av.open(str(path)) as container:
        frames = [frame for frame in container.decode(video=0)]
    return frames[0].width, frames[0].height, len(frames)


def test_a_prompt_with_its_own_size_renders_a_clip_of_that_size(synthetic_root, tmp_path) -> None:
    """The synthetic clips are 192x128, 17 frames: a prompt asking for 256x96, 9 frames gets a clip of that size
    (and a preview row of its grid), while a prompt without a size and the held-out sample keep theirs."""
    from PIL import Image

    from ltxtune.evaluation.previews import CELL_PIXELS, GAP_PIXELS

    prompts = "validation_videos.prompts=[{text: 'a red ball', width: 256, height: 96, frames: 9}, 'waves at dusk']"
    train(compose_cfg(prompts, "validation_videos.num_prompts=1", "trainer.max_steps=1", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    step = tmp_path / "samples" / "step_000001"
    assert clip_size(step / "prompt0.mp4") == (256, 96, 9)
    assert clip_size(step / "prompt1.mp4") == (192, 128, 17)
    assert clip_size(step / "prompt2.mp4") == (192, 128, 17)
    rows = [3, 4, 4]  # latent cells high: 96 / 32, then 128 / 32
    assert Image.open(step / "preview.png").height == sum(h * CELL_PIXELS + GAP_PIXELS for h in rows)


def test_an_audio_prompts_length_follows_its_frames(synthetic_root, tmp_path) -> None:
    """With sound (t2v with audio), 9 frames at 24 fps last 0.375 s: 9 audio latent steps, not the sample's 18."""
    prompts = "validation_videos.prompts=[{text: 'drums', frames: 9}]"
    train(compose_cfg("experiment=t2v", prompts, "validation_videos.num_prompts=0", "trainer.max_steps=1",
                      data_root=synthetic_root), tmp_path)  # fmt: skip
    cached = torch.load(tmp_path / "validation_prompts.pt", weights_only=True)["sources"][0]
    assert cached["video_latents"]["latents"].shape == (1, 128, 2, 4, 6)
    assert cached["audio_latents"]["latents"].shape[2] == 9
    assert clip_size(tmp_path / "samples" / "step_000001" / "prompt0.mp4") == (192, 128, 9)


def test_an_ic_lora_prompts_reference_keeps_its_scale_at_the_prompts_size(synthetic_root, tmp_path) -> None:
    """The references are half the clip's size: at 256x64 the prompt's video is encoded as a 4x1 reference."""
    g = torch.Generator().manual_seed(1)
    write_clip(tmp_path / "ref.mp4", torch.randint(0, 255, (17, 64, 96, 3), generator=g, dtype=torch.uint8), 24)
    prompt = (
        f"validation_videos.prompts=[{{text: 'a street', video: '{tmp_path / 'ref.mp4'}', width: 256, height: 64}}]"
    )
    train(compose_cfg("strategy=video_to_video", prompt, "validation_videos.num_prompts=0", "trainer.max_steps=1",
                      data_root=synthetic_root), tmp_path / "run")  # fmt: skip
    cached = torch.load(tmp_path / "run" / "validation_prompts.pt", weights_only=True)["sources"][0]
    assert cached["reference_latents"]["latents"].shape == (1, 128, 3, 1, 4)
    assert clip_size(tmp_path / "run" / "samples" / "step_000001" / "prompt0.mp4") == (256, 64, 17)


@pytest.mark.parametrize(
    ("entry", "refusal"),
    [
        ("{text: 'a red ball', width: 100}",
         r"prompts\[0\]\.width=100 .*multiple of 32 pixels.*the nearest: 96 and 128 \(prompt 'a red ball'\)"),
        ("{text: 'a red ball', height: 16}", r"prompts\[0\]\.height=16 .*the nearest: 32 \(prompt"),
        ("{text: 'a red ball', frames: 20}", r"prompts\[0\]\.frames=20 .*8k \+ 1 frames.*the nearest: 17 and 25"),
        ("{text: 'a red ball', frames: '17'}", r"prompts\[0\]\.frames='17' .*a whole number"),
    ],
)  # fmt: skip
def test_a_prompt_size_off_the_models_grid_is_refused_before_training(tmp_path, entry, refusal) -> None:
    with pytest.raises(ConfigError, match=r"validation_videos\." + refusal):
        build_parts(compose_cfg(f"validation_videos.prompts=[{entry}]"))


def test_a_bad_prompt_size_ends_the_command_in_one_line_before_training(tmp_path) -> None:
    args = [sys.executable, "train.py", "logger=none", f"hydra.run.dir={tmp_path}", *SMALL_SYNTHETIC,
            "validation_videos.prompts=[{text: 'a red ball', width: 200, frames: 9}]"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "validation_videos.prompts[0].width=200" in last and "192 and 224" in last and "'a red ball'" in last
    assert not (tmp_path / "samples").exists() and not (tmp_path / "lora.safetensors").exists()


def test_a_size_the_reference_cannot_follow_or_a_size_without_video_is_refused_before_training(
    synthetic_root, tmp_path
) -> None:
    """An IC-LoRA reference half the clip's size needs widths that are multiples of 64; an audio-only strategy
    renders no picture to size; extension keeps its first 2 latent frames, so a clip must have more."""
    write_clip(tmp_path / "ref.mp4", torch.zeros(17, 64, 96, 3, dtype=torch.uint8), 24)
    prompt = f"validation_videos.prompts=[{{text: 'a street', video: '{tmp_path / 'ref.mp4'}', width: 224}}]"
    refusal = r"validation_videos\.prompts\[0\]\.width=224 .*a multiple of 64: the IC-LoRA reference is 2 times smaller"
    with pytest.raises(ConfigError, match=refusal):
        plan("strategy=video_to_video", prompt, data_root=synthetic_root)
    with pytest.raises(ConfigError, match=r"validation_videos\.prompts\[0\]\.width=256 .*renders no video"):
        plan("experiment=t2a", "validation_videos.prompts=[{text: 'rain', width: 256}]", data_root=synthetic_root)
    extend = f"validation_videos.prompts=[{{text: 'a street', video: '{tmp_path / 'ref.mp4'}', frames: 9}}]"
    refusal = r"prompts\[0\]=\{'frames': 9\} .*Flexible can render.*temporal_boundary=2 is not allowed"
    with pytest.raises(ConfigError, match=refusal):  # extends 2 given latent frames: 9 frames are only 2
        plan("experiment=extend_forward", extend, data_root=synthetic_root)
