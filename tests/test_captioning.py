"""Captioning on real clips with tiny random models of the real architectures (Qwen2.5-VL, Qwen2.5-Omni), built
here from configs with a byte-level tokenizer: no download. They write gibberish, but through the same loading,
processing, batching and generation code a real checkpoint goes through.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ltxtune.data.captioning.__main__ import main
from ltxtune.data.captioning.clips import SAMPLE_RATE, load_clip
from ltxtune.data.captioning.models import Captioner
from test_real_masks import sample_clips

pytest.importorskip("torchvision", reason="transformers' video processors need torchvision: pip install -e '.[dev]'")
CLIPS = ("bigbuckbunny.mp4", "carphone_pristine.mp4", "bikes.mp4")  # only the first has sound
FAST = ["--fps", "1", "--max-frames", "12", "--max-side", "112", "--max-new-tokens", "6", "--device", "cpu"]
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VL_TOKENS = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
OMNI_TOKENS = {
    "image_token": "<|IMAGE|>",
    "audio_token": "<|AUDIO|>",
    "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}
# The real templates' layout of a turn, without their tool-calling branches
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}{{ VIDEO }}{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
TEXT |= {"num_attention_heads": 2, "num_key_value_heads": 1}
VISION = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32}
VISION |= {"fullatt_block_indexes": [0], "window_size": 56}


def tokenizer(roles: dict[str, str], marks: tuple[str, ...] = ()):
    """A byte-level BPE tokenizer with no merges (every byte a token) and the model's special tokens, ``roles``
    named on the tokenizer (``tok.video_token``), ``marks`` not."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # where transformers 4 and 5 both keep it

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer, core.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    # Added to the core itself: transformers 5 drops additional_special_tokens when extra_special_tokens is given
    specials = [*SPECIAL, *roles.values(), *marks]
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok = Qwen2TokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None,
        extra_special_tokens=roles,
    )  # fmt: skip
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    assert len(tok) == 256 + len(specials) and sorted(ids.values()) == list(range(256, len(tok)))  # each its own id
    return tok, ids


def special_ids(ids: dict[str, int]) -> dict[str, int]:
    """Qwen's bos, eos and pad ids in this tokenizer. Given to the text config too: transformers 5 reads them there
    (and otherwise keeps Qwen's real ids, past this vocabulary, so that eos would never end a caption)."""
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


@pytest.fixture(scope="module")
def tiny_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok, ids = tokenizer(VL_TOKENS, ("<|vision_start|>", "<|vision_end|>"))
    video = "<|vision_start|><|video_pad|><|vision_end|>"
    rope = {"type": "mrope", "mrope_section": [2, 3, 3]}
    config = Qwen2_5_VLConfig(
        text_config={**TEXT, "vocab_size": len(tok), "rope_scaling": rope, **special_ids(ids)},
        vision_config=VISION,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], **special_ids(ids),
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_vl")
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(folder)
    processor = Qwen2_5_VLProcessor(
        Qwen2VLImageProcessor(), tok, Qwen2VLVideoProcessor(), chat_template=TEMPLATE.replace("{{ VIDEO }}", video)
    )
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_omni(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import (
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    tok, ids = tokenizer(OMNI_TOKENS)
    rope = {"type": "default", "mrope_section": [2, 3, 3]}  # the released config's layout
    thinker = {
        "text_config": {**TEXT, "vocab_size": len(tok), "rope_scaling": rope, **special_ids(ids)},
        "vision_config": VISION,
        "audio_config": {"num_mel_bins": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                         "d_model": 32, "output_dim": 32, "n_window": 50},
        "audio_token_index": ids["<|AUDIO|>"], "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"], "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"], "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"], "user_token_id": ids["<|im_start|>"], **special_ids(ids),
    }  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_omni")
    Qwen2_5OmniForConditionalGeneration(
        Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    ).save_pretrained(folder)
    torch.save({}, folder / "spk_dict.pt")  # the voices of the talker, which captioning never loads
    video = "<|vision_bos|><|VIDEO|><|vision_eos|>"
    images, sound = Qwen2VLImageProcessor(), WhisperFeatureExtractor(feature_size=16, chunk_length=8)
    processor = Qwen2_5OmniProcessor(
        images, Qwen2VLVideoProcessor(), sound, tok, chat_template=TEMPLATE.replace("{{ VIDEO }}", video)
    )
    processor.save_pretrained(folder)
    # Both write preprocessor_config.json (the released checkpoints hold one file with both): merge them
    (folder / "preprocessor_config.json").write_text(json.dumps(images.to_dict() | sound.to_dict()))
    return folder


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    for i, name in enumerate(CLIPS):
        (folder / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_clips() / name, folder / f"part{i % 2}" / name)
    return folder


