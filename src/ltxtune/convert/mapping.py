"""ltx-trainer's config sections -> ltxtune's config keys, one small function per section.

Each function reads its section through a ``Section``, which records every key it was asked for; the keys
nobody asked for, and the ones a function declines (``Section.drop``), end up in ``Experiment.dropped`` with
the reason, so nothing is lost without a word. A key left at a value that changes nothing (null, false, an
empty list, or what ltxtune does anyway) needs no carrying over and is not listed.
Absent keys take ltx-trainer's own defaults, so the experiment trains what the reference would have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ltxtune.convert.values import FLAG, INTEGER, INTEGERS, LIST, MAPPING, NUMBER, TEXT, TEXTS, Kind, list_of

_FLEX = "ltxtune.strategies.flexible"
_COND = "ltxtune.strategies.conditions"
_NO_EFFECT = (None, False, [], {})
_NO_TEXT_ENCODER = "training reads the precomputed text features; the text encoder runs in preprocess.py"
_NO_PROMPTS = (
    "ltxtune renders held-out samples with their own captions and conditions (validation_videos.num_prompts), "
    "not free prompts or media files"
)
_NOT_IN_VALIDATION = "ltxtune's validation videos have no such setting"


class ConversionError(ValueError):
    """The file is not an ltx-trainer config ltxtune can express (one line for the user)."""


@dataclass
class Experiment:
    """What a conversion produces: group choices, values (nested, as in the YAML) and what was left out."""

    groups: dict[str, str] = field(default_factory=dict)  # config group -> option ("strategy" -> "flexible")
    values: dict[str, Any] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # ("key=value", why it is not carried over)

    def set(self, dotted: str, value: Any) -> None:
        node = self.values
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def drop(self, key: str, value: Any, reason: str) -> None:
        shown = repr(value) if not isinstance(value, str) else value
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.dropped.append((f"{key}={shown}", reason))


class Section:
    """One mapping of the reference config, read key by key; ``close`` lists the keys left unread."""

    def __init__(self, prefix: str, data: Any, out: Experiment) -> None:
        if data is not None and not isinstance(data, Mapping):
            where = f"{prefix}={data!r}" if prefix else f"the file holds a {type(data).__name__}"
            raise ConversionError(f"{where}: expected a mapping of keys")
        self.prefix, self.data, self.out = prefix, dict(data or {}), out
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def take(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return self.data.get(name, default)

    def value(self, name: str, kind: Kind, default: Any = None, nullable: bool = False, required: bool = False) -> Any:
        """Key ``name`` as ``kind`` (absent: ``default``; null: ``None`` when ``nullable``, else ``default``); a
        value of another kind, or none where one is ``required``, raises ``ConversionError`` naming key and kind."""
        value = self.take(name)
        if value is None and required:
            raise ConversionError(f"{self.key(name)}={value!r}: expected {kind.what}")
        if value is None:
            if (nullable and name in self.data) or default is None:
                return None
            value = default
        try:
            return kind.read(value)
        except (TypeError, ValueError):
            raise ConversionError(f"{self.key(name)}={value!r}: expected {kind.what}") from None

    def number(self, name: str, default: float) -> float:
        return self.value(name, NUMBER, default)

    def drop(self, name: str, reason: str, no_effect: tuple = _NO_EFFECT) -> None:
        """List ``name`` as not carried over, unless it is absent or at a value that changes nothing."""
        self.read.add(name)
        if name in self.data and self.data[name] not in no_effect:
            self.out.drop(self.key(name), self.data[name], reason)

    def sub(self, name: str) -> Section:
        return Section(self.key(name), self.take(name), self.out)

    def close(self) -> None:
        for name in self.data:
            if name not in self.read:
                self.out.drop(self.key(name), self.data[name], "not an ltx-trainer key this converter knows")


# --- model, lora ----------------------------------------------------------------------------------------------


def model(s: Section, out: Experiment) -> None:
    out.groups["model"] = "ltx2"
    checkpoint = s.value("model_path", TEXT, required=True)
    out.set("model.checkpoint", checkpoint)
    s.drop("text_encoder_path", f"{_NO_TEXT_ENCODER} (encoders=ltx2 encoders.text_encoder_path=<it>)")
    vaes(s, out, checkpoint)
    mode = s.value("training_mode", TEXT, "lora")
    if mode not in ("lora", "full"):
        raise ConversionError(f"model.training_mode={mode!r}: expected lora or full")
    if mode == "full":
        out.groups["lora"] = "none"
    start = s.value("load_checkpoint", TEXT)
    if start is not None and mode == "lora" and start.endswith(".safetensors"):
        out.set("lora.init_from", start)
    elif start is not None:
        out.drop(
            s.key("load_checkpoint"),
            start,
            "ltxtune starts from a LoRA file (lora.init_from=<file>.safetensors) or resumes its own run "
            "(checkpoint.resume=auto|<path>); a directory or a full checkpoint has no equivalent",
        )


def vaes(s: Section, out: Experiment, checkpoint: str) -> None:
    """A split release's VAE files (LTX-2.5: the transformer file holds no VAE), which the validation clips
    decode with. Each defaults to ``model_path`` in ltx-trainer; in ltxtune the audio VAE defaults to the video
    VAE's file, so a video VAE of its own leaves the audio VAE at ``model_path`` explicitly."""
    video = s.value("video_vae_path", TEXT)
    audio = s.value("audio_vae_path", TEXT)
    if video is not None:
        out.set("model.vae_checkpoint", video)
    if audio is not None or video is not None:
        out.set("model.audio_vae_checkpoint", audio or checkpoint)


