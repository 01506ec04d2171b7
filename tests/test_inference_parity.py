"""Validation clips are what inference makes: ltxtune's validation sampler against ltx-pipelines' own loop.

ltx-pipelines' one-stage text/image-to-video pipeline composes ltx-core's LTX2Scheduler, its multimodal
guider factory, its Euler step and its own denoising loop (``denoise_audio_video`` ->
``euler_denoising_loop`` -> ``multi_modal_guider_factory_denoising_func``). Building the whole pipeline needs
Gemma and the VAEs; the same helpers are called here as its ``__call__`` calls them, with a tiny checkpoint
in the real layout (its text connectors included), the starting noise the validation sampler drew, and the
same prompt features, steps and guidance. ltx-pipelines 1.2 (with ltx-core 1.2) runs that loop as a
``DiffusionStage`` with a ``FactoryGuidedDenoiser``, built here from the same checkpoint (in float32).

Tolerance: both run in float32 on the CPU, and the only difference left is how the guidance passes are
batched (ltxtune joins them into one forward, the pipeline makes one call per pass), which moves the last
bits of a matmul. Measured: about 1e-7 relative per step, below 1e-6 after the steps here, so 1e-5 relative
leaves room while any real difference (a schedule, a perturbed stream, a missing track) is 1e-2 or more.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltxtune.data.batch import Batch, Clip, TextFeatures
from ltxtune.diffusion.guidance import Guidance
from ltxtune.evaluation.sampling import ClipSampler
from ltxtune.ltx_core_api import builds_ltx25
from ltxtune.strategies.text_to_video import TextToVideo

pipelines = pytest.importorskip("ltx_pipelines", reason="pip install -e '.[inference]' (ltx-pipelines)")

CPU = torch.device("cpu")
TOLERANCE = 1e-5  # relative L2 of the final latents (see the module docstring)
STEPS = 6
FRAMES, HEIGHT, WIDTH = 3, 2, 3  # latent grid: 17 frames of 96x64 pixels, 18 tokens

INFERENCE = {  # ltx-pipelines' defaults, STG on block 1 of the two
    "video": {"cfg_scale": 3.0, "stg_scale": 1.0, "stg_blocks": [1], "rescale_scale": 0.7, "modality_scale": 3.0},
    "audio": {"cfg_scale": 7.0, "stg_scale": 1.0, "stg_blocks": [1], "rescale_scale": 0.7, "modality_scale": 3.0},
}
ONE_STREAM_STG = {  # STG blocks listed for both streams, audio's scale 0; audio predicts every other step
    "video": {**INFERENCE["video"], "stg_blocks": [0]},
    "audio": {**INFERENCE["audio"], "stg_scale": 0.0, "skip_step": 1},
}
VIDEO_SKIPS = {"video": {**INFERENCE["video"], "skip_step": 2}, "audio": INFERENCE["audio"]}


def text_features(seed: int, words: int) -> dict[str, torch.Tensor]:
    """Stored text features as Gemma's feature extractor leaves them: 128 tokens (the connectors' registers),
    left-padded, ``words`` of them real."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 128, dtype=torch.long)
    mask[:, -words:] = 1
    return {
        "video_prompt_embeds": torch.randn(1, 128, 32, generator=g) * mask.unsqueeze(-1),
        "audio_prompt_embeds": torch.randn(1, 128, 32, generator=g) * mask.unsqueeze(-1),
        "prompt_attention_mask": mask,
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ltxtune.model.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("parity") / "ltx2.safetensors", seed=3)


@pytest.fixture(scope="module")
def model(checkpoint: Path):
    from ltxtune.model.ltx2 import LTX2Checkpoint

    return LTX2Checkpoint(str(checkpoint), dtype="float32", caption_channels=32).build(0, CPU)


def float32_copy(checkpoint: Path) -> Path:
    """``checkpoint`` with float32 weights (the same values): ltx-pipelines 1.2's stage builds the transformer in
    the stored dtype."""
    path = checkpoint.with_name("float32.safetensors")
    if not path.exists():
        with safe_open(str(checkpoint), "pt") as f:
            tensors, meta = {k: f.get_tensor(k).float() for k in f.keys()}, f.metadata()  # noqa: SIM118
        save_file(tensors, str(path), metadata=meta)
    return path


def pipeline_latents(transformer, clip, prompt: TextFeatures, negative: TextFeatures, guidance: dict, first_frame):
    """The one-stage pipeline's denoising (``TI2VidOneStagePipeline.__call__`` after the encoders), started
    from the noise the validation sampler drew. Returns the video latents ``[1, 128, F, H, W]``."""
    from ltx_core.components.diffusion_steps import EulerDiffusionStep
    from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
    from ltx_core.model.transformer.model import X0Model
    from ltx_core.types import VideoPixelShape
    from ltx_pipelines.utils.helpers import denoise_audio_video, multi_modal_guider_factory_denoising_func
    from ltx_pipelines.utils.samplers import euler_denoising_loop
    from ltx_pipelines.utils.types import PipelineComponents

    noises = [clip.inputs.video.latent, clip.inputs.audio.latent]

    def noiser(state, noise_scale: float = 1.0):  # GaussianNoiser with the sampler's draw: video, then audio
        mask = state.denoise_mask * noise_scale
        return replace(state, latent=noises.pop(0) * mask + state.latent * (1 - mask))

    shape = VideoPixelShape(batch=1, frames=8 * (FRAMES - 1) + 1, width=32 * WIDTH, height=32 * HEIGHT, fps=24.0)
    conditionings = [] if first_frame is None else [VideoConditionByLatentIndex(first_frame, 1.0, 0)]
    sigmas = LTX2Scheduler().execute(steps=STEPS).to(dtype=torch.float32)
    factories = {
        name: create_multimodal_guider_factory(
            params=MultiModalGuiderParams(**guidance[name]),
            negative_context=negative.video_embeds if name == "video" else negative.audio_embeds,
        )
        for name in ("video", "audio")
    }

    def loop(sigmas, video_state, audio_state, stepper):
        denoise = multi_modal_guider_factory_denoising_func(
            video_guider_factory=factories["video"],
            audio_guider_factory=factories["audio"],
            v_context=prompt.video_embeds,
            a_context=prompt.audio_embeds,
            transformer=X0Model(transformer),
        )
        return euler_denoising_loop(sigmas, video_state, audio_state, stepper, denoise)

    video, _ = denoise_audio_video(
        output_shape=shape,
        conditionings=conditionings,
        noiser=noiser,
        sigmas=sigmas,
        stepper=EulerDiffusionStep(),
        denoising_loop_fn=loop,
        components=PipelineComponents(dtype=torch.float32, device=CPU),
        dtype=torch.float32,
        device=CPU,
    )
    return video.latent


