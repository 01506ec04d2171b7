"""Never a silently wrong run, never a lost run: non-finite losses, bad sample files, run directories that
belong to one run, what a kill leaves behind, Ctrl-C, and one line for every mistake a user can make."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, compose_cfg
from ltxtune.data.spec import PrecomputedData
from ltxtune.errors import ConfigError, DataError, TrainingError
from ltxtune.training.checkpoint import resolve_resume
from ltxtune.training.parts import build_parts
from ltxtune.training.run import train


def cli(run_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "train.py", "logger=none", "trainer.batch_size=2", "validation.every=0",
        "validation.sigmas=[0.5]", "validation_videos.enabled=false", "data.num_samples=8", "data.val_samples=2",
        f"data.root={data_root}", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip


@pytest.fixture()
def data_copy(synthetic_root, tmp_path) -> Path:
    """A private copy of the synthetic dataset that a test may damage."""
    build_parts(compose_cfg(data_root=synthetic_root)).data.prepare()  # written on first use
    copy = tmp_path / "data"
    shutil.copytree(synthetic_root, copy)
    return copy


def edit(path: Path, change) -> None:
    data = torch.load(path, weights_only=True)
    change(data)
    torch.save(data, path)


def precomputed(root: Path, *extra: str):
    return compose_cfg("data=precomputed", f"data.root={root}", "data.val_samples=2", *extra)


# ---------------------------------------------------------------------------------------------- non-finite


def test_a_nan_in_one_latents_file_fails_the_run_naming_the_file_and_writes_no_lora(data_copy, tmp_path) -> None:
    edit(data_copy / "latents" / "sample_0001.pt", lambda d: d["latents"].view(-1)[:10].fill_(float("nan")))
    run_dir = tmp_path / "run"
    cfg = precomputed(data_copy, "trainer.batch_size=1", "trainer.max_steps=20")
    with pytest.raises(TrainingError, match=r"step \d+: the training loss is nan; the batch held sample_0001\.pt"):
        train(cfg, run_dir)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "failed" and result["objective"] == float("inf") and "sample_0001.pt" in result["error"]
    assert not (run_dir / "lora.safetensors").exists()
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(row.get("train/loss", 0) == row.get("train/loss", 0) for row in logged)  # no NaN was logged


def test_a_diverging_learning_rate_fails_instead_of_completing(synthetic_root, tmp_path) -> None:
    cfg = compose_cfg("optimizer.lr=1e12", "trainer.max_grad_norm=0", "trainer.max_steps=30", data_root=synthetic_root)
    with pytest.raises(TrainingError, match=r"not finite|is nan|is inf"):
        train(cfg, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"
    assert not (tmp_path / "lora.safetensors").exists()


def test_nonfinite_skip_skips_the_step_counts_it_and_completes(data_copy, tmp_path) -> None:
    edit(data_copy / "latents" / "sample_0001.pt", lambda d: d["latents"].view(-1)[:10].fill_(float("inf")))
    cfg = precomputed(data_copy, "trainer.batch_size=1", "trainer.max_steps=12", "trainer.nonfinite=skip")
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = [r for r in rows if "train/skipped_steps" in r]
    assert skipped and "train/loss" not in skipped[0]
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "lora.safetensors").values())


# ---------------------------------------------------------------------------------------------- bad samples


@pytest.mark.parametrize(
    ("directory", "change", "message"),
    [
        ("latents", lambda d: d.__setitem__("latents", d["latents"][:64]), "64 channels, expected 128"),
        ("latents", lambda d: d.__setitem__("lat", d.pop("latents")), "no 'latents' tensor"),
        ("latents", lambda d: d.__setitem__("num_frames", 7), "the header says num_frames=7"),
        ("conditions", lambda d: d.__setitem__("video_prompt_embeds", torch.randn(16, 48)), "48 wide, the model"),
        ("audio_latents", lambda d: d.__setitem__("latents", d["latents"][:4]), "expected [8, T, 16]"),
        ("latents", None, "the file is empty"),
    ],
)
def test_a_bad_sample_file_is_named_with_what_was_found_and_expected(data_copy, tmp_path, directory, change, message):
    path = data_copy / directory / "sample_0002.pt"
    if change is None:
        path.write_bytes(b"")
    else:
        edit(path, change)
    with pytest.raises(DataError) as caught:
        train(precomputed(data_copy, "strategy.with_audio=true"), tmp_path)
    assert str(path) in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("lacking", ["latents", "conditions"])
def test_a_sample_missing_from_any_directory_is_reported_alike(data_copy, tmp_path, lacking) -> None:
    (data_copy / lacking / "sample_0003.pt").unlink()
    with pytest.raises(DataError, match=rf"1 of \d+ samples have no file in {lacking}/: sample_0003\.pt"):
        train(precomputed(data_copy), tmp_path)


def test_strict_false_leaves_out_unreadable_samples_and_reports_them(data_copy, tmp_path) -> None:
    edit(data_copy / "latents" / "sample_0002.pt", lambda d: d.__setitem__("latents", d["latents"][:64]))
    (data_copy / "conditions" / "sample_0005.pt").write_bytes(b"")
    train(precomputed(data_copy, "data.strict=false"), tmp_path)
    report = json.loads((tmp_path / "left_out_samples.json").read_text())
    assert sorted(report) == ["sample_0002.pt", "sample_0005.pt"]
    assert "64 channels, expected 128" in report["sample_0002.pt"] and "empty" in report["sample_0005.pt"]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "completed" and result["left_out_samples"] == 2


@pytest.mark.parametrize(
    "strategy, directory", [("video_to_video", "reference_latents"), ("inpainting", "mask_latents")]
)
def test_samples_without_their_reference_or_mask_are_left_out_with_strict_false_and_refused_naming_the_file(
    data_copy, tmp_path, capsys, strategy, directory
) -> None:
    for name in ("sample_0001.pt", "sample_0004.pt"):  # rows preprocessed without a reference / a mask
        (data_copy / directory / name).unlink()
    short = ("trainer.max_steps=1", "validation_videos.enabled=false", f"strategy={strategy}")
    with pytest.raises(DataError) as refused:
        train(precomputed(data_copy, *short), tmp_path / "strict")
    first = data_copy / directory / "sample_0001.pt"
    assert f"the first missing file: {first}); data.strict=false leaves such samples out" in str(refused.value)

    train(precomputed(data_copy, *short, "data.strict=false"), tmp_path / "lenient")
    out = capsys.readouterr().out
    assert "8 training samples, 2 held out, 2 missing a file left out" in out
    assert (
        f"warning: left out 2 samples: 2 missing a file (data.strict=false), e.g. sample_0001.pt: no file {first}"
        in out
    )
    report = json.loads((tmp_path / "lenient" / "left_out_samples.json").read_text())
    assert sorted(report) == ["sample_0001.pt", "sample_0004.pt"] and directory in report["sample_0004.pt"]
    result = json.loads((tmp_path / "lenient" / "result.json").read_text())
    assert result["status"] == "completed" and result["left_out_samples"] == 2


@pytest.mark.slow
def test_clips_without_sound_train_video_only_and_are_left_out_and_reported_where_audio_is_needed(
    data_copy, tmp_path, capsys
) -> None:
    for name in ("sample_0001.pt", "sample_0004.pt"):  # what preprocessing writes for a clip without sound
        (data_copy / "audio_latents" / name).unlink()
    train(precomputed(data_copy, "trainer.max_steps=1", "validation_videos.enabled=false"), tmp_path / "video")
    assert "10 training samples, 2 held out (" in capsys.readouterr().out  # every sample trains video-only
    assert not (tmp_path / "video" / "left_out_samples.json").exists()

    train(
        precomputed(data_copy, "strategy.with_audio=true", "trainer.max_steps=1", "validation_videos.enabled=false"),
        tmp_path / "audio",
    )
    out = capsys.readouterr().out
    assert "8 training samples, 2 held out, 2 without audio left out" in out
    assert "warning: left out 2 samples: 2 without audio, e.g. sample_0001.pt: no file in audio_latents/" in out
    report = json.loads((tmp_path / "audio" / "left_out_samples.json").read_text())
    assert sorted(report) == ["sample_0001.pt", "sample_0004.pt"]
    assert "a clip without an audio track" in report["sample_0004.pt"]
    result = json.loads((tmp_path / "audio" / "result.json").read_text())
    assert result["status"] == "completed" and result["left_out_samples"] == 2

    for path in (data_copy / "audio_latents").glob("*.pt"):
        path.unlink()
    with pytest.raises(DataError, match=r"no sample .* has a file in every one of audio_latents/"):
        train(precomputed(data_copy, "strategy.with_audio=true"), tmp_path / "none")


def test_text_features_without_audio_embeds_train_video_only_and_an_audio_strategy_names_the_file(
    data_copy, tmp_path
) -> None:
    for i, path in enumerate(sorted((data_copy / "conditions").glob("*.pt"))):
        if i % 2:  # half of them, so that batches mix both kinds
            edit(path, lambda d: d.pop("audio_prompt_embeds"))
    train(precomputed(data_copy, "trainer.max_steps=3"), tmp_path / "video")
    assert json.loads((tmp_path / "video" / "result.json").read_text())["status"] == "completed"

    with pytest.raises(DataError) as caught:
        train(precomputed(data_copy, "strategy.with_audio=true", "trainer.max_steps=3"), tmp_path / "audio")
    message = str(caught.value)
    assert "\n" not in message and str(data_copy / "conditions") in message
    assert "no audio_prompt_embeds tensor" in message and "audio track (audio_latents/)" in message


def test_val_samples_zero_trains_and_measures_the_objective_on_fixed_training_samples(synthetic_root, tmp_path):
    objectives = []
    for name in ("a", "b"):
        objectives.append(train(compose_cfg("data.val_samples=0", data_root=synthetic_root), tmp_path / name).objective)
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["status"] == "completed" and result["validation"] == "training_subset"
    assert objectives[0] == objectives[1] and objectives[0] < float("inf")


def test_a_precomputed_dataset_holds_out_a_fraction_by_default() -> None:
    data = PrecomputedData("/data")  # conf/data/precomputed.yaml's defaults: val_samples null, val_fraction 0.1
    assert [data.held_out(n) for n in (1, 2, 12, 64, 1000)] == [0, 1, 1, 6, 100]
    assert PrecomputedData("/data", val_samples=0).held_out(12) == 0
    with pytest.raises(ConfigError, match=r"val_samples=2\.5"):
        PrecomputedData("/data", val_samples=2.5)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("a latents file", "this file has no video_prompt_embeds (it holds fps, height, latents, num_frames, width)"),
        ("another encoder's features", "its video_prompt_embeds is [16, 48]"),
        ("a text file", "not a plain tensor file"),
    ],
)
def test_negative_conditions_that_are_no_text_features_of_this_data_are_refused_before_training(
    synthetic_root, tmp_path, kind, message
) -> None:
    """validation_videos.negative_conditions names a conditions/ file; a latents file, features of another width
    or no tensor file at all is named with what it must hold before any step, not a traceback at validation."""
    build_parts(compose_cfg(data_root=synthetic_root)).data.prepare()
    path = {
        "a latents file": synthetic_root / "latents" / "sample_0000.pt",
        "another encoder's features": tmp_path / "negative.pt",
        "a text file": tmp_path / "negative.txt",
    }[kind]
    if kind == "another encoder's features":
        torch.save({"video_prompt_embeds": torch.zeros(16, 48), "prompt_attention_mask": torch.ones(16)}, path)
    if kind == "a text file":
        path.write_text("blurry, low quality\n")
    cfg = compose_cfg(f"validation_videos.negative_conditions={path}", data_root=synthetic_root)
    with pytest.raises(ConfigError) as caught:
        train(cfg, tmp_path / "run")
    line = str(caught.value)
    assert line.startswith(f"validation_videos.negative_conditions='{path}' is not allowed: a conditions/ file")
    assert "video_prompt_embeds [L, 32] and prompt_attention_mask [L]" in line and message in line, line
    assert json.loads((tmp_path / "run" / "result.json").read_text())["steps"] == 0


# ---------------------------------------------------------------------------------------------- the run directory


def test_a_fresh_run_refuses_a_used_directory_and_overwrite_or_resume_is_explicit(synthetic_root, tmp_path) -> None:
    train(compose_cfg(data_root=synthetic_root), tmp_path)
    lora, metrics = (tmp_path / "lora.safetensors").read_bytes(), (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(TrainingError, match=r"already holds a run .*checkpoint.resume=auto.*trainer.overwrite=true"):
        train(compose_cfg("trainer.seed=1", data_root=synthetic_root), tmp_path)
    assert (tmp_path / "lora.safetensors").read_bytes() == lora and (tmp_path / "metrics.jsonl").read_text() == metrics
    train(compose_cfg("trainer.seed=1", "trainer.overwrite=true", data_root=synthetic_root), tmp_path)
    assert (tmp_path / "lora.safetensors").read_bytes() != lora


def test_resume_auto_in_a_run_stopped_before_its_first_checkpoint_says_there_is_none(synthetic_root, tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "val/loss": 3.3}\n')  # killed before checkpoint.every
    with pytest.raises(TrainingError, match=r"already holds a run \(metrics.jsonl\) but no checkpoint to resume from"):
        train(compose_cfg("checkpoint.resume=auto", data_root=synthetic_root), tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 0, "val/loss": 3.3}\n'


def test_a_state_pt_that_is_not_plain_tensors_is_refused_in_one_line(synthetic_root, tmp_path) -> None:
    """A checkpoint copied from elsewhere (no manifest to check it against): its state.pt is read with
    weights_only=True, and one that holds pickled objects, bytes of something else or another program's dict
    is refused naming the checkpoint and what is wrong, never a traceback."""
    first = tmp_path / "first"
    train(compose_cfg("trainer.max_steps=2", "checkpoint.every=1", data_root=synthetic_root), first)
    bad_states = {
        "pickled": ({"step": 1, "where": Path("/x")}, "holds Python objects besides tensors"),
        "damaged": (b"\x80\x02not a torch file" * 50, "not a file torch.save wrote, or it is damaged"),
        "foreign": ({"epoch": 3, "model": {}}, "its state.pt lacks step, consumed, trainable"),
    }
    for name, (content, message) in bad_states.items():
        run = shutil.copytree(first, tmp_path / name)
        checkpoint = run / "checkpoints" / "step_000001"
        (checkpoint / "manifest.json").unlink()
        if isinstance(content, bytes):
            (checkpoint / "state.pt").write_bytes(content)
        else:
            torch.save(content, checkpoint / "state.pt")
        cfg = compose_cfg("trainer.max_steps=3", f"checkpoint.resume={checkpoint}", data_root=synthetic_root)
        with pytest.raises(ConfigError) as caught:
            train(cfg, tmp_path / "elsewhere")
        line = str(caught.value)
        assert line.startswith(f"checkpoint.resume='{checkpoint}' is not allowed") and message in line, line
        assert "\n" not in line


def lora_file(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("a text file", "this file is not safetensors"),
        ("a torch file", "this file is not safetensors"),
        ("no LoRA keys", "this file holds no '<module>.lora_A.weight' tensors"),
        ("another rank", "a LoRA of rank 16 (lora.rank); this one has rank 8: train it with lora.rank=8"),
    ],
)
def test_a_file_that_is_no_lora_of_this_rank_is_refused_as_init_from(tmp_path, kind, message) -> None:
    """Refused when the config is checked, before any model is built, instead of a safetensors traceback."""
    path = {
        "a text file": tmp_path / "notes.txt",
        "a torch file": tmp_path / "lora.pt",
        "no LoRA keys": tmp_path / "model.safetensors",
        "another rank": tmp_path / "lora.safetensors",
    }[kind]
    if kind == "a text file":
        path.write_text("my LoRA is somewhere else\n")
    elif kind == "a torch file":
        torch.save({"diffusion_model.a.lora_A.weight": torch.zeros(16, 32)}, path)
    elif kind == "no LoRA keys":
        lora_file(path, {"model.diffusion_model.a.weight": torch.zeros(4, 4)})
    else:
        a, b = torch.zeros(8, 64), torch.zeros(64, 8)
        lora_file(path, {"diffusion_model.a.to_q.lora_A.weight": a, "diffusion_model.a.to_q.lora_B.weight": b})
    with pytest.raises(ConfigError) as caught:
        build_parts(compose_cfg(f"lora.init_from={path}"))
    line = str(caught.value)
    assert line.startswith(f"lora.init_from='{path}' is not allowed") and message in line, line


def test_two_identical_runs_write_byte_identical_lora_files(synthetic_root, tmp_path) -> None:
    digests = set()
    for name in ("a", "b"):
        train(compose_cfg(data_root=synthetic_root), tmp_path / name)
        digests.add(hashlib.sha256((tmp_path / name / "lora.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_resume_tolerates_a_torn_metrics_line_and_a_damaged_newest_checkpoint(synthetic_root, tmp_path, capsys):
    train(compose_cfg("trainer.max_steps=6", "checkpoint.every=2", "checkpoint.keep_last=3", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    (tmp_path / "lora.safetensors").unlink()  # as a kill in step 5 leaves it: no final state, weights or result
    (tmp_path / "result.json").unlink()
    shutil.rmtree(tmp_path / "checkpoints" / "step_000006")
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "train/lo')  # what a kill mid-write leaves
    state = tmp_path / "checkpoints" / "step_000004" / "state.pt"
    state.write_bytes(state.read_bytes()[:-100])
    assert resolve_resume("auto", tmp_path).name == "step_000002"
    assert "step_000004 is damaged (state.pt has" in capsys.readouterr().out
    with pytest.raises(Exception, match="damaged"):
        resolve_resume(str(tmp_path / "checkpoints" / "step_000004"), tmp_path)
    train(compose_cfg("trainer.max_steps=6", "checkpoint.every=2", "checkpoint.resume=auto", data_root=synthetic_root),
          tmp_path)  # fmt: skip
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 0] == sorted(s for s in steps if s > 0) and steps.count(5) == 1
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_second_process_in_a_live_run_directory_is_kept_out(synthetic_root, tmp_path) -> None:
    first = subprocess.Popen(cli(tmp_path, synthetic_root, "trainer.max_steps=4000", "checkpoint.every=10"), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "checkpoints").glob("step_*/manifest.json")):  # a checkpoint to resume later
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = subprocess.run(cli(tmp_path, synthetic_root, "checkpoint.resume=auto"), cwd=ROOT,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"another process (pid {first.pid}) is training in {tmp_path}" in second.stderr
    finally:
        first.kill()
        first.wait()
    # The killed run's lock is gone with it: a resume starts at once (a few steps past its newest checkpoint).
    newest = max(int(p.name.removeprefix("step_")) for p in (tmp_path / "checkpoints").glob("step_*"))
    more = f"trainer.max_steps={newest + 10}"
    done = subprocess.run(cli(tmp_path, synthetic_root, more, "checkpoint.resume=auto"), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_says_interrupted_and_a_second_aborts(synthetic_root, tmp_path) -> None:
    proc = subprocess.Popen(cli(tmp_path, synthetic_root, "trainer.max_steps=2000", "checkpoint.every=0"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 120
    while not ((tmp_path / "metrics.jsonl").is_file() and len((tmp_path / "metrics.jsonl").read_text()) > 2000):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert proc.returncode == 0 and "Traceback" not in text, text[-2000:]
    assert "Ctrl-C: stopped at step" in text
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "interrupted" and result["objective"] == float("inf")
    assert (tmp_path / "checkpoints" / f"step_{result['steps']:06d}" / "state.pt").is_file()


# ---------------------------------------------------------------------------------------------- the system


def full_disk(limit: int):
    """For a child process: files may not grow past ``limit`` bytes (writes then fail as on a full disk)."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


