"""Validation sampling guided as LTX-2 inference guides: ltx-core's multimodal guider, STG, modality guidance."""

from __future__ import annotations

import pytest
import torch
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.guidance.perturbations import PerturbationType

from conftest import compose_cfg
from ltxtune.diffusion.guidance import Guidance
from ltxtune.diffusion.sampling import _denoise, _predict, sample
from ltxtune.errors import ConfigError
from ltxtune.evaluation.prompts import NEGATIVE_CACHE_FILE, empty_prompt
from ltxtune.evaluation.sampling import negative_context, start_inputs
from ltxtune.evaluation.settings import VideoSettings
from ltxtune.evaluation.videos import build_clips
from ltxtune.ltx_core_api import batched_perturbations, perturbation_keeps
from ltxtune.training.parts import build_parts
from test_sampling import render, setup

INFERENCE = {
    "video": {"cfg_scale": 3.0, "stg_scale": 1.0, "stg_blocks": [1], "rescale_scale": 0.7, "modality_scale": 3.0},
    "audio": {"cfg_scale": 7.0, "stg_scale": 1.0, "stg_blocks": [1], "rescale_scale": 0.7, "modality_scale": 3.0},
}


BOTH = ["video", "audio"]


def recording(model):
    """A forward hook that records each call's per-sample perturbations (what each pass skipped)."""
    calls = []

    def hook(module, args, kwargs, out):
        perturbations = kwargs["perturbations"]
        if perturbations is None:
            calls.append([])
            return
        keeps = {t: perturbation_keeps(perturbations, t, 1) for t in PerturbationType}
        samples = len(next(iter(keeps.values())))
        calls.append([tuple(t.name for t, keep in keeps.items() if not keep[i]) for i in range(samples)])

    return calls, model.register_forward_hook(hook, with_kwargs=True)


def test_inference_guidance_makes_the_four_passes_in_one_call_and_combines_them_with_ltx_cores_guider(
    synthetic_root,
) -> None:
    _, strategy, model, batches = setup(synthetic_root, "strategy.with_audio=true")
    one = batches[0].take(0)
    guidance, negative = Guidance.from_config(INFERENCE), empty_prompt(one.text)
    inputs = start_inputs(strategy, one, 0)
    calls, hook = recording(model)
    try:
        out = sample(model, inputs, 3, guidance, negative_context(inputs, negative))
    finally:
        hook.remove()
    # One forward per step, four samples: the prompt, the negative prompt, STG (self-attention skipped in
    # block 1 for both streams), modality isolation (both cross-attentions skipped).
    assert calls == [[(), (), ("SKIP_VIDEO_SELF_ATTN", "SKIP_AUDIO_SELF_ATTN"),
                      ("SKIP_A2V_CROSS_ATTN", "SKIP_V2A_CROSS_ATTN")]] * 3  # fmt: skip
    cfg_only = sample(model, inputs, 3, Guidance.cfg(3.0), negative_context(inputs, negative))
    assert not torch.allclose(out.video, cfg_only.video) and not torch.allclose(out.audio, cfg_only.audio)

    # The batched passes equal separate calls, and the step combines them as ltx-core's guider does.
    passes = {"cond": (inputs, guidance.perturbation("cond", BOTH)),
              "uncond_text": (negative_context(inputs, negative), guidance.perturbation("uncond_text", BOTH)),
              "uncond_perturbed": (inputs, guidance.perturbation("uncond_perturbed", BOTH)),
              "uncond_modality": (inputs, guidance.perturbation("uncond_modality", BOTH))}  # fmt: skip
    batched = _predict(model, passes)
    for kind, (given, perturbation) in passes.items():
        alone = _denoise(model, given, batched_perturbations([perturbation], model, given.video.latent))
        for name in ("video", "audio"):
            torch.testing.assert_close(batched[kind][name], alone[name], atol=1e-5, rtol=1e-5)
    params = MultiModalGuiderParams(cfg_scale=7.0, stg_scale=1.0, stg_blocks=[1], rescale_scale=0.7, modality_scale=3.0)
    expected = MultiModalGuider(params).calculate(*(batched[k]["audio"] for k in passes))
    assert torch.equal(guidance.guider("audio").calculate(*(batched[k]["audio"] for k in passes)), expected)