def captions(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*.txt"))}


def test_missing_captions_are_written_and_a_second_run_resumes(
    tiny_vl: Path, videos: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (videos / "part1" / "carphone_pristine.txt").write_text("a man on the phone in a car\n")
    batches: list[int] = []
    caption = Captioner.caption
    monkeypatch.setattr(Captioner, "caption", lambda self, clips: batches.append(len(clips)) or caption(self, clips))
    assert main([str(videos), "--model", str(tiny_vl), "--video-only", "--batch-size", "2", *FAST]) == 0
    written = captions(videos)
    assert sorted(written) == ["part0/bigbuckbunny.txt", "part0/bikes.txt", "part1/carphone_pristine.txt"]
    assert written["part1/carphone_pristine.txt"] == "a man on the phone in a car\n"  # kept
    assert all(text.strip() and text.count("\n") == 1 for text in written.values())  # one line each
    assert batches == [2]  # the two videos without a caption, in one batch
    out = capsys.readouterr().out
    assert "3 videos: 1 have a caption, 2 to caption" in out
    assert "captioned 2 of 2 videos" in out

    assert main([str(videos), "--model", str(tiny_vl), "--video-only", *FAST]) == 0  # resumes: nothing left
    assert "nothing to do" in capsys.readouterr().out
    assert captions(videos) == written
    assert batches == [2]  # no model call the second time

    assert main([str(videos), "--model", str(tiny_vl), "--overwrite", "--batch-size", "2", *FAST]) == 0
    assert batches == [2, 2, 1]
    assert captions(videos)["part1/carphone_pristine.txt"] != "a man on the phone in a car\n"
    assert "does not take sound" in capsys.readouterr().out  # Qwen2.5-VL: frames only, and it says so


def test_omni_hears_the_clip_with_its_frames(
    tiny_omni: Path, videos: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration as Thinker

    calls: list[dict] = []
    generate = Thinker.generate
    monkeypatch.setattr(Thinker, "generate", lambda self, **kw: calls.append(kw) or generate(self, **kw))
    assert main([str(videos), "--model", str(tiny_omni), "--batch-size", "3", *FAST]) == 0
    assert len(captions(videos)) == 3
    # bigbuckbunny (with sound) is run apart from the two silent clips (one call), its sound beside its frames
    heard = [c for c in calls if "input_features" in c]
    assert len(calls) == 2 and len(heard) == 1
    assert heard[0]["use_audio_in_video"] is True and heard[0]["input_ids"].shape[0] == 1
    assert "does not take sound" not in capsys.readouterr().out

    calls.clear()
    assert main([str(videos), "--model", str(tiny_omni), "--video-only", "--overwrite", *FAST]) == 0
    assert calls and not any("input_features" in c for c in calls)


@pytest.mark.parametrize("model", ["tiny_vl", "tiny_omni"])
def test_the_model_is_told_how_far_apart_in_time_the_frames_are(
    model: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both models place frames in time from the clip's frame rate: seconds per pair of frames (one temporal patch),
    2 / fps; under transformers 5 Qwen2.5-VL's processor reads the rate from the videos' metadata, not ``fps``."""
    captioner = Captioner.load(str(request.getfixturevalue(model)), True, None, "cpu", 1)
    calls: list[dict] = []
    generate = type(captioner.model).generate
    monkeypatch.setattr(type(captioner.model), "generate", lambda self, **kw: calls.append(kw) or generate(self, **kw))
    clip = load_clip(sample_clips() / "bikes.mp4", fps=2, max_frames=8, max_side=112, with_audio=False)
    assert clip.fps == pytest.approx(0.8, rel=0.02)  # 10 s: 8 frames at 0.8 a second
    captioner.caption([clip])
    seconds = calls[0]["video_second_per_grid" if "omni" in model else "second_per_grid_ts"]
    assert seconds.tolist() == pytest.approx([2 / clip.fps])


def test_frames_cover_the_whole_clip_and_the_sound_its_span() -> None:
    clip = load_clip(sample_clips() / "bigbuckbunny.mp4", fps=2, max_frames=8, max_side=160, with_audio=True)
    assert clip.frames.shape == (8, 90, 160, 3)  # 5.3 s: 8 frames at 1.5 a second, not the first 4 s at 2
    assert clip.fps == pytest.approx(8 / 5.28, rel=0.02)
    assert clip.audio is not None and clip.audio.dtype == np.float32
    assert len(clip.audio) == pytest.approx(8 / clip.fps * SAMPLE_RATE, rel=0.01)
    silent = load_clip(sample_clips() / "bikes.mp4", fps=2, max_frames=32, max_side=160, with_audio=True)
    assert silent.audio is None and len(silent.frames) == 20  # 10 s at 2 a second


def test_a_folder_without_videos_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path)]) == 2
    assert "no videos in this folder" in capsys.readouterr().err


def test_a_video_that_cannot_be_decoded_is_reported_and_the_rest_captioned(
    tiny_vl: Path, videos: Path, capsys: pytest.CaptureFixture
) -> None:
    (videos / "part1" / "broken.mp4").write_bytes(b"not a video at all")
    assert main([str(videos / "part1"), "--model", str(tiny_vl), "--batch-size", "2", *FAST]) == 1
    assert sorted(captions(videos)) == ["part1/carphone_pristine.txt"]
    assert "no caption: " in (out := capsys.readouterr().out) and "broken.mp4: cannot be decoded" in out
