"""ltx-trainer's shipped configs convert to ltxtune experiments that compose, dry-run and train as they say."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from conftest import CONF, ROOT, SMALL
from ltxtune.app.estimate import estimate
from ltxtune.convert.__main__ import main
from ltxtune.ltx_core_api import INSTALL_LTX_CORE_12, builds_ltx25
from ltxtune.model.audio_vae import write_tiny_audio_checkpoint
from ltxtune.model.tiny import write_split_checkpoint, write_tiny_checkpoint
from ltxtune.model.vae import write_tiny_vae_checkpoint

# ltx-trainer's 16 shipped configs are not part of this repository (they are Lightricks' files): point
# LTX_TRAINER_CONFIGS at a copy (packages/ltx-trainer/configs of Lightricks/LTX-2) to run the tests that read them.
REFERENCE = Path(os.environ.get("LTX_TRAINER_CONFIGS", "/work/shared/reference/ltx-trainer-configs"))
CONFIGS = sorted(REFERENCE.glob("*.yaml"))
needs_reference = pytest.mark.skipif(not CONFIGS, reason=f"no ltx-trainer configs in {REFERENCE} (LTX_TRAINER_CONFIGS)")
needs_ltx_core_12 = pytest.mark.skipif(
    not builds_ltx25(), reason=f"LTX-2.5 needs ltx-core 1.2 (installed: 1.0); {INSTALL_LTX_CORE_12}"
)
CLASS = {
    "first_frame": "FirstFrame",
    "prefix": "Prefix",
    "suffix": "Suffix",
    "spatial_crop": "SpatialCrop",
    "mask": "Mask",
    "reference": "Reference",
}
# Synthetic data big enough for the reference's own values: prefix/suffix of 8 latent frames, a 288 x 576 px box.
DATA = ["data.frames=9", "data.height=10", "data.width=18", "data.num_samples=3", "data.val_samples=1"]


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own config folder: the converted experiments go there, beside the package's configs."""
    return tmp_path_factory.mktemp("conf") / "my_conf"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convert-data") / "synthetic"


def converted(source: Path, conf_dir: Path) -> Path:
    output = conf_dir / "experiment" / f"ref_{source.stem}.yaml"
    if not output.exists():
        assert main([str(source), "-o", str(output)]) == 0
    return output


# STG perturbs LTX-2's block 28 in the reference's validation; the tiny model has 2 blocks.
TINY_STG = ("validation_videos.guidance.video.stg_blocks=[1]", "validation_videos.guidance.audio.stg_blocks=[1]")


def compose_tiny(conf_dir: Path, name: str, data_root: Path, *overrides: str) -> DictConfig:
    """The converted experiment with the reference's model and data swapped for the tiny model and synthetic data."""
    model = yaml.safe_load((conf_dir / "experiment" / f"{name}.yaml").read_text()).get("model", {})
    drop = [f"~model.{key}" for key in model]  # keys of model=ltx2 that the tiny model does not take
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            "train",
            [
                f"hydra.searchpath=[file://{conf_dir}]",  # the compose API's --config-dir
                f"experiment={name}",
                "model=tiny",
                *drop,
                "data=synthetic",
                f"data.root={data_root}",
                *DATA,
                *TINY_STG,
                *overrides,
            ],
        )


# The keys ltx-trainer 1.2's configs add for LTX-2.5's split release (one file per component: the transformer file
# holds no VAE, the text encoder is packed in one file with its projection); its shipped files have them commented.
SPLIT_RELEASE = {
    "model_path": "/models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "text_encoder_path": "/models/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "video_vae_path": "/models/ltx-2.5-video-vae-bf16.safetensors",
    "audio_vae_path": "/models/ltx-2.5-audio-vae-bf16.safetensors",
}


