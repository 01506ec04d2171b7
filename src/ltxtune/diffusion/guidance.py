"""Guidance for validation sampling, as LTX-2 inference does it: ltx-core's multimodal guider, one per modality.

Each step combines up to four clean-latent predictions of the same model (``MultiModalGuider.calculate``):
``cond`` (the prompt), ``uncond_text`` (the negative prompt: classifier-free guidance), ``uncond_perturbed``
(self-attention skipped in ``stg_blocks``: spatio-temporal guidance, STG) and ``uncond_modality`` (the
audio<->video cross-attention skipped in every block: modality guidance, for a2v / v2a / audio-video clips).
A prediction is only made when some generated modality's parameters use it, so the tiny model's default
(classifier-free guidance alone) costs two predictions per step, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.guidance.perturbations import Perturbation, PerturbationConfig, PerturbationType

from ltxtune.errors import ConfigError, check_range

# The passes a step may need, in the order they are batched.
COND, TEXT, PERTURBED, ISOLATED = "cond", "uncond_text", "uncond_perturbed", "uncond_modality"
_SCALES = ("cfg_scale", "stg_scale", "rescale_scale", "modality_scale")
_KEYS = (*_SCALES, "stg_blocks", "skip_step")


def guider_params(node: Mapping[str, Any] | None, key: str) -> MultiModalGuiderParams:
    """One modality's parameters from a config node with ltx-core's field names; refused with the full key."""
    node = dict(node or {})
    if unknown := sorted(set(node) - set(_KEYS)):
        raise ConfigError(f"{key}.{unknown[0]}", node[unknown[0]], "one of " + ", ".join(_KEYS))
    for name in _SCALES:  # the ones not given keep ltx-core's defaults, which are in range
        if name in node:
            value = node[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key}.{name}", value, "a number")
            check_range(f"{key}.{name}", float(value), 0.0, 1.0 if name == "rescale_scale" else None)
    params = MultiModalGuiderParams(**{k: v for k, v in node.items() if k != "stg_blocks"})
    blocks = node.get("stg_blocks", [])  # null: every block, as in ltx-core
    if blocks is not None:
        if isinstance(blocks, str | int) or not all(isinstance(b, int) and b >= 0 for b in blocks):
            allowed = "a list of transformer block indices (ints >= 0), or null for every block"
            raise ConfigError(f"{key}.stg_blocks", blocks, allowed)
        blocks = list(blocks)
    if not isinstance(params.skip_step, int) or params.skip_step < 0:
        raise ConfigError(f"{key}.skip_step", params.skip_step, "an int >= 0 (0 = predict at every step)")
    return replace(params, stg_blocks=blocks)


@dataclass(frozen=True)
class Guidance:
    """Each modality's guider parameters (ltx-core's ``MultiModalGuiderParams``; the defaults guide nothing)."""

    video: MultiModalGuiderParams = field(default_factory=MultiModalGuiderParams)
    audio: MultiModalGuiderParams = field(default_factory=MultiModalGuiderParams)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, key: str = "guidance") -> Guidance:
        """``{video: {cfg_scale: ..., ...}, audio: {...}}`` -> ``Guidance``; a bad value names its full key."""
        node = dict(node or {})
        if unknown := sorted(set(node) - {"video", "audio"}):
            raise ConfigError(f"{key}.{unknown[0]}", node[unknown[0]], "video or audio")
        return cls(guider_params(node.get("video"), f"{key}.video"), guider_params(node.get("audio"), f"{key}.audio"))

    @classmethod
    def cfg(cls, scale: float) -> Guidance:
        """Classifier-free guidance alone, the same scale for both modalities."""
        params = MultiModalGuiderParams(cfg_scale=scale)
        return cls(params, params)

    def without_cfg(self) -> Guidance:
        """For samples without text (a custom strategy's): there is no negative prompt to guide against."""
        return Guidance(replace(self.video, cfg_scale=1.0), replace(self.audio, cfg_scale=1.0))

    def guider(self, modality: str) -> MultiModalGuider:
        return MultiModalGuider(getattr(self, modality))

    def uses_negative(self) -> bool:
        """Whether classifier-free guidance is on for either stream (then the negative prompt is needed)."""
        return any(self.guider(n).do_unconditional_generation() for n in ("video", "audio"))

    def passes(self, generated: list[str], both_streams: bool) -> list[str]:
        """The predictions a step of ``generated`` modalities needs (``cond`` first).

        Modality guidance needs the other stream in the model call: without it there is nothing to isolate.
        """
        guiders = [self.guider(n) for n in generated]
        wanted = [COND]
        if any(g.do_unconditional_generation() for g in guiders):
            wanted.append(TEXT)
        if any(g.do_perturbed_generation() for g in guiders):
            wanted.append(PERTURBED)
        if both_streams and any(g.do_isolated_modality_generation() for g in guiders):
            wanted.append(ISOLATED)
        return wanted

    def perturbation(self, kind: str, generated: list[str]) -> PerturbationConfig:
        """What the model skips for a pass: STG's self-attention blocks of each ``generated`` stream whose STG is
        on (as inference: a stream with ``stg_scale`` 0 keeps its self-attention, whatever its ``stg_blocks``),
        or every audio<->video cross-attention."""
        if kind == PERTURBED:
            skips = {"video": PerturbationType.SKIP_VIDEO_SELF_ATTN, "audio": PerturbationType.SKIP_AUDIO_SELF_ATTN}
            return PerturbationConfig(
                [
                    Perturbation(skips[n], getattr(self, n).stg_blocks)
                    for n in generated
                    if self.guider(n).do_perturbed_generation()
                ]
            )
        if kind == ISOLATED:
            return PerturbationConfig(
                [
                    Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
                    Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None),
                ]
            )
        return PerturbationConfig.empty()

    def fit(self, num_blocks: int, key: str = "guidance") -> tuple[Guidance, list[str]]:
        """The guidance for a transformer of ``num_blocks`` blocks, and a warning per modality whose STG blocks
        it does not have.

        ltx-core perturbs only the listed blocks that exist, so a block past the end (LTX-2's 28 on a small
        test checkpoint) would silently perturb nothing: those blocks are dropped, and STG is turned off
        (saving its pass) for a modality left with none.
        """
        fitted, warnings = {}, []
        for name in ("video", "audio"):
            params = getattr(self, name)
            blocks = params.stg_blocks
            if not params.stg_scale or blocks is None or all(b < num_blocks for b in blocks):
                fitted[name] = params
                continue
            kept = [b for b in blocks if b < num_blocks]
            warnings.append(
                f"warning: {key}.{name}.stg_blocks={list(blocks)}: the transformer has {num_blocks} blocks, so STG "
                + (f"perturbs only {kept}" if kept else "is off for this stream")
                + f" (set block indices below {num_blocks})"
            )
            fitted[name] = replace(params, stg_blocks=kept, stg_scale=params.stg_scale if kept else 0.0)
        return Guidance(**fitted), warnings