def lora(s: Section, out: Experiment) -> None:
    if out.groups.get("lora") == "none":
        for name in list(s.data):
            s.drop(name, "model.training_mode is full: every weight trains, there is no LoRA")
        return
    out.groups["lora"] = "default"
    out.set("lora.rank", s.value("rank", INTEGER, 64))
    out.set("lora.alpha", s.value("alpha", NUMBER, 64))
    out.set("lora.dropout", s.number("dropout", 0.0))
    out.set("lora.target_modules", s.value("target_modules", TEXTS, ["to_k", "to_q", "to_v", "to_out.0"]))


# --- training_strategy ----------------------------------------------------------------------------------------


def training_strategy(s: Section, out: Experiment) -> None:
    name = s.value("name", TEXT, "text_to_video")
    if name == "flexible":
        flexible(s, out)
    elif name == "text_to_video":
        out.groups["strategy"] = "text_to_video"
        out.set("strategy.first_frame_p", s.number("first_frame_conditioning_p", 0.1))
        out.set("strategy.with_audio", s.value("with_audio", FLAG, False))
        out.set("strategy.audio_latents_dir", s.value("audio_latents_dir", TEXT, "audio_latents"))
    elif name == "video_to_video":
        out.groups["strategy"] = "video_to_video"
        out.set("strategy.first_frame_p", s.number("first_frame_conditioning_p", 0.1))
        out.set("strategy.reference_latents_dir", s.value("reference_latents_dir", TEXT, "reference_latents"))
    else:
        raise ConversionError(
            f"training_strategy.name={name!r} has no ltxtune strategy (flexible, text_to_video and "
            "video_to_video convert)"
        )


def flexible(s: Section, out: Experiment) -> None:
    out.groups["strategy"] = "flexible"
    for modality, target in (("video", "VideoTrack"), ("audio", "AudioTrack")):
        out.set(f"strategy.{modality}", track(s.sub(modality), f"{_FLEX}.{target}", out))
    s.drop("reference_slot_embedding", "ltxtune has no learned reference slot embedding")


def track(s: Section, target: str, out: Experiment) -> dict[str, Any] | None:
    if not s.data:
        return None
    conditions = []
    for i, raw in enumerate(s.value("conditions", LIST) or []):
        c = Section(f"{s.prefix}.conditions[{i}]", raw, out)
        kind = c.value("type", TEXT)
        if kind not in CONDITIONS:
            out.drop(c.prefix, kind, f"no ltxtune condition (ltxtune has {', '.join(CONDITIONS)})")
            continue
        conditions.append({"_target_": f"{_COND}.{CONDITIONS[kind][0]}", **CONDITIONS[kind][1](c)})
        c.close()
    node = {
        "_target_": target,
        "is_generated": s.value("is_generated", FLAG, True),
        "latents_dir": s.value("latents_dir", TEXT),
        "conditions": conditions,
    }
    s.close()
    return node