@needs_reference
@pytest.mark.parametrize("split", [False, True], ids=["as_shipped", "split_release"])
@pytest.mark.parametrize("source", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_converts_composes_and_dry_runs(
    source: Path, split: bool, conf_dir: Path, data_root: Path, tmp_path: Path
) -> None:
    assert len(CONFIGS) == 16
    reference = yaml.safe_load(source.read_text())
    if split:  # the same config pointed at LTX-2.5's split release, as its comments say to
        reference["model"].update(SPLIT_RELEASE)
        source = tmp_path / f"{source.stem}_split.yaml"
        source.write_text(yaml.safe_dump(reference))
    output = converted(source, conf_dir)
    written = yaml.safe_load(output.read_text())["model"]
    assert (written.get("vae_checkpoint"), written.get("audio_vae_checkpoint")) == (
        (SPLIT_RELEASE["video_vae_path"], SPLIT_RELEASE["audio_vae_path"]) if split else (None, None)
    )
    assert output.read_text().startswith("# @package _global_\n")
    cfg = compose_tiny(conf_dir, output.stem, data_root, "trainer.dry_run=true")

    opt, strategy = reference["optimization"], reference["training_strategy"]
    assert cfg.optimizer.lr == float(opt["learning_rate"]) and cfg.trainer.max_steps == opt["steps"]
    assert (cfg.trainer.batch_size, cfg.trainer.grad_accum) == (opt["batch_size"], opt["gradient_accumulation_steps"])
    assert cfg.trainer.gradient_checkpointing == opt["enable_gradient_checkpointing"]
    assert cfg.trainer.mixed_precision == reference["acceleration"]["mixed_precision_mode"]
    assert cfg.trainer.seed == reference["seed"] and cfg.checkpoint.every == reference["checkpoints"]["interval"]
    assert OmegaConf.to_container(cfg.lora.target_modules) == reference["lora"]["target_modules"]
    assert (cfg.lora.rank, cfg.lora.alpha) == (reference["lora"]["rank"], reference["lora"]["alpha"])
    assert cfg.optimizer._target_.endswith({"adamw": "AdamW", "adamw8bit": "AdamW8bit"}[opt["optimizer_type"]])
    assert cfg.validation.every == reference["validation"]["interval"]
    theirs = reference["validation"]
    guidance = cfg.validation_videos.guidance
    assert cfg.validation_videos.num_steps == theirs["inference_steps"]
    assert (guidance.video.cfg_scale, guidance.audio.cfg_scale) == (
        theirs["video_cfg_scale"],
        theirs["audio_cfg_scale"],
    )
    assert (guidance.video.stg_scale, guidance.audio.stg_scale) == (
        theirs["video_stg_scale"],
        theirs["audio_stg_scale"],
    )
    written = yaml.safe_load(output.read_text())["validation_videos"]["guidance"]
    assert written["video"]["stg_blocks"] == theirs["stg_blocks"] and guidance.audio.rescale_scale == 0.7
    assert guidance.audio.modality_scale == theirs["audio_modality_guidance_scale"]
    for modality in ("video", "audio"):
        theirs, ours = strategy.get(modality), cfg.strategy[modality]
        if theirs is None:
            assert ours is None
            continue
        assert (ours.is_generated, ours.latents_dir) == (theirs["is_generated"], theirs["latents_dir"])
        kinds = [c._target_.rsplit(".", 1)[-1] for c in ours.conditions]
        assert kinds == [CLASS[c["type"]] for c in theirs.get("conditions", [])]

    report = estimate(cfg)
    assert (report.video_tokens > 0) == (strategy.get("video") is not None)
    assert (report.audio_tokens > 0) == (strategy.get("audio") is not None)
    assert 0 < report.trainable_params < report.total_params


@needs_reference
def test_what_is_not_carried_over_is_printed_and_heads_the_file(tmp_path: Path, capsys) -> None:
    output = tmp_path / "experiment" / "my_low_vram.yaml"
    assert main([str(REFERENCE / "t2v_lora_low_vram.yaml"), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    header = [line for line in output.read_text().splitlines() if line.startswith("#")]
    for key in ("acceleration.quantization=int8-quanto", "validation.video_dims=[576, 576, 49]", "output_dir="):
        assert key in printed and any(key in line for line in header), key
    assert f"python train.py --config-dir {tmp_path} experiment=my_low_vram" in printed
    body = yaml.safe_load(output.read_text())
    assert {"override /optimizer": "adamw8bit"} in body["defaults"]
    assert body["model"]["quantization"] == "int8"  # int8-quanto: torchao's int8 base


def test_fp8_quantization_full_fine_tune_and_defaults_carry_over(tmp_path: Path) -> None:
    source = tmp_path / "full.yaml"
    source.write_text(
        "model: {model_path: /models/ltx-2.safetensors, training_mode: full}\n"
        "lora: {rank: 8}\n"
        "training_strategy: {name: text_to_video, with_audio: true}\n"
        "acceleration: {quantization: fp8-quanto}\n"
        "data: {preprocessed_data_root: /data/x}\n"
        "wandb: {enabled: true, project: mine, tags: [a]}\n"
    )
    output = tmp_path / "experiment" / "full.yaml"
    assert main([str(source), "-o", str(output)]) == 0
    body = yaml.safe_load(output.read_text())
    assert {"override /lora": "none"} in body["defaults"] and {"override /logger": "wandb"} in body["defaults"]
    # A full fine-tune has no frozen base to quantize: the key is listed as not carried over.
    assert body["model"] == {"checkpoint": "/models/ltx-2.safetensors"}
    assert "acceleration.quantization=fp8-quanto: model.training_mode is full" in output.read_text()
    assert body["logger"]["mode"] == "online" and body["logger"]["project"] == "mine"
    assert body["strategy"]["with_audio"] is True and body["trainer"]["max_steps"] == 3000  # ltx-trainer's default
    assert body["optimizer"]["lr"] == 5e-4 and body["trainer"]["mixed_precision"] == "bf16"
    assert "lora.rank=8: model.training_mode is full" in output.read_text()


@pytest.mark.parametrize(
    ("quanto", "ours"), [("fp8-quanto", "fp8_cast"), ("int8-quanto", "int8"), ("int4-quanto", None)]
)
def test_quanto_quantizations_become_ltxtune_ones_or_are_listed(quanto: str, ours: str | None, tmp_path: Path) -> None:
    source = tmp_path / "lora.yaml"
    source.write_text(
        "model: {model_path: /models/ltx-2.safetensors, training_mode: lora}\n"
        f"acceleration: {{quantization: {quanto}}}\n"
        "data: {preprocessed_data_root: /data/x}\n"
    )
    output = tmp_path / "experiment" / "q.yaml"
    assert main([str(source), "-o", str(output)]) == 0
    assert yaml.safe_load(output.read_text())["model"].get("quantization") == ours
    assert f"acceleration.quantization={quanto}" in output.read_text()  # how it differs, or why it is not carried


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ltxtune.convert", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("kind", ["missing", "not_yaml", "not_ltx_trainer", "ltxtune_preset"])
def test_bad_input_ends_in_one_error_line_and_exit_code_2(kind: str, tmp_path: Path) -> None:
    source = {
        "missing": tmp_path / "nope.yaml",
        "not_yaml": tmp_path / "bad.yaml",
        "not_ltx_trainer": tmp_path / "other.yaml",
        "ltxtune_preset": CONF / "experiment" / "i2v.yaml",
    }[kind]
    if kind == "not_yaml":
        source.write_text("model: [unclosed\n  : : :\n")
    if kind == "not_ltx_trainer":
        source.write_text("learning_rate: 0.1\nepochs: 3\n")
    result = run_cli(str(source), "-o", str(tmp_path / "experiment" / "x.yaml"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "experiment" / "x.yaml").exists()


MINIMAL = {
    "model": {"model_path": "/models/ltx-2.safetensors"},
    "lora": {"rank": 32, "target_modules": ["to_k", "to_q"]},
    "optimization": {"steps": 100},
    "data": {"preprocessed_data_root": "/data/x"},
    "checkpoints": {},
    "flow_matching": {},
    "validation": {},
}
FLEXIBLE = {
    "name": "flexible",
    "video": {"latents_dir": "latents", "conditions": [{"type": "spatial_crop", "spatial_region": [0, 0, 64, 64]}]},
}


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("lora", "target_modules", "to_k", "lora.target_modules='to_k': expected a list of strings"),
        ("lora", "rank", "sixteen", "lora.rank='sixteen': expected an integer"),
        ("lora", "alpha", [32], "lora.alpha=[32]: expected a number"),
        ("optimization", "steps", "ten", "optimization.steps='ten': expected an integer"),
        ("optimization", "batch_size", 1.5, "optimization.batch_size=1.5: expected an integer"),
        ("optimization", "learning_rate", "nan", "optimization.learning_rate='nan': expected a number"),
        ("optimization", "enable_gradient_checkpointing", "no", "checkpointing='no': expected true or false"),
        ("model", "model_path", None, "model.model_path=None: expected a string"),
        ("checkpoints", "interval", "often", "checkpoints.interval='often': expected an integer"),
        ("flow_matching", "timestep_sampling_params", [1], "params=[1]: expected a mapping of keys"),
        ("validation", "stg_blocks", 28, "validation.stg_blocks=28: expected a list of integers"),
        ("wandb", "tags", "mine", "wandb.tags='mine': expected a list of strings"),
        ("training_strategy", "video", "latents", "training_strategy.video='latents': expected a mapping of keys"),
        (
            "spatial_crop",
            "spatial_region",
            "abcd",
            "conditions[0].spatial_region='abcd': expected a list of 4 integers",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_named_in_one_line(section, key, value, expected, tmp_path, capsys) -> None:
    """Nothing is carried over as something else: a string target_modules is not split into characters, a word
    is not a number, "no" is not true."""
    config = {**copy.deepcopy(MINIMAL), "wandb": {"enabled": True}, "training_strategy": copy.deepcopy(FLEXIBLE)}
    if section == "spatial_crop":
        config["training_strategy"]["video"]["conditions"][0][key] = value
    else:
        config[section][key] = value
    source = tmp_path / "reference.yaml"
    source.write_text(yaml.safe_dump(config))
    output = tmp_path / "experiment" / "x.yaml"
    assert main([str(source), "-o", str(output)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {source}: ") and lines[0].endswith(expected), lines
    assert not output.exists()


@needs_reference
@pytest.mark.slow
def test_converted_i2v_trains_two_steps(conf_dir: Path, data_root: Path, tmp_path: Path) -> None:
    from ltxtune.training.run import train

    output = converted(REFERENCE / "i2v_lora.yaml", conf_dir)
    cfg = compose_tiny(
        conf_dir,
        output.stem,
        data_root,
        *SMALL,
        "trainer.max_steps=2",
        "trainer.mixed_precision=no",
        "loader.num_workers=0",
    )
    train(cfg, tmp_path)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2


def ltx_trainer_config(where: Path, name: str = "mine.yaml") -> Path:
    source = where / name
    source.write_text(
        "model: {model_path: /models/ltx-2.safetensors, training_mode: lora}\n"
        "optimization: {learning_rate: 0.0003, steps: 123}\n"
        "data: {preprocessed_data_root: /data/x}\n"
    )
    return source


def test_by_default_the_experiment_goes_to_my_conf_and_the_printed_command_loads_it(tmp_path: Path) -> None:
    """From any directory (an installed package has no checkout around it), the experiment lands in ./my_conf,
    never among the package's own configs, and the command printed uses it as written."""
    ltx_trainer_config(tmp_path)
    result = run_cli("mine.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my_conf" / "experiment" / "mine.yaml").is_file()
    assert not (CONF / "experiment" / "mine.yaml").exists()
    command = result.stdout.strip().splitlines()[-1].removeprefix("train it: ")
    assert command == "python train.py --config-dir my_conf experiment=mine"
    args = [sys.executable, str(ROOT / "train.py"), *command.split()[2:], "--cfg", "job", "--resolve"]
    composed = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert composed.returncode == 0, composed.stderr
    config = yaml.safe_load(composed.stdout)
    assert (config["optimizer"]["lr"], config["trainer"]["max_steps"]) == (0.0003, 123)
    assert config["model"]["checkpoint"] == "/models/ltx-2.safetensors"


def test_an_experiment_named_like_a_shipped_preset_is_refused(tmp_path: Path) -> None:
    """ltxtune's own i2v would be loaded instead of the user's: the converter says so and writes nothing."""
    ltx_trainer_config(tmp_path, "i2v.yaml")
    result = run_cli("i2v.yaml", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "experiment=i2v is a preset shipped with ltxtune" in lines[0]
    assert not (tmp_path / "my_conf").exists()


def convert_text(tmp_path: Path, text: str, name: str = "split") -> dict:
    source = tmp_path / f"{name}.yaml"
    source.write_text(text)
    assert main([str(source), "-o", str(tmp_path / "conf" / "experiment" / f"{name}.yaml")]) == 0
    return yaml.safe_load((tmp_path / "conf" / "experiment" / f"{name}.yaml").read_text())


def compose_converted(conf_dir: Path, name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", [f"hydra.searchpath=[file://{conf_dir}]", f"experiment={name}", *overrides])


def test_split_release_files_become_the_model_files_the_validation_clips_decode_with(tmp_path, capsys) -> None:
    model = "\n".join(f"  {k}: {v}" for k, v in SPLIT_RELEASE.items())
    body = convert_text(tmp_path, f"model:\n{model}\ndata: {{preprocessed_data_root: /data/x}}\n")
    assert body["model"] == {
        "checkpoint": SPLIT_RELEASE["model_path"],
        "vae_checkpoint": SPLIT_RELEASE["video_vae_path"],
        "audio_vae_checkpoint": SPLIT_RELEASE["audio_vae_path"],
    }
    assert f"model.text_encoder_path={SPLIT_RELEASE['text_encoder_path']}: " in capsys.readouterr().out
    cfg = compose_converted(tmp_path / "conf", "split")
    assert cfg.model.connectors_checkpoint == SPLIT_RELEASE["model_path"]  # LTX-2.5 keeps them with the blocks
    assert cfg.validation_videos.decoder_checkpoint == SPLIT_RELEASE["video_vae_path"]
    assert cfg.validation_videos.audio_decoder_checkpoint == SPLIT_RELEASE["audio_vae_path"]


def test_a_video_vae_of_its_own_leaves_the_audio_vae_in_the_checkpoint(tmp_path) -> None:
    """ltx-trainer reads each VAE from model_path unless told; ltxtune's audio VAE follows the video VAE's file."""
    body = convert_text(
        tmp_path,
        "model: {model_path: /m/ltx-2.3.safetensors, video_vae_path: /m/vae.safetensors}\n"
        "data: {preprocessed_data_root: /data/x}\n",
    )
    cfg = compose_converted(tmp_path / "conf", "split")
    assert body["model"]["vae_checkpoint"] == cfg.validation_videos.decoder_checkpoint == "/m/vae.safetensors"
    assert cfg.model.audio_vae_checkpoint == cfg.validation_videos.audio_decoder_checkpoint == "/m/ltx-2.3.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("release", ["ltx2.3", pytest.param("ltx2.5", marks=needs_ltx_core_12)])
def test_converted_split_release_trains_and_decodes_with_its_vae_files(release, tmp_path, recwarn) -> None:
    """model_path, video_vae_path and audio_vae_path as ltx-trainer 1.2 names them: the run trains on the
    transformer file and renders its validation clips with the real VAE files (no random-weight decoder)."""
    from ltxtune.training.run import train

    if release == "ltx2.5":
        files = write_split_checkpoint(tmp_path / "release", ltx25=True)
    else:  # LTX-2.3 in one file, its VAEs beside it
        files = {
            "transformer": write_tiny_checkpoint(tmp_path / "release" / "ltx-2.3.safetensors", ltx23=True),
            "vae": write_tiny_vae_checkpoint(tmp_path / "release" / "vae.safetensors"),
            "audio_vae": write_tiny_audio_checkpoint(tmp_path / "release" / "audio_vae.safetensors"),
        }
    convert_text(
        tmp_path,
        f"model: {{model_path: {files['transformer']}, video_vae_path: {files['vae']},"
        f" audio_vae_path: {files['audio_vae']}}}\n"
        "training_strategy: {name: text_to_video, with_audio: true}\n"
        "optimization: {steps: 2, batch_size: 1}\n"
        "validation: {interval: 2, inference_steps: 1, stg_blocks: [1]}\n"
        "acceleration: {mixed_precision_mode: 'no'}\n"
        f"data: {{preprocessed_data_root: {tmp_path / 'data'}}}\n",
    )
    cfg = compose_converted(
        tmp_path / "conf",
        "split",
        "data=synthetic",  # the tiny model's data in place of the reference's precomputed dataset
        f"data.root={tmp_path / 'data'}",
        "data.num_samples=4",
        "data.val_samples=1",
        "data.text_tokens=128",
        "model.caption_channels=64",
        "model.audio_caption_channels=32",
        "model.dtype=float32",
        "validation_videos.num_prompts=1",
        "loader.num_workers=0",
        "logger=none",
    )
    train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "completed"
    assert list((tmp_path / "run" / "samples").rglob("*.mp4"))
    assert not [w for w in recwarn if "random weights" in str(w.message)]  # decoded with the VAE files