def stage_latents(checkpoint: Path, clip, prompt: TextFeatures, negative: TextFeatures, guidance: dict, first_frame):
    """ltx-pipelines 1.2's one-stage denoising (``TI2VidOneStagePipeline.__call__`` after the encoders: its
    ``DiffusionStage`` with the ``FactoryGuidedDenoiser``), built from ``checkpoint`` in float32 and started from
    the noise the validation sampler drew. Returns the video latents ``[1, 128, F, H, W]``."""
    from ltx_core.components.guiders import MultiModalGuiderParams, create_multimodal_guider_factory
    from ltx_core.components.schedulers import LTX2Scheduler
    from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex
    from ltx_pipelines.utils.blocks import DiffusionStage
    from ltx_pipelines.utils.denoisers import FactoryGuidedDenoiser
    from ltx_pipelines.utils.types import ModalitySpec

    noises = [clip.inputs.video.latent, clip.inputs.audio.latent]

    def noiser(state, noise_scale: float = 1.0):  # GaussianNoiser with the sampler's draw: video, then audio
        mask = state.denoise_mask * noise_scale  # 1.2's conditionings set the clean latent alone
        return replace(state, latent=noises.pop(0) * mask + state.clean_latent * (1 - mask))

    factories = {
        name: create_multimodal_guider_factory(
            params=MultiModalGuiderParams(**guidance[name]),
            negative_context=negative.video_embeds if name == "video" else negative.audio_embeds,
        )
        for name in ("video", "audio")
    }
    conditionings = [] if first_frame is None else [VideoConditionByLatentIndex(first_frame, 1.0, 0)]
    stage = DiffusionStage.from_checkpoint(str(float32_copy(checkpoint)), dtype=torch.float32, device=CPU)
    video, _ = stage(
        denoiser=FactoryGuidedDenoiser(
            v_context=prompt.video_embeds,
            a_context=prompt.audio_embeds,
            video_guider_factory=factories["video"],
            audio_guider_factory=factories["audio"],
        ),
        sigmas=LTX2Scheduler().execute(steps=STEPS).to(dtype=torch.float32),
        noiser=noiser,
        width=32 * WIDTH,
        height=32 * HEIGHT,
        frames=8 * (FRAMES - 1) + 1,
        fps=24.0,
        video=ModalitySpec(context=prompt.video_embeds, conditionings=conditionings),
        audio=ModalitySpec(context=prompt.audio_embeds),
    )
    return video.latent


@pytest.mark.parametrize(
    ("first_frame_p", "with_audio", "guidance"),
    [(0.0, False, INFERENCE), (1.0, False, ONE_STREAM_STG), (0.0, True, VIDEO_SKIPS)],
    ids=["t2v-video-only", "i2v-stg-on-one-stream-audio-skips", "t2v-with-audio-video-skips"],
)
def test_validation_clips_match_ltx_pipelines_denoising(checkpoint, model, first_frame_p, with_audio, guidance) -> None:
    g = torch.Generator().manual_seed(7)
    latents = torch.randn(1, 128, FRAMES, HEIGHT, WIDTH, generator=g)
    stored = text_features(1, words=9)
    audio = None
    if with_audio:  # the clip's own track: 17 frames at 24 fps are 18 audio latent steps
        audio = Clip(torch.randn(1, 8, 18, 16, generator=g))
    batch = Batch(
        ("clip",),
        TextFeatures.from_file(model.encode_text(stored)),
        video_latents=Clip(latents, torch.tensor([24.0])),
        audio_latents=audio,
    )
    negative = TextFeatures.from_file(model.encode_text(text_features(2, words=40)))
    sampler = ClipSampler(STEPS, Guidance.from_config(guidance), seed=5)
    clip = sampler(model.transformer, TextToVideo(first_frame_p, with_audio=with_audio), batch, 0, negative)
    ours = clip.grid.latents(clip.sampled.video)

    first_frame = latents[:, :, :1] if first_frame_p == 1.0 else None
    if builds_ltx25():  # ltx-pipelines 1.2, which goes with ltx-core 1.2, runs the same loop as a stage
        theirs = stage_latents(checkpoint, clip, batch.text, negative, guidance, first_frame)
    else:
        theirs = pipeline_latents(model.transformer, clip, batch.text, negative, guidance, first_frame)
    difference = ((ours - theirs).norm() / theirs.norm()).item()
    assert difference < TOLERANCE, f"validation latents differ from ltx-pipelines' by {difference:.2e} (relative L2)"
    if first_frame is not None:  # the given frame is kept exactly, as the pipeline keeps it
        assert torch.equal(ours[:, :, :1], first_frame)