def _probability(c: Section) -> dict[str, Any]:
    return {"probability": c.number("probability", 1.0)}


def _span(c: Section) -> dict[str, Any]:
    return {"temporal_boundary": c.value("temporal_boundary", INTEGER), **_probability(c)}


def _crop(c: Section) -> dict[str, Any]:
    y1, x1, y2, x2 = c.value("spatial_region", list_of(INTEGER, 4), required=True)
    return {"y1": y1, "x1": x1, "y2": y2, "x2": x2, **_probability(c)}


def _mask(c: Section) -> dict[str, Any]:
    return {"mask_dir": c.value("mask_dir", TEXT), **_probability(c)}


def _reference(c: Section) -> dict[str, Any]:
    c.drop("layout", "ltxtune places references as 'overlap' (the target's coordinates)", no_effect=("overlap",))
    for name in ("strata_slot", "slot_embedding", "slot_index", "source_phase"):
        c.drop(name, "ltxtune has no reference slot tags or alternative layouts")
    for name, default in (("strata_f_lim", 128), ("source_id", 2), ("phase_scale", 1.0)):
        c.drop(name, "ltxtune has no reference slot tags or alternative layouts", no_effect=(default,))
    c.drop("augment_noise", "ltxtune keeps references clean", no_effect=(0, 0.0))
    c.drop("sidecar_margin_pixels", "ltxtune has no sidecar layout", no_effect=(0, 0.0))
    return {"latents_dir": c.value("latents_dir", TEXT), **_probability(c)}


# reference condition type -> (ltxtune class, its arguments from the reference keys)
CONDITIONS: dict[str, tuple[str, Callable[[Section], dict[str, Any]]]] = {
    "first_frame": ("FirstFrame", _probability),
    "prefix": ("Prefix", _span),
    "suffix": ("Suffix", _span),
    "spatial_crop": ("SpatialCrop", _crop),
    "mask": ("Mask", _mask),
    "reference": ("Reference", _reference),
}


# --- optimization, acceleration, data -------------------------------------------------------------------------


def optimization(s: Section, out: Experiment) -> None:
    lr = s.number("learning_rate", 5e-4)
    out.set("trainer.max_steps", s.value("steps", INTEGER, 3000))
    out.set("trainer.batch_size", s.value("batch_size", INTEGER, 2))
    out.set("trainer.grad_accum", s.value("gradient_accumulation_steps", INTEGER, 1))
    out.set("trainer.max_grad_norm", s.number("max_grad_norm", 1.0))
    out.set("trainer.gradient_checkpointing", s.value("enable_gradient_checkpointing", FLAG, False))
    optimizer = s.value("optimizer_type", TEXT, "adamw")
    if optimizer not in ("adamw", "adamw8bit"):
        raise ConversionError(f"optimization.optimizer_type={optimizer!r}: expected adamw or adamw8bit")
    out.groups["optimizer"] = optimizer
    out.set("optimizer.lr", lr)
    out.set("optimizer.weight_decay", 0.01)  # ltx-trainer builds AdamW with torch's (and bitsandbytes') default
    scheduler(s, out, lr)


def scheduler(s: Section, out: Experiment, lr: float) -> None:
    kind = s.value("scheduler_type", TEXT, "linear")
    params = Section(s.key("scheduler_params"), s.value("scheduler_params", MAPPING, {}), out)
    out.set("scheduler.warmup_steps", params.value("warmup_steps", INTEGER, 0))
    if kind in ("constant", "linear", "cosine"):
        out.groups["scheduler"] = kind
        if kind == "linear":  # LinearLR from 1.0 to end_factor over the steps
            out.set("scheduler.min_lr_ratio", float(params.number("end_factor", 0.1)))
        if kind == "cosine":
            out.set("scheduler.min_lr_ratio", float(params.number("eta_min", 0.0)) / lr)
    else:
        out.groups["scheduler"] = "cosine"
        out.drop(s.key("scheduler_type"), kind, "no ltxtune schedule of this shape: the experiment uses cosine")
    for name, value in params.data.items():
        if name not in params.read:
            out.drop(params.key(name), value, f"ltxtune's {out.groups['scheduler']} has no such key")


