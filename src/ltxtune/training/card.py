"""The model card a completed run leaves beside its weights (``README.md``): what was trained, how, how well,
and how to load it.

``card_facts`` gathers the facts from the run (its parts, data split and measurements); ``render`` turns them into
markdown and is pure; ``write_card`` writes the file. Only a completed run gets a card.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltxtune import __version__
from ltxtune.data.spec import Split
from ltxtune.evaluation.prompts import Prompt
from ltxtune.ltx_core_api import LTX2, LTX25, builds_ltx25
from ltxtune.model.adapters import LoraAdapter, base_model
from ltxtune.model.base import ModelSpec
from ltxtune.training.parts import Parts

if TYPE_CHECKING:
    from ltxtune.training.loop import Trainer

FILENAME = "README.md"
MARKER = "<!-- ltxtune model card -->"  # a README.md without it is not ours and is never replaced
CAPTIONS = "captions.json"  # sample file name -> caption, when the dataset has one
_SHOWN_PROMPTS = 8
_SHOWN_CAPTIONS = 5


@dataclass(frozen=True)
class CardFacts:
    """Everything the card says; ``render`` reads nothing else.

    ``base_python`` is the Python expression for the base checkpoint's path in the loading snippet, and
    ``setup_python`` the lines that must run before it (the tiny model has no file: they write one).
    """

    weights: str  # lora.safetensors | model.safetensors
    is_lora: bool
    model: str  # the model group's choice
    base: str  # the base model in words
    base_python: str
    setup_python: tuple[str, ...]
    strategy: str  # the strategy group's choice
    strategy_lines: tuple[str, ...]  # its arguments and conditions, one per line
    strategy_metadata: dict[str, Any]
    prompts: tuple[tuple[str, str], ...]  # (caption, samples) of the validation samples
    prompts_note: str  # where the prompts come from, or why there are none
    user_prompts: tuple[str, ...]  # validation_videos.prompts, each with its media files, as one line
    captions: tuple[tuple[str, int], ...]  # a few training captions, each with its number of samples
    captions_note: str  # how many captions the training samples have, or why none are known
    settings: tuple[tuple[str, str], ...]
    losses: tuple[tuple[str, float], ...]
    preview: str | None  # relative path of the last validation's preview.png
    steps: int
    family: str = "LTX-2"  # LTX-2, LTX-2.3 or LTX-2.5, from the base's config
    pipelines: str | None = None  # the ltx-pipelines command that plays the LoRA (a checkpoint base only)
    version: str = field(default=__version__)


def render(facts: CardFacts) -> str:
    """The card's markdown text."""
    kind = "LoRA" if facts.is_lora else "full fine-tune"
    out = [
        MARKER,
        f"# {kind} of {facts.family}: `{facts.strategy}`",
        "",
        f"Trained with ltxtune {facts.version} for {facts.steps} steps. The weights are `{facts.weights}` in this"
        " directory, in the ltx-core / ComfyUI layout"
        + (" (`alpha / rank` already folded into `lora_B`)." if facts.is_lora else " (`model.diffusion_model.` keys)."),
        "",
        "## Base model",
        "",
        f"`model={facts.model}`: {facts.base}",
        "",
        "## Strategy",
        "",
        f"`strategy={facts.strategy}`",
        *(f"- {line}" for line in facts.strategy_lines),
    ]
    if facts.strategy_metadata:
        meta = ", ".join(f"`{k}={v}`" for k, v in sorted(facts.strategy_metadata.items()))
        out += ["", f"Recorded in the file's metadata for inference: {meta}."]
    out += ["", "## Prompts", ""]
    if facts.user_prompts:
        out += ["Your validation prompts (`validation_videos.prompts`):", ""]
        out += [f"- {line}" for line in facts.user_prompts] + [""]
    out += [facts.prompts_note]
    if facts.prompts:
        out += [""] + [f'- "{caption}" ({samples})' for caption, samples in facts.prompts]
    out += ["", "## Training captions", "", facts.captions_note]
    if facts.captions:
        out += [""] + [f'- "{caption}"' + (f" ({n} samples)" if n > 1 else "") for caption, n in facts.captions]
    out += ["", "## Training settings", "", "| setting | value |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in facts.settings]
    out += ["", "## Final losses", ""]
    if facts.losses:
        out += ["| metric | value |", "|---|---|"] + [f"| `{key}` | {value:.4f} |" for key, value in facts.losses]
    else:
        out += ["No losses were recorded."]
    if facts.preview:
        out += ["", "## Preview", "", f"![latent preview at step {facts.steps}]({facts.preview})"]
        out += ["", "Rows are prompts: the generated latent frames on the left, the sample's own on the right."]
    out += ["", "## Load it", "", "With ltx-core (run from this directory):", "", "```python", loader_python(facts)]
    out += ["```", "", *comfyui_lines(facts), ""]
    if facts.pipelines:
        out += ["## Play it with ltx-pipelines", "", *pipelines_lines(facts), ""]
    return "\n".join(out)


# The strategies whose LoRA LTX-2's IC-LoRA pipeline plays (a reference video in context); the others play in
# its one-stage text/image-to-video pipeline.
_IC_LORA_STRATEGIES = ("ltxtune.strategies.video_to_video.VideoToVideo",)


def pipelines_lines(facts: CardFacts) -> list[str]:
    command = facts.pipelines or ""
    if "ltx_pipelines.ic_lora" in command:
        intro = (
            "LTX-2's IC-LoRA pipeline (`pip install ltx-pipelines`), from this directory: two stages, the LoRA"
            " at half size, then LTX-2's spatial upsampler (`--skip-stage-2`: the half-size video alone). The"
            " reference video (the LoRA's input) and the upsampler go where the command names them; a reference"
            " downscale factor is read from the LoRA's metadata."
        )
    else:
        intro = "LTX-2's one-stage text/image-to-video pipeline (`pip install ltx-pipelines`), from this directory:"
    if f"--num-frames {_DEFAULT_FRAMES}" in command:
        intro += (
            f" `--num-frames {_DEFAULT_FRAMES}`: ltx-pipelines would otherwise predict the length with LTX-2.5's"
            " duration head, which this base has not (or, split, in a file the run does not name:"
            " `--duration-head-path` instead)."
        )
    return [intro, "", "```bash", command, "```"]


@dataclass(frozen=True)
class BaseFiles:
    """The base model's files as ltx-pipelines opens them.

    ``checkpoint``: a single-file release, or a split release's transformer file; ``text_encoder``: a Gemma
    directory, or LTX-2.5's packed text encoder (one ``.safetensors`` file); the VAE files are the checkpoint
    itself in a single-file release. ``family``: LTX-2, LTX-2.3 or LTX-2.5.
    """

    checkpoint: str
    text_encoder: str
    video_vae: str
    audio_vae: str
    family: str = LTX2

    @property
    def split(self) -> bool:
        packed = self.text_encoder.endswith(".safetensors")
        return packed or self.video_vae != self.checkpoint or self.audio_vae != self.checkpoint


_DEFAULT_FRAMES = 121  # ltx-pipelines 1.0's default length (5 s at 24 fps)


def model_flags(base: BaseFiles, ic_lora: bool) -> list[str]:
    """The CLI flags that name the base model, for the ltx-pipelines of the installed ltx-core's release.

    1.0 takes a single-file release and a Gemma directory (``--checkpoint-path``, or the IC-LoRA pipeline's
    ``--distilled-checkpoint-path``, and ``--gemma-root``). 1.2 also takes a split release file by file (the text
    encoder packed in one file, no Gemma directory), and its one-stage pipeline predicts the clip's length with
    LTX-2.5's duration head unless ``--num-frames`` is given: a base without one in the checkpoint (an earlier
    release, or a split release, whose duration head file the run does not know) gets 1.0's default length.
    """
    q = shlex.quote
    monolith = [
        f"--{'distilled-' if ic_lora else ''}checkpoint-path {q(base.checkpoint)}",
        f"--gemma-root {q(base.text_encoder)}",
    ]
    if not builds_ltx25():
        return monolith
    split = [
        f"--transformer-path {q(base.checkpoint)}",
        f"--text-encoder-path {q(base.text_encoder)}",
        f"--video-vae-path {q(base.video_vae)}",
        f"--audio-vae-path {q(base.audio_vae)}",
    ]
    flags = split if base.split else monolith
    if not ic_lora and (base.split or base.family != LTX25):
        flags.append(f"--num-frames {_DEFAULT_FRAMES}")
    return flags


def pipelines_command(strategy_target: str, base: BaseFiles, weights: str, prompt: str) -> str:
    """The shell command that generates a video with the LoRA through ltx-pipelines' own CLI, at its default
    size, steps and guidance (any of its flags may be added)."""
    ic_lora = strategy_target in _IC_LORA_STRATEGIES
    module = "ic_lora" if ic_lora else "ti2vid_one_stage"
    lines = [f"python -m ltx_pipelines.{module}", *model_flags(base, ic_lora)]
    if ic_lora:
        lines.append("--spatial-upsampler-path /path/to/ltx-2-spatial-upscaler-x2-1.0.safetensors")
    lines.append(f"--lora {weights} 1.0")
    if ic_lora:
        lines.append("--video-conditioning /path/to/reference.mp4 1.0")
    lines += [f"--prompt {shlex.quote(prompt)}", "--output-path lora.mp4"]
    return " \\\n  ".join(lines)


def loader_python(facts: CardFacts) -> str:
    """A snippet that builds the transformer with the trained weights through ltx-core's own loader.

    It defines ``transformer``; tests run it as it is written into the card.
    """
    lines = [
        "from pathlib import Path",
        "",
        "import torch",
        "from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP",
        "from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder",
        "from ltx_core.model.transformer.model_configurator import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator",
        "",
    ]
    if facts.is_lora:
        lines += [
            *facts.setup_python,
            f"base = {facts.base_python}",
            f'lora = str(Path("{facts.weights}").resolve())',
            "builder = SingleGPUModelBuilder(",
            "    model_class_configurator=LTXModelConfigurator,",
            "    model_path=base,",
            "    model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,",
            ").lora(lora, 1.0, sd_ops=LTXV_LORA_COMFY_RENAMING_MAP)  # strength 1.0: as trained",
        ]
    else:
        lines += [
            "builder = SingleGPUModelBuilder(",
            "    model_class_configurator=LTXModelConfigurator,",
            f'    model_path=str(Path("{facts.weights}").resolve()),',
            "    model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,",
            ")",
        ]
    lines += [
        'device = torch.device("cuda" if torch.cuda.is_available() else "cpu")',
        "transformer = builder.build(device=device, dtype=torch.bfloat16)",
    ]
    return "\n".join(lines)


def comfyui_lines(facts: CardFacts) -> list[str]:
    if facts.is_lora:
        return [
            f"In ComfyUI: copy `{facts.weights}` into `ComfyUI/models/loras/` and add a **LoraLoaderModelOnly** node"
            " (Load LoRA, model only) between the LTX-2 checkpoint loader and the sampler, with `strength_model`"
            " 1.0. The LoRA touches only the diffusion model, not the text encoder.",
        ]
    return [
        f"In ComfyUI: copy `{facts.weights}` into `ComfyUI/models/diffusion_models/` and load it with a **Load"
        " Diffusion Model** node (UNETLoader) in place of the base transformer; the VAE and text encoder come from"
        " the base checkpoint.",
    ]


def write_card(run_dir: Path, facts: CardFacts) -> Path | None:
    """Write ``README.md``; a README.md that is not an ltxtune card is left alone (said once)."""
    path = run_dir / FILENAME
    if path.exists() and not is_card(path):
        print(f"warning: {path} exists and is not an ltxtune model card: the card was not written", flush=True)
        return None
    path.write_text(render(facts))
    return path


def is_card(path: Path) -> bool:
    try:
        return path.read_text(errors="replace").startswith(MARKER)
    except OSError:
        return False


def remove_stale_card(run_dir: Path) -> None:
    """A fresh run in a used directory drops the earlier run's card: a run that then fails leaves none."""
    path = run_dir / FILENAME
    if path.is_file() and is_card(path):
        path.unlink()


# -- the facts of a run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """What a finished run measured and wrote, for its card."""

    weights: str
    steps: int
    processes: int
    metrics: dict[str, float]
    strategy_metadata: dict[str, Any]

    @classmethod
    def of(cls, trainer: Trainer, weights: str, strategy_metadata: dict[str, Any]) -> RunFacts:
        processes = trainer.accelerator.num_processes
        return cls(weights, trainer.step, processes, dict(trainer.last), dict(strategy_metadata))


def card_facts(
    parts: Parts, split: Split, run: RunFacts, choices: dict[str, Any], config: dict[str, Any], run_dir: Path
) -> CardFacts:
    """The card's facts from the run's parts, its data split and what it measured; ``choices`` are the groups'
    options and ``config`` the resolved config as written to ``config.yaml`` (its ``model`` and ``strategy``
    nodes are shown as the user set them)."""
    model_choice = choices.get("model") or type(parts.model).__name__
    strategy_choice = choices.get("strategy") or type(parts.strategy).__name__
    base, base_python, setup = describe_base(config["model"], parts.trainer.seed)
    root = parts.data.root.resolve()
    prefix = caption_prefix(root)
    prompts, note = validation_prompts(root, tuple(split.val.names), split.val_from_training, prefix)
    captions, captions_note = training_captions(root, tuple(split.train.names))
    videos = parts.validation_videos
    preview = Path("samples") / f"step_{run.steps:06d}" / "preview.png"
    user_prompts = videos.user_prompts() if videos.enabled else ()
    family = base_family(parts.model)
    pipelines = None
    if run.weights == "lora.safetensors" and "checkpoint" in config["model"]:
        some_prompt = next(
            (p.text for p in user_prompts), next((c for c, _ in [*prompts, *captions]), "a prompt like your captions")
        )
        pipelines = pipelines_command(
            str(config["strategy"]["_target_"]), base_files(config, root, family), run.weights, some_prompt
        )
    return CardFacts(
        weights=run.weights,
        is_lora=run.weights == "lora.safetensors",
        model=model_choice,
        base=base,
        base_python=base_python,
        setup_python=setup,
        strategy=strategy_choice,
        strategy_lines=describe_strategy(config["strategy"]),
        strategy_metadata=dict(run.strategy_metadata),
        prompts=prompts,
        prompts_note=note,
        user_prompts=describe_prompts(user_prompts),
        captions=captions,
        captions_note=captions_note,
        settings=training_settings(parts, run, choices, prefix),
        losses=final_losses(run.metrics),
        preview=str(preview) if (run_dir / preview).is_file() else None,
        steps=run.steps,
        family=family,
        pipelines=pipelines,
    )


def base_files(config: dict[str, Any], data_root: Path, family: str) -> BaseFiles:
    """The base's files as ``config`` names them (``model.checkpoint`` and its VAE files) with the text encoder
    the run knows of (``text_encoder_path``)."""
    model = config["model"]
    checkpoint = _resolved(model["checkpoint"])
    video_vae = _resolved(model.get("vae_checkpoint") or checkpoint)
    audio_vae = _resolved(model.get("audio_vae_checkpoint") or video_vae)
    split = {video_vae, audio_vae} != {checkpoint}
    return BaseFiles(checkpoint, text_encoder_path(config, data_root, family, split), video_vae, audio_vae, family)


def _resolved(path: Any) -> str:
    return str(Path(str(path)).expanduser().resolve())


def text_encoder_path(config: dict[str, Any], data_root: Path, family: str = LTX2, split: bool = False) -> str:
    """The text encoder the run knows of: the validation prompts' encoders', else the one preprocessing encoded
    the captions with (``preprocess.json``); else a placeholder to replace: a Gemma 3 directory, LTX-2.5's Gemma 4
    directory, or a split LTX-2.5 release's packed text encoder."""
    encoders = (config.get("validation_videos") or {}).get("encoders") or {}
    if encoders.get("text_encoder_path"):
        return _resolved(encoders["text_encoder_path"])
    try:
        text = json.loads((data_root / "preprocess.json").read_text())["encoders"]["text"]
        return str(text["gemma_root"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if family != LTX25:
        return "/path/to/gemma-3-12b-it"
    return "/path/to/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors" if split else "/path/to/gemma4-12b-ltx-v1"


def caption_prefix(data_root: Path) -> str:
    """What preprocessing put before every caption (``caption_prefix`` in ``preprocess.json``); empty if nothing."""
    try:
        return str(json.loads((data_root / "preprocess.json").read_text()).get("caption_prefix") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def base_family(model: ModelSpec) -> str:
    """``LTX-2``, ``LTX-2.3`` or ``LTX-2.5``, as the LoRA file's metadata says, from the checkpoint's config
    (tiny: LTX-2)."""
    path = getattr(model, "path", None)
    return base_model(model.config())["base_model"] if path is not None else "LTX-2"


def describe_base(node: dict[str, Any], seed: int) -> tuple[str, str, tuple[str, ...]]:
    """The base model in words, its path as Python, and the lines that make that path exist (tiny model)."""
    model = dict(node)
    target = model.pop("_target_")
    if "checkpoint" in model:
        path = str(Path(str(model["checkpoint"])).expanduser().resolve())
        extra = ", ".join(f"{k}={v}" for k, v in model.items() if k != "checkpoint")
        return f"the checkpoint `{path}` ({extra}).", repr(path), ()
    args = ", ".join(f"{k}={v!r}" for k, v in model.items())
    words = (
        f"ltx-core's `LTXModel` at a tiny size with random weights drawn from `trainer.seed={seed}` (`{target}`,"
        f" {args}): for trying the pipeline, not for making videos. The snippet below writes that base to a file"
        " first."
    )
    setup = (
        "from ltxtune.model.tiny import TinyLTX2, write_tiny_checkpoint",
        "",
        f"write_tiny_checkpoint(Path('tiny-base.safetensors'), TinyLTX2({args}), seed={seed})",
    )
    return words, "str(Path('tiny-base.safetensors').resolve())", setup


def describe_strategy(node: dict[str, Any]) -> tuple[str, ...]:
    """One line per argument of the strategy; tracks with their conditions (flexible) one line each."""
    lines = [f"class `{node['_target_']}`"]
    for key, value in node.items():
        if key == "_target_":
            continue
        if isinstance(value, dict) and "_target_" in value:  # a flexible track
            role = "generated" if value.get("is_generated", True) else "frozen (a condition)"
            conditions = [_call(c) for c in value.get("conditions") or []]
            lines.append(
                f"{key}: {role}, from `{value.get('latents_dir')}/`; conditions: {', '.join(conditions) or 'none'}"
            )
        elif value is not None:
            lines.append(f"{key}: `{value}`")
        else:
            lines.append(f"{key}: none")
    return tuple(lines)


def _call(node: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in node.items() if k != "_target_")
    return f"`{_short(node['_target_'])}({args})`"


def _short(target: str) -> str:
    return str(target).rsplit(".", 1)[-1]


def validation_prompts(
    root: Path, val_names: tuple[str, ...], from_training: bool, prefix: str = ""
) -> tuple[tuple[tuple[str, str], ...], str]:
    """The validation samples' captions, from ``captions.json`` in the dataset root when there is one; ``prefix``:
    what preprocessing put before every caption (a trigger word), which a prompt needs too."""
    which = "training samples validation measured (nothing was held out)" if from_training else "held-out samples"
    path = root / CAPTIONS
    try:
        captions = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return (), f"None recorded: the dataset has no `{CAPTIONS}`, so the {which}' captions are not known."
    grouped: dict[str, list[str]] = {}
    for name in val_names:
        if isinstance(captions, dict) and name in captions:
            grouped.setdefault(str(captions[name]), []).append(name)
    if not grouped:
        return (), f"None: `{path}` holds no caption of the {which}."
    shown = tuple((caption, ", ".join(names)) for caption, names in list(grouped.items())[:_SHOWN_PROMPTS])
    more = f" ({len(grouped) - len(shown)} more not shown)" if len(grouped) > len(shown) else ""
    trigger = (
        f"Every training caption begins with `{prefix.strip()}` (preprocessing's `caption_prefix`): begin your prompts"
        " with it too."
        if prefix.strip()
        else "No trigger words were trained in."
    )
    return shown, f"{trigger} Validation used the captions of the {which} (`{path}`){more}:"


def training_captions(root: Path, names: tuple[str, ...]) -> tuple[tuple[tuple[str, int], ...], str]:
    """A few captions of the training samples (the most frequent first) and a line that counts them."""
    path = root / CAPTIONS
    try:
        captions = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return (), f"None recorded: the dataset has no `{CAPTIONS}`."
    counts = Counter(str(captions[n]) for n in names if isinstance(captions, dict) and n in captions)
    if not counts:
        return (), f"None: `{path}` holds no caption of the {len(names)} training samples."
    shown = tuple(counts.most_common(_SHOWN_CAPTIONS))
    total = sum(counts.values())
    if len(names) == 1:
        return shown, f"The one training sample has a caption (`{path}`):"
    some = f"All {total}" if total == len(names) else f"{total} of the {len(names)}"
    which = f"; the {len(shown)} most frequent" if len(counts) > len(shown) else ""
    return shown, f"{some} training samples have a caption (`{path}`), {len(counts)} distinct{which}:"


def describe_prompts(prompts: Sequence[Prompt]) -> tuple[str, ...]:
    """Each validation prompt as a line: its text, then its media files and its own size."""
    lines = []
    for prompt in prompts:
        media = [f"{kind} `{path}`" for kind in ("image", "video", "audio") if (path := getattr(prompt, kind))]
        media += [f"{key} {value}" for key in ("width", "height", "frames") if (value := getattr(prompt, key))]
        lines.append(f'"{prompt.text}"' + (f" ({', '.join(media)})" if media else ""))
    return tuple(lines)


def training_settings(
    parts: Parts, run: RunFacts, choices: dict[str, Any], prefix: str = ""
) -> tuple[tuple[str, str], ...]:
    t = parts.trainer
    processes = run.processes
    rows = [
        ("steps", f"{run.steps} (`trainer.max_steps={t.max_steps}`)"),
        (
            "batch",
            f"{t.batch_size} samples x {t.grad_accum} accumulation x {processes} process{'es' * (processes > 1)}",
        ),
        (
            "learning rate",
            f"{parts.optimizer.lr} (`optimizer={choices.get('optimizer') or type(parts.optimizer).__name__}`,"
            f" `scheduler={choices.get('scheduler') or type(parts.scheduler).__name__}`)",
        ),
        ("timestep sampler", f"`{choices.get('sampler') or type(parts.sampler).__name__}`"),
    ]
    lora = parts.lora
    if isinstance(lora, LoraAdapter):
        targets = ", ".join(lora.target_modules)
        rows += [("LoRA", f"rank {lora.rank}, alpha {lora.alpha:g}, dropout {lora.dropout}, targets {targets}")]
    else:
        rows += [("LoRA", "none: every transformer weight trained (`lora=none`)")]
    dtype = getattr(parts.model, "dtype", "float32")
    rows += [
        ("precision", f"`trainer.mixed_precision={t.mixed_precision}`, base weights {dtype}"),
        ("seed", str(t.seed)),
        ("data", f"`{parts.data.root.resolve()}`"),
    ]
    if prefix:
        rows += [("caption prefix", f"`{prefix}` before every caption (`preprocess.py caption_prefix`)")]
    if dropout := parts.data.caption_dropout:
        rows += [("caption dropout", f"{dropout:g}: the share of training samples given the empty prompt instead")]
    return tuple(rows)


def final_losses(metrics: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """``train/loss``, ``val/loss``, then ``val/loss_sigma_<s>`` in sigma order."""
    keys = [k for k in ("train/loss", "val/loss") if k in metrics]
    keys += sorted((k for k in metrics if k.startswith("val/loss_sigma_")), key=lambda k: float(k.rsplit("_", 1)[1]))
    return tuple((k, float(metrics[k])) for k in keys)