def test_a_full_disk_during_a_checkpoint_fails_in_one_line_and_leaves_a_readable_result(synthetic_root, tmp_path):
    build_parts(compose_cfg(data_root=synthetic_root)).data.prepare()  # the data is written before the limit
    # 400 KiB: the tiny LoRA file (~290 KiB) fits, the checkpoint's optimizer state (~600 KiB) does not.
    args = cli(tmp_path, synthetic_root, "trainer.max_steps=4", "checkpoint.every=2")
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=full_disk(400 << 10))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "state.pt: writing failed" in line and "free on its disk" in line, line
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and "state.pt" in result["error"] and result["steps"] == 2
    assert not list((tmp_path / "checkpoints").iterdir()) and not (tmp_path / "lora.safetensors").exists()


@pytest.mark.parametrize("where", ["run directory under a file", "config.yaml is a directory"])
def test_an_unusable_run_directory_ends_in_one_line(tmp_path, where) -> None:
    if where == "run directory under a file":
        (tmp_path / "file").write_text("")
        run_dir, expected = tmp_path / "file" / "run", f"{tmp_path / 'file'} is a file, not a directory"
    else:
        run_dir, expected = tmp_path / "run", f"{tmp_path / 'run' / 'config.yaml'}: Is a directory"
        (run_dir / "config.yaml").mkdir(parents=True)
    args = [sys.executable, "train.py", "logger=none", f"hydra.run.dir={run_dir}"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert expected in done.stderr.strip().splitlines()[-1], done.stderr[-500:]


@pytest.mark.parametrize(
    "where",
    [
        "the default outputs/ is a file",
        pytest.param(
            "a parent that cannot be entered",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root enters any directory"),
        ),
    ],
)
def test_a_run_directory_that_cannot_be_made_ends_in_one_line(tmp_path, where) -> None:
    """Wherever the directory comes from (the command line or Hydra's default under the working directory)."""
    args = [sys.executable, str(ROOT / "train.py"), "logger=none"]
    if where == "the default outputs/ is a file":
        (tmp_path / "outputs").write_text("")
        expected = f"{tmp_path / 'outputs'} is a file, not a directory (choose another hydra.run.dir)"
    else:
        (tmp_path / "locked").mkdir(mode=0)
        args.append(f"hydra.run.dir={tmp_path / 'locked' / 'run'}")
        expected = "Permission denied (choose another hydra.run.dir)"
    try:
        done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        if (tmp_path / "locked").exists():
            (tmp_path / "locked").chmod(0o700)  # pytest removes tmp_path later
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: hydra.run.dir=") and last.endswith(expected), last


# ---------------------------------------------------------------------------------------------- one line


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["trainer.batch_size=2.5"], "error: trainer.batch_size=2.5 is not allowed: a value of type int"),
        (["data=precomputed"], "error: data.root must be set"),
        (["data=precomputed", "data.root=/nonexistent/data"], "error: data.root='/nonexistent/data' does not exist"),
        (["model=ltx2"], "error: model.checkpoint must be set"),  # keys that follow it (${.checkpoint}) resolve
        (["lora.rank=sixteen"], "error: lora.rank='sixteen' is not allowed: a value of type int"),
        (["optimizer.lr=nan"], "error: optimizer.lr=nan is not allowed: must be a finite number > 0.0"),
    ],
)
def test_a_user_mistake_ends_in_one_line(tmp_path, overrides, line) -> None:
    args = [sys.executable, "train.py", "logger=none", f"hydra.run.dir={tmp_path}", *overrides]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(line), done.stderr[-500:]