def acceleration(s: Section, out: Experiment) -> None:
    out.set("trainer.mixed_precision", s.value("mixed_precision_mode", TEXT, "bf16", nullable=True) or "no")
    quantization = s.value("quantization", TEXT)
    if quantization is not None:
        quantize(quantization, s.key("quantization"), out)
    s.drop("load_text_encoder_in_8bit", _NO_TEXT_ENCODER)
    s.drop("offload_optimizer_during_validation", "ltxtune keeps the optimizer state in place during validation")


# ltx-trainer's quanto quantizations -> ltxtune's, with how each differs (model/quantize.py).
_QUANTIZATIONS = {
    "fp8": ("fp8_cast", "ltx-core's fp8 storage, upcast in forward"),
    "int8": ("int8", "torchao's int8 weight-only tensors, pip install -e '.[lowvram]'"),
}


def quantize(value: str, key: str, out: Experiment) -> None:
    """``acceleration.quantization`` (``int8-quanto``, ``fp8-quanto``...) as ``model.quantization``, or dropped."""
    kind = value.split("-", 1)[0]
    if out.groups.get("lora") == "none":
        out.drop(key, value, "model.training_mode is full: ltxtune quantizes a frozen base under a LoRA only")
    elif kind in _QUANTIZATIONS:
        ours, how = _QUANTIZATIONS[kind]
        out.set("model.quantization", ours)
        out.drop(key, value, f"carried over as model.quantization={ours} ({how}), not quanto")
    else:
        out.drop(key, value, "ltxtune quantizes to fp8_cast or int8 only (4-bit: see docs/memory.md)")


def data(s: Section, out: Experiment) -> None:
    out.groups["data"] = "precomputed"
    out.set("data.root", s.value("preprocessed_data_root", TEXT, required=True))
    out.set("loader.num_workers", s.value("num_dataloader_workers", INTEGER, 2))


# --- validation, checkpoints, hub -----------------------------------------------------------------------------


def validation(s: Section, out: Experiment) -> None:
    interval = s.value("interval", INTEGER, 100, nullable=True)
    out.set("validation.every", interval or 0)
    if not interval:
        out.set("validation_videos.enabled", False)
    prompts = s.value("samples", LIST) or s.value("prompts", LIST) or []
    if prompts:
        out.set("validation_videos.num_prompts", len(prompts))
        out.drop(s.key("samples" if "samples" in s.data else "prompts"), f"{len(prompts)} prompts", _NO_PROMPTS)
    out.set("validation_videos.num_steps", s.value("inference_steps", INTEGER, 50))
    out.set("validation_videos.seed", s.value("seed", INTEGER, 42))
    older = "video_cfg_scale" not in s.data  # older configs: one guidance_scale
    cfg = s.number("guidance_scale", 4.0) if older else s.number("video_cfg_scale", 4.0)
    stg = s.number("stg_scale", 1.0)  # older configs: one STG scale for both streams
    blocks = s.value("stg_blocks", INTEGERS, [28])
    rescale = s.number("guidance_rescale", 0.7)
    for name, cfg_default in (("video", cfg), ("audio", 7.0)):
        out.set(f"validation_videos.guidance.{name}", {
            "cfg_scale": cfg_default if name == "video" else s.number("audio_cfg_scale", cfg_default),
            "stg_scale": s.number(f"{name}_stg_scale", stg),
            "stg_blocks": blocks,
            "rescale_scale": rescale,
            "modality_scale": s.number(f"{name}_modality_guidance_scale", 3.0),
            "skip_step": 0,
        })  # fmt: skip
    s.drop(
        "negative_prompt",
        "set validation_videos.negative_prompt with encoders=ltx2 (Gemma encodes it, like validation prompts), or "
        "validation_videos.negative_conditions to its precomputed features (a conditions/ .pt)",
    )
    for name in ("images", "reference_videos", "keyframe_images", "keyframe_frame_indices"):
        s.drop(name, _NO_PROMPTS)
    s.drop("video_dims", "validation videos have the size and length of the held-out samples")
    s.drop("frame_rate", "validation videos play at the held-out samples' own fps")
    s.drop("skip_initial_validation", "ltxtune always measures validation before the first step")
    for name in (
        "stg_mode", "include_reference_in_output", "reference_downscale_factor", "generate_audio", "generate_video",
    ):  # fmt: skip
        s.drop(name, _NOT_IN_VALIDATION)


