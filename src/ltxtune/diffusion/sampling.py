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
from ltxtune.ltx_core_api import batched_perturbations, skips_in_negative_pass


@dataclass(frozen=True)
class Sampled:
    """Denoised token sequences ``[B, T, 128]`` as the model saw them (references and conditions included).

    ``None`` for a modality the inputs do not have; a frozen modality comes back unchanged.
    """

    video: Tensor | None
    audio: Tensor | None


def sigma_schedule(num_steps: int) -> Tensor:
    """LTX-2's schedule ``[num_steps + 1]`` from 1 to 0, as inference uses it.

    Inference's Euler pipelines call the scheduler without a latent, so its shift is the one for 4,096 tokens
    whatever the clip's size; shifting for the clip's own token count would denoise on other sigmas (0.16
    apart at 512x512x49) than the LoRA will meet in inference.
    """
    return LTX2Scheduler().execute(steps=num_steps)


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
    """The clean estimates of every pass (``{pass: {modality: x0}}``). Passes whose streams match (the same
    text lengths, the same streams switched off) share one forward of ``k*B`` samples: ltx-core applies each
    sample's perturbations in the same call."""
    groups: dict[tuple, list[str]] = {}
    for kind, (inputs, _) in passes.items():
        key = tuple((s.name, s.modality.enabled, tuple(s.modality.context.shape)) for s in inputs.streams())
        groups.setdefault(key, []).append(kind)
    out = {}
    for kinds in groups.values():
        first = passes[kinds[0]][0]
        latent = first.streams()[0].modality.latent
        b = latent.shape[0]
        if len(kinds) == 1:
            out[kinds[0]] = _denoise(model, first, batched_perturbations([passes[kinds[0]][1]] * b, model, latent))
            continue
        joined = first.with_modalities(
            {s.name: _cat([passes[k][0].stream(s.name).modality for k in kinds]) for s in first.streams()}
        )
        perturbations = batched_perturbations([passes[k][1] for k in kinds for _ in range(b)], model, latent)
        split = {n: d.split(b) for n, d in _denoise(model, joined, perturbations).items()}
        out.update({kind: {n: parts[j] for n, parts in split.items()} for j, kind in enumerate(kinds)})
    return out


def _switched_off(inputs: ModelInputs, names: list[str]) -> ModelInputs:
    """``inputs`` with the ``names`` streams disabled: the model passes them through its blocks untouched."""
    return inputs.with_modalities({n: replace(inputs.stream(n).modality, enabled=False) for n in names})


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
) -> Sampled:
    """Denoise ``inputs`` (noise at sigma 1 where generated) in ``num_steps`` Euler steps, guided as inference guides.

    A modality with a target is generated: its tokens with a non-zero timestep start from their latent
    (noise at sigma 1) and are denoised; its timestep-0 tokens stay exactly as given. A modality without a
    target is a frozen condition, fed unchanged at every step. ``guidance`` holds each generated modality's
    guider parameters (``ltxtune.diffusion.guidance``; none = the model's plain prediction). ``negative``:
    inputs whose streams attend to the negative prompt (only their text context is read); classifier-free
    guidance needs it. Each step is the one of ltx-pipelines' multimodal-guider Euler loop
    (``multi_modal_guider_denoising_func``): the same passes, perturbations and skipped steps.
    """
    guidance = guidance or Guidance()
    generated = {s.name: s.modality for s in inputs.generated()}
    if not generated:
        raise ValueError("the inputs generate nothing: every modality is a frozen condition")
    names = list(generated)
    passes = guidance.passes(names, both_streams=len(inputs.streams()) == 2)
    if TEXT in passes and negative is None:
        raise ValueError("classifier-free guidance (cfg_scale != 1) needs the negative prompt's features")
    latents = {n: m.latent.float() for n, m in generated.items()}
    free = {n: m.timesteps != 0 for n, m in generated.items()}
    first = next(iter(latents.values()))
    sigmas = sigma_schedule(num_steps).to(first.device)  # one schedule for all generated streams, as in inference
    stepper = EulerDiffusionStep()
    guiders = {n: guidance.guider(n) for n in generated}
    denoised: dict[str, Tensor] = {}
    for i in range(num_steps):
        # A guider's skip_step reuses its previous prediction; step 0 never skips. While one stream skips,
        # inference switches it off in the passes of the prompt (ltx-pipelines 1.2: in the negative prompt's too).
        skipping = [n for n, g in guiders.items() if g.should_skip_step(i)]
        if len(skipping) < len(guiders):
            current = inputs.with_modalities(
                {n: _at_sigma(m, latents[n], free[n], sigmas[i]) for n, m in generated.items()}
            )
            prompted = _switched_off(current, skipping)
            given = {kind: (prompted, guidance.perturbation(kind, names)) for kind in passes}
            if TEXT in given:  # the generated streams attend to the negative prompt; a frozen one keeps its own
                unprompted = prompted if skips_in_negative_pass() else current
                given[TEXT] = (unprompted.with_context_of(negative, names), guidance.perturbation(TEXT, names))
            predicted = _predict(model, given)
            cond = predicted[COND]
            for n, guider in guiders.items():
                if n not in skipping:
                    other = {kind: predicted.get(kind, cond)[n] for kind in (TEXT, PERTURBED, ISOLATED)}
                    denoised[n] = guider.calculate(cond[n], other[TEXT], other[PERTURBED], other[ISOLATED])
        for n in generated:
            stepped = stepper.step(latents[n], denoised[n].float(), sigmas, i)
            # Given tokens get zero velocity already (their timestep is 0); keep them bit-exact regardless.
            latents[n] = torch.where(free[n].unsqueeze(-1), stepped, latents[n])
    given_latents = {s.name: s.modality.latent for s in inputs.streams()}
    return Sampled(**{n: latents.get(n, given_latents.get(n)) for n in MODALITIES})
