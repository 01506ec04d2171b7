"""A denoising loop from ltx-core's parts: the LTX-2 sigma schedule, Euler steps, ltx-core's multimodal guider.

``sample`` denoises the tokens of ``ModelInputs`` that have a non-zero timestep and keeps the others (a first
frame, a reference clip, the kept region of a mask, a frozen modality: clean at timestep 0) as they are, so
inputs prepared the way a strategy trains are sampled the way it was trained (``ltxtune.evaluation.sampling``
prepares them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import torch
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.guidance.perturbations import BatchedPerturbationConfig, PerturbationConfig
from ltx_core.utils import to_denoised
from torch import Tensor, nn

from ltxtune.diffusion.guidance import COND, ISOLATED, PERTURBED, TEXT, Guidance
from ltxtune.diffusion.inputs import MODALITIES, Modality, ModelInputs
from ltxtune.ltx_core_api import batched_perturbations


@dataclass(frozen=True)
class Sampled:
    """Denoised token sequences ``[B, T, 128]`` as the model saw them (references and conditions included).

    ``None`` for a modality the inputs do not have; a frozen modality comes back unchanged.
    """

    video: Tensor | None
    audio: Tensor | None


def sigma_schedule(num_steps: int, tokens: int) -> Tensor:
    """LTX-2's schedule ``[num_steps + 1]`` from 1 to 0, shifted for a sequence of ``tokens`` tokens."""
    # The scheduler reads the token count from a latent's shape [B, C, ...]: a meta tensor carries it for free.
    return LTX2Scheduler().execute(steps=num_steps, latent=torch.empty(1, 1, tokens, device="meta"))


def _at_sigma(modality: Modality, latent: Tensor, free: Tensor, sigma: Tensor) -> Modality:
    """The generated modality at noise level ``sigma``: free tokens at ``sigma``, given tokens at 0."""
    b = latent.shape[0]
    return replace(
        modality,
        latent=latent,
        sigma=sigma.expand(b).to(modality.sigma.dtype),
        timesteps=torch.where(free, sigma.to(modality.timesteps.dtype), torch.zeros_like(modality.timesteps)),
    )


def _cat(parts: list[Modality]) -> Modality:
    """Modalities as one batch ``[k*B, ...]``."""
    names = [f.name for f in fields(parts[0]) if isinstance(getattr(parts[0], f.name), Tensor)]
    return replace(parts[0], **{k: torch.cat([getattr(m, k) for m in parts]) for k in names})


def _predict(
    model: nn.Module, passes: Mapping[str, tuple[ModelInputs, PerturbationConfig]]
) -> dict[str, dict[str, Tensor]]:
    """The clean estimates of every pass (``{pass: {modality: x0}}``), in one forward of ``k*B`` samples when
    the passes' text lengths match (ltx-core applies each sample's perturbations in the same call)."""
    items = list(passes.items())
    first = items[0][1][0]
    same = all(
        s.modality.context.shape == inputs.stream(s.name).modality.context.shape
        for _, (inputs, _) in items
        for s in first.streams()
    )
    if not same or len(items) == 1:
        out = {}
        for kind, (inputs, perturbation) in items:
            b = inputs.streams()[0].modality.latent.shape[0]
            out[kind] = _denoise(
                model,
                inputs,
                batched_perturbations([perturbation] * b, model, inputs.streams()[0].modality.latent),
            )
        return out
    b = first.streams()[0].modality.latent.shape[0]
    joined = first.with_modalities(
        {s.name: _cat([inputs.stream(s.name).modality for _, (inputs, _) in items]) for s in first.streams()}
    )
    latent = first.streams()[0].modality.latent
    perturbations = batched_perturbations([p for _, (_, p) in items for _ in range(b)], model, latent)
    both = _denoise(model, joined, perturbations)
    split = {n: d.split(b) for n, d in both.items()}
    return {kind: {n: parts[k] for n, parts in split.items()} for k, (kind, _) in enumerate(items)}