def checkpoints(s: Section, out: Experiment) -> None:
    interval = s.value("interval", INTEGER, nullable=True) or 0
    out.set("checkpoint.every", interval)
    keep = s.value("keep_last_n", INTEGER, 1)
    if keep == -1:  # keep all: as many as the run makes
        steps = out.values.get("trainer", {}).get("max_steps", 3000)
        keep = max(1, -(-steps // interval)) if interval else 1
    out.set("checkpoint.keep_last", keep)
    s.drop("precision", "ltxtune writes LoRA weights in float32 (alpha/rank baked in)", no_effect=("float32",))
    s.drop("no_resume", "ltxtune starts fresh unless checkpoint.resume is set")
    s.drop(
        "save_training_state",
        "ltxtune always saves the full training state beside each checkpoint",
        no_effect=("minimal", "full"),
    )


def hub(s: Section, out: Experiment) -> None:
    s.drop("push_to_hub", "ltxtune does not upload; push lora.safetensors and README.md from the run directory")
    s.drop("hub_model_id", "ltxtune does not upload to the Hugging Face Hub")


def flow_matching(s: Section, out: Experiment) -> None:
    mode = s.value("timestep_sampling_mode", TEXT, "shifted_logit_normal")
    if mode not in ("uniform", "shifted_logit_normal"):
        raise ConversionError(
            f"flow_matching.timestep_sampling_mode={mode!r}: expected uniform or shifted_logit_normal"
        )
    out.groups["sampler"] = mode
    known = ("min_value", "max_value") if mode == "uniform" else ("std", "eps", "uniform_prob")
    params = Section(s.key("timestep_sampling_params"), s.value("timestep_sampling_params", MAPPING, {}), out)
    for name in params.data:
        if name in known:
            out.set(f"sampler.{name}", params.value(name, NUMBER))
        else:
            params.drop(name, f"ltxtune's {mode} sampler takes {known}", no_effect=())


def wandb(s: Section, out: Experiment) -> None:
    if not s.value("enabled", FLAG, False):
        out.groups["logger"] = "none"
        for name in ("project", "entity", "tags", "log_validation_videos"):
            s.take(name)  # only meaningful with wandb on
        return
    out.groups["logger"] = "wandb"
    out.set("logger.mode", "online")
    out.set("logger.project", s.value("project", TEXT, "ltxv-trainer"))
    out.set("logger.entity", s.value("entity", TEXT))
    out.set("logger.tags", s.value("tags", TEXTS, []))
    s.drop("log_validation_videos", "ltxtune logs its validation videos whenever they are rendered", no_effect=(True,))


SECTIONS: dict[str, Callable[[Section, Experiment], None]] = {
    "model": model,
    "lora": lora,
    "training_strategy": training_strategy,
    "optimization": optimization,
    "acceleration": acceleration,
    "data": data,
    "validation": validation,
    "checkpoints": checkpoints,
    "hub": hub,
    "flow_matching": flow_matching,
    "wandb": wandb,
}


def convert(config: Any) -> Experiment:
    """An ltx-trainer config (the parsed YAML) as an ltxtune experiment; raises ``ConversionError``."""
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise ConversionError("not an ltx-trainer config (no 'model:' section)")
    if "model_path" not in config["model"]:
        raise ConversionError("not an ltx-trainer config (no model.model_path)")
    out = Experiment()
    top = Section("", config, out)
    for name, read in SECTIONS.items():
        section = top.sub(name)
        read(section, out)
        section.close()
    out.set("trainer.seed", top.value("seed", INTEGER, 42))
    top.drop("output_dir", "ltxtune writes each run to its own directory (choose one with hydra.run.dir=...)")
    top.close()
    return out
