"""Validation clips sampled with inference's defaults: the negative prompt, the steps and STG block of the
checkpoint's version, and the audio track inference denoises beside every video."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import compose_cfg
from ltxtune.diffusion.guidance import Guidance
from ltxtune.evaluation.prompts import Prompts, empty_prompt
from ltxtune.evaluation.sampling import ClipSampler
from ltxtune.evaluation.videos import build_clips
from ltxtune.model.tiny import write_tiny_checkpoint
from ltxtune.training.parts import build_parts
from test_sampling import setup


def test_clips_guide_against_inferences_default_negative_prompt(synthetic_root, tmp_path) -> None:
    constants = pytest.importorskip("ltx_pipelines.utils.constants", reason="pip install -e '.[inference]'")
    cfg, _, _, batches = setup(synthetic_root)
    videos = instantiate(cfg.validation_videos)
    assert videos.negative_prompt == constants.DEFAULT_NEGATIVE_PROMPT
    text = batches[0].take(0).text
    negative = build_clips(videos, batches, tmp_path).prompts.negative(text, lambda c: c)
    expected = instantiate(cfg.validation_videos.encoders.text).encode(constants.DEFAULT_NEGATIVE_PROMPT).video
    n = min(expected.shape[0], text.video_embeds.shape[1])  # as long as the sample's features, left-padded
    assert negative.video_embeds.shape == text.video_embeds.shape
    assert torch.equal(negative.video_embeds[0, -n:], expected[-n:]) and expected.abs().sum() > 0


def test_a_negative_prompt_the_text_encoder_cannot_encode_for_the_model_is_the_empty_prompt_with_a_warning(
    synthetic_root, tmp_path, capsys
) -> None:
    cfg, _, _, batches = setup(synthetic_root)
    narrow = {**cfg.validation_videos.encoders, "text": {**cfg.validation_videos.encoders.text, "dim": 16}}
    text = batches[0].take(0).text  # 32 wide: the tiny model's
    negative = Prompts([], narrow, "blurry", None, tmp_path).negative(text, lambda c: c)
    assert torch.equal(negative.video_embeds, empty_prompt(text).video_embeds)
    out = capsys.readouterr().out
    assert "warning: validation_videos.negative_prompt: the encoders' text encoder gives 16-wide features and " \
           "the model takes 32: the clips use the empty prompt" in out  # fmt: skip


@pytest.mark.parametrize(
    ("ltx23", "model_version", "steps", "block"),
    [
        (False, None, 40, 29),
        (True, None, 30, 28),
        (False, "2.3.0", 30, 28),
        (True, "2.4-rc1", 30, 28),
        (True, "2.5.0", 30, 28),
    ],
    ids=["ltx2", "ltx23-architecture", "ltx23-metadata", "ltx24-metadata", "ltx25-metadata"],
)
def test_steps_and_stg_block_follow_the_checkpoints_version(tmp_path, ltx23, model_version, steps, block) -> None:
    path = write_tiny_checkpoint(tmp_path / "model.safetensors", ltx23=ltx23)
    if model_version is not None:  # as a release records it (ltx-pipelines reads this first)
        with safe_open(str(path), "pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118
        save_file(tensors, str(path), metadata={**meta, "model_version": model_version})
    videos = build_parts(compose_cfg("model=ltx2", f"model.checkpoint={path}")).validation_videos
    assert videos.num_steps == steps
    assert videos.guidance_params().video.stg_blocks == [block] == videos.guidance_params().audio.stg_blocks
    explicit = build_parts(
        compose_cfg("model=ltx2", f"model.checkpoint={path}", "validation_videos.num_steps=12")
    ).validation_videos
    assert explicit.num_steps == 12  # a value of the user's stays
    assert explicit.guidance_params().video.stg_blocks == [block]


def test_video_only_clips_are_denoised_beside_an_audio_track_as_inference_does(synthetic_root) -> None:
    from ltxtune.evaluation.sampling import audio_steps

    _, strategy, model, batches = setup(synthetic_root)  # text_to_video without audio
    one = batches[0].take(0)
    assert one.text.audio_embeds is not None  # held-out samples keep their audio text features
    seen = []
    hook = model.register_forward_hook(lambda m, a, kw, out: seen.append(kw["audio"]), with_kwargs=True)
    try:
        clip = ClipSampler(2, Guidance.cfg(3.0), 0)(model, strategy, one, 0, empty_prompt(one.text))
    finally:
        hook.remove()
    assert len(seen) == 2 and all(a is not None and a.latent.shape[1] == audio_steps(clip.grid) for a in seen)
    assert clip.sampled.audio is None and clip.sampled.video is not None  # the mode renders no sound


def test_one_function_names_every_release_from_metadata_or_architecture() -> None:
    from ltxtune.ltx_core_api import LTX25_TRANSFORMER_FLAGS, model_family

    ltx23 = {"transformer": {"caption_proj_before_connector": True}}
    assert model_family({"transformer": {}}) == "LTX-2"
    assert model_family(ltx23) == "LTX-2.3"
    assert model_family({"transformer": {**ltx23["transformer"], **LTX25_TRANSFORMER_FLAGS}}) == "LTX-2.5"
    assert model_family(ltx23, {"model_version": "2.5.0"}) == "LTX-2.5"  # the metadata first, as ltx-pipelines
    assert model_family({"transformer": {}}, {"model_version": "2.3.1"}) == "LTX-2.3"
    assert model_family(ltx23, {"model_version": "2.0"}) == "LTX-2"