def _denoise(
    model: nn.Module, inputs: ModelInputs, perturbations: BatchedPerturbationConfig | None = None
) -> dict[str, Tensor]:
    """The model's clean estimates ``x0 = x - t * v`` per token, for both modalities (ltx-core's ``X0Model``)."""
    predicted = model(video=inputs.video, audio=inputs.audio, perturbations=perturbations)
    velocities = dict(zip(MODALITIES, predicted, strict=True))
    out = {}
    for stream in inputs.streams():
        if (velocity := velocities[stream.name]) is not None:
            m = stream.modality
            out[stream.name] = to_denoised(m.latent, velocity, m.timesteps.unsqueeze(-1))
    return out


@torch.no_grad()
def sample(
    model: nn.Module,
    inputs: ModelInputs,
    num_steps: int,
    guidance: Guidance | None = None,
    negative: ModelInputs | None = None,
    schedule_tokens: int | None = None,
) -> Sampled:
    """Denoise ``inputs`` (noise at sigma 1 where generated) in ``num_steps`` Euler steps, guided as inference guides.

    A modality with a target is generated: its tokens with a non-zero timestep start from their latent
    (noise at sigma 1) and are denoised; its timestep-0 tokens stay exactly as given. A modality without a
    target is a frozen condition, fed unchanged at every step. ``guidance`` holds each generated modality's
    guider parameters (``ltxtune.diffusion.guidance``; none = the model's plain prediction). ``negative``:
    inputs whose streams attend to the negative prompt (only their text context is read); classifier-free
    guidance needs it.
    ``schedule_tokens`` sets the schedule's shift (the generated clip's token count; default: the first
    generated sequence's length, prepended references included).
    """
    guidance = guidance or Guidance()
    generated = {s.name: s.modality for s in inputs.generated()}
    if not generated:
        raise ValueError("the inputs generate nothing: every modality is a frozen condition")
    passes = guidance.passes(list(generated), both_streams=len(inputs.streams()) == 2)
    if TEXT in passes and negative is None:
        raise ValueError("classifier-free guidance (cfg_scale != 1) needs the negative prompt's features")
    latents = {n: m.latent.float() for n, m in generated.items()}
    free = {n: m.timesteps != 0 for n, m in generated.items()}
    # One schedule for all generated streams: they share one sigma, as in training.
    first = next(iter(latents.values()))
    sigmas = sigma_schedule(num_steps, schedule_tokens or first.shape[1]).to(first.device)
    stepper = EulerDiffusionStep()
    guiders = {n: guidance.guider(n) for n in generated}
    denoised: dict[str, Tensor] = {}
    for i in range(num_steps):
        # A guider's skip_step reuses its previous prediction (as ltx-core's pipelines do); step 0 never skips.
        if not denoised or not all(g.should_skip_step(i) for g in guiders.values()):
            current = inputs.with_modalities(
                {n: _at_sigma(m, latents[n], free[n], sigmas[i]) for n, m in generated.items()}
            )
            given = {kind: (current, guidance.perturbation(kind)) for kind in passes}
            if TEXT in given:
                given[TEXT] = (current.with_context_of(negative), guidance.perturbation(TEXT))
            predicted = _predict(model, given)
            cond = predicted[COND]
            for n, guider in guiders.items():
                if n in denoised and guider.should_skip_step(i):
                    continue
                other = {kind: predicted.get(kind, cond)[n] for kind in (TEXT, PERTURBED, ISOLATED)}
                denoised[n] = guider.calculate(cond[n], other[TEXT], other[PERTURBED], other[ISOLATED])
        for n in generated:
            stepped = stepper.step(latents[n], denoised[n].float(), sigmas, i)
            # Given tokens get zero velocity already (their timestep is 0); keep them bit-exact regardless.
            latents[n] = torch.where(free[n].unsqueeze(-1), stepped, latents[n])
    given_latents = {s.name: s.modality.latent for s in inputs.streams()}
    return Sampled(**{n: latents.get(n, given_latents.get(n)) for n in MODALITIES})