def test_cfg_alone_costs_two_predictions_and_skip_step_reuses_the_last_one(synthetic_root) -> None:
    _, strategy, model, batches = setup(synthetic_root)
    one = batches[0].take(0)
    inputs = start_inputs(strategy, one, 0)
    negative = negative_context(inputs, empty_prompt(one.text))
    calls, hook = recording(model)
    try:
        sample(model, inputs, 4, Guidance.from_config({"video": {"cfg_scale": 3.0}}), negative)
        plain = len(calls)
        skipping = Guidance.from_config({"video": {"cfg_scale": 3.0, "skip_step": 1}})
        sample(model, inputs, 4, skipping, negative)
    finally:
        hook.remove()
    assert plain == 4 and calls[0] == [(), ()]  # a video-only clip: no STG or modality pass
    assert len(calls) - plain == 2  # steps 0 and 2 predict; 1 and 3 reuse


def test_the_model_option_brings_inferences_sampling_and_bad_guidance_is_one_line(synthetic_root) -> None:
    tiny = compose_cfg(data_root=synthetic_root).validation_videos
    assert tiny.num_steps == 8 and tiny.guidance.video.cfg_scale == 3.0 and tiny.guidance.video.stg_scale == 0
    real = compose_cfg("model=ltx2", "model.checkpoint=x.safetensors", data_root=synthetic_root).validation_videos
    assert real.num_steps == "auto" and real.guidance.audio.cfg_scale == 7.0 and real.guidance.video.stg_blocks
    with pytest.raises(ConfigError, match=r"validation_videos.guidance.video.cfg="):
        build_parts(compose_cfg("+validation_videos.guidance.video.cfg=2", data_root=synthetic_root))
    with pytest.raises(ConfigError, match=r"validation_videos.guidance.audio.rescale_scale=1.5"):
        build_parts(compose_cfg("validation_videos.guidance.audio.rescale_scale=1.5", data_root=synthetic_root))
    _, strategy, model, batches = setup(synthetic_root)
    deep = VideoSettings(num_prompts=1, num_steps=1, guidance={"video": {"stg_scale": 1.0, "stg_blocks": [7]}})
    calls, hook = recording(model)
    try:
        render(deep, model, batches, strategy, 0, synthetic_root.parent / "deep")
    finally:
        hook.remove()
    assert calls == [[()]]  # block 7 of a 2-block model: STG is off and its pass not made (cfg_scale 1: off)


def test_a_negative_prompt_text_is_encoded_once_cached_and_used(synthetic_root, tmp_path) -> None:
    cfg, strategy, model, batches = setup(synthetic_root)
    videos = build_clips(VideoSettings(num_prompts=1, num_steps=2, negative_prompt="blurry, jittery, distorted",
                                       encoders=cfg.validation_videos.encoders), batches, tmp_path)  # fmt: skip
    conditions = batches[0].take(0).text
    features = videos.prompts.negative(conditions, lambda c: c)
    assert (tmp_path / NEGATIVE_CACHE_FILE).is_file()
    empty = empty_prompt(conditions)
    assert features.video_embeds.shape[-1] == empty.video_embeds.shape[-1]
    assert not torch.equal(features.video_embeds, empty.video_embeds[:, : features.video_embeds.shape[1]])
    written = videos(model, lambda c: c, batches, strategy, 0).files
    plain = render(VideoSettings(num_prompts=1, num_steps=2), model, batches, strategy, 1, tmp_path)
    assert written[0].read_bytes() != plain[0].read_bytes()
    with pytest.raises(ConfigError, match="negative_prompt"):
        VideoSettings(negative_prompt=3)


def test_stg_blocks_beyond_the_models_depth_are_named_before_the_first_step(synthetic_root, tmp_path, capsys):
    from ltxtune.training.run import train

    key = "validation_videos.guidance"
    cfg = compose_cfg(f"{key}.video.stg_scale=1", f"{key}.video.stg_blocks=[1,5]", f"{key}.audio.stg_scale=1",
                      f"{key}.audio.stg_blocks=[28]", data_root=synthetic_root)  # fmt: skip
    train(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "warning: validation_videos.guidance.video.stg_blocks=[1, 5]: the transformer has 2 blocks, so STG " \
           "perturbs only [1] (set block indices below 2)" in out  # fmt: skip
    assert "validation_videos.guidance.audio.stg_blocks=[28]: the transformer has 2 blocks, so STG is off" in out
