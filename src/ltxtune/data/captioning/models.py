"""The captioning model: Qwen2.5-Omni (hears the clip's sound) or a video-only vision-language model such as
Qwen2.5-VL, through transformers, batched.

The checkpoint's own config says which it is. Of Qwen2.5-Omni only the thinker (the text-writing part) is built:
its talker, which speaks answers aloud, is never loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ltxtune.data.captioning.clips import SAMPLE_RATE, Clip

INSTALL = "pip install 'ltxtune[captioning]'"
OMNI = ("qwen2_5_omni", "qwen2_5_omni_thinker")
# Qwen2.5-Omni was trained with this system prompt (its processor warns on any other)
OMNI_SYSTEM = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving auditory and"
    " visual inputs, as well as generating text and speech."
)
_LOOK = (
    "Describe this video clip in one paragraph of plain prose, as a caption for training a video generation model."
    " Begin with the subject or the action itself, not with words such as 'The video shows'. Give the shot type"
    " and any camera motion; the people, animals and objects, how they look and how they move; the setting, its"
    " light and colours; and any text on screen."
)
_ORDER = " Describe only what is there, in the order it happens. No lists, headings or labels."
VIDEO_PROMPT = _LOOK + _ORDER
AUDIO_PROMPT = (
    _LOOK + " Then describe everything that can be heard: speech (quoted word for word), music and other sounds;"
    " say so when there is no speech or no music." + _ORDER
)


class MissingExtra(RuntimeError):
    """A package the video processors of transformers need is not installed."""


@dataclass
class Captioner:
    """A loaded model and its processor; ``hears``: each clip's sound is given to the model with its frames."""

    processor: Any
    model: Any
    hears: bool
    prompt: str
    max_new_tokens: int

    @classmethod
    def load(cls, name: str, video_only: bool, prompt: str | None, device: str, max_new_tokens: int) -> Captioner:
        """Load ``name`` (a Hugging Face id or a local folder) straight onto ``device``, in bfloat16 on a GPU."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor, PretrainedConfig

        try:
            import torchvision  # noqa: F401  (transformers' video processors need it)
        except ImportError:
            raise MissingExtra(f"captioning videos needs torchvision: {INSTALL}") from None
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        # the raw config: AutoConfig does not know a thinker saved alone (qwen2_5_omni_thinker)
        kind = PretrainedConfig.get_config_dict(name)[0].get("model_type")
        if kind == "qwen2_5_omni":
            from transformers import Qwen2_5OmniForConditionalGeneration

            omni = Qwen2_5OmniForConditionalGeneration.from_pretrained(
                name, enable_audio_output=False, dtype=dtype, device_map=device
            )
            model = omni.thinker
        elif kind == "qwen2_5_omni_thinker":
            from transformers import Qwen2_5OmniThinkerForConditionalGeneration

            model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(name, dtype=dtype, device_map=device)
        else:
            try:
                model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, device_map=device)
            except ValueError as exc:
                raise ValueError(f"--model {name}: a {kind!r} model cannot caption videos ({exc})") from None
        processor = AutoProcessor.from_pretrained(name)
        processor.tokenizer.padding_side = "left"  # a batch's prompts end together, where generation begins
        hears = kind in OMNI and not video_only
        default = AUDIO_PROMPT if hears else VIDEO_PROMPT
        return cls(processor, model.eval(), hears, prompt or default, max_new_tokens)

    @property
    def omni(self) -> bool:
        return self.model.config.model_type in OMNI

    def caption(self, clips: list[Clip]) -> list[str]:
        """One caption per clip (``""`` when the model wrote nothing). Clips are run together when they share a
        frame rate and have (or lack) sound alike: the processor takes one rate and one audio setting a call."""
        captions: dict[int, str] = {}
        order = sorted(range(len(clips)), key=lambda i: self._group(clips[i]))
        for _, members in groupby(order, key=lambda i: self._group(clips[i])):
            indices = list(members)
            for i, text in zip(indices, self._generate([clips[i] for i in indices]), strict=True):
                captions[i] = text
        return [captions[i] for i in range(len(clips))]

    def _group(self, clip: Clip) -> tuple[float, bool]:
        return clip.fps, self.hears and clip.audio is not None

    def _generate(self, clips: list[Clip]) -> list[str]:
        import torch

        sound = self.hears and clips[0].audio is not None
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": self.prompt}]}]
        if self.omni:
            messages.insert(0, {"role": "system", "content": [{"type": "text", "text": OMNI_SYSTEM}]})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        extra: dict[str, Any] = {}
        if sound:  # interleaved with the frames in time: Qwen2.5-Omni's "audio in video"
            extra = {"audio": [c.audio for c in clips], "use_audio_in_video": True, "sampling_rate": SAMPLE_RATE}
        # The frame rate sets how far apart in time the model places the frames. Qwen2.5-VL's processor reads it
        # from ``fps`` under transformers 4 but from the videos' metadata under 5 (which else says 24 a second);
        # Qwen2.5-Omni's reads ``fps`` under both.
        metadata = [
            {"total_num_frames": len(c.frames), "fps": c.fps, "frames_indices": list(range(len(c.frames)))}
            for c in clips
        ]
        inputs = self.processor(
            text=[text] * len(clips),
            videos=[list(c.frames) for c in clips],
            fps=clips[0].fps,
            video_metadata=metadata,
            padding=True,
            return_tensors="pt",
            **extra,
        ).to(self.model.device)
        for key in ("pixel_values_videos", "input_features"):  # the model's dtype; timings stay float32
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        settings: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        if self.omni:
            settings["use_audio_in_video"] = sound
        with torch.inference_mode():
            out = self.model.generate(**inputs, **settings, repetition_penalty=1.05)
        written = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [tidy(t) for t in written]


def tidy(text: str) -> str:
    """One line of caption: a reasoning block (``<think>...</think>``) dropped, whitespace runs made one space."""
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.DOTALL)
    return " ".join(text.split())
