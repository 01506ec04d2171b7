"""The two loops the benchmark times: ltxtune's (``Trainer.train_step`` and what a run does after it each step)
and a bare PyTorch loop doing the same math on the same model and batches, without ltxtune around it."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ltxtune.data.batch import TextFeatures
from ltxtune.diffusion import flow
from ltxtune.diffusion.inputs import Modality
from ltxtune.diffusion.tokens import AudioTokens, VideoTokens
from ltxtune.model.adapters import trainable_parameters
from ltxtune.training.loop import Trainer
from ltxtune.training.optim import AdamW

Step = Callable[[], None]


def ltxtune_step(trainer: Trainer) -> Step:
    """One optimizer step as ``Trainer.train_steps`` takes it: data, forward, backward, clipping, the optimizer,
    the schedule and the step's metrics (logging, validation and checkpoints aside)."""

    def step() -> None:
        start = time.perf_counter()
        stats = trainer.train_step()
        trainer.scheduler.step()
        trainer.step_metrics(stats, time.perf_counter() - start)

    return step


def bare_step(trainer: Trainer, optimizer: AdamW, batches: int = 2) -> Step:
    """The same step in a plain loop: the trainer's model (its LoRA, checkpointing and compiled blocks), the
    first ``batches`` of its batches already on the device, the same noising, loss, clipping and AdamW."""
    model, settings = trainer.model, trainer.settings
    net, device = model.transformer, trainer.accelerator.device
    params = trainable_parameters(net)
    bare_optimizer = optimizer.build(params)
    held = [trainer.stream.next() for _ in range(batches)]
    generator = torch.Generator(device).manual_seed(settings.seed)
    autocast = settings.mixed_precision == "bf16"
    taken = [0]

    def step() -> None:
        batch = held[taken[0] % len(held)]
        taken[0] += 1
        text = TextFeatures.from_file(model.encode_text(batch.text.to_file()))
        video = VideoTokens.from_clip(batch.video_latents)
        audio = AudioTokens.from_clip(batch.audio_latents)
        sigma = trainer.sampler.sample_for(video.tokens, generator)
        noised_video = flow.noise_tokens(video.tokens, sigma, no_condition(video.tokens), generator)
        noised_audio = flow.noise_tokens(audio.tokens, sigma, no_condition(audio.tokens), generator)
        mask = text.attention_mask.long()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            video_pred, audio_pred = net(
                video=modality(noised_video, video.positions(), text.video_embeds, mask),
                audio=modality(noised_audio, audio.positions(), text.audio_embeds, mask),
                perturbations=None,
            )
        loss = flow.masked_loss(video_pred, noised_video.target, noised_video.loss_mask)
        loss = loss + flow.masked_loss(audio_pred, noised_audio.target, noised_audio.loss_mask)
        loss.mean().backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        bare_optimizer.step()
        bare_optimizer.zero_grad(set_to_none=True)

    return step


def no_condition(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` all False: every token is generated."""
    return torch.zeros(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def modality(noised: flow.NoisedTokens, positions: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> Modality:
    return Modality(
        latent=noised.latent,
        sigma=noised.sigma,
        timesteps=noised.timesteps,
        positions=positions,
        context=context,
        context_mask=mask,
    )
