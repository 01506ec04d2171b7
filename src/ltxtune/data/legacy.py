"""The reference trainer's (ltx-trainer's) dataset layouts, read as they are and seen as ltxtune's (docs/data.md).

Four differences, each normalised here so that the rest of the code sees one layout:

- the data may sit in ``<root>/.precomputed/`` (where ltx-trainer's preprocessing writes it);
- legacy file names: the text features of ``latents/.../latent_<X>.pt`` are ``conditions/condition_<X>.pt``
  (always at the top of ``conditions/``: ltx-trainer pairs them by file name only); every other directory
  (``audio_latents/``, ``reference_latents/``, masks) uses the latents file's own relative path;
- legacy video latents stored patchified, ``[F*H*W, 128]`` with ``num_frames``, ``height``, ``width`` beside
  them: unpatchified to ``[128, F, H, W]`` (token ``f*H*W + h*W + w``, frame-major);
- legacy text features with one ``prompt_embeds`` tensor: used for both ``video_prompt_embeds`` and
  ``audio_prompt_embeds`` (LTX-2's first feature extractor gives both streams the same features).

Keys ltxtune does not read are left in place and never checked.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from torch import Tensor

from ltxtune.errors import DataError

PRECOMPUTED_DIR = ".precomputed"
CONDITIONS_DIR = "conditions"
_LATENT_PREFIX, _CONDITION_PREFIX = "latent_", "condition_"
_GRID = ("num_frames", "height", "width")


def data_root(root: Path) -> Path:
    """The directory that holds the sample directories: ``root/.precomputed`` when there is one, else ``root``."""
    nested = root / PRECOMPUTED_DIR
    return nested if nested.is_dir() else root


def legacy_condition_name(name: str) -> str | None:
    """``.../latent_<X>.pt`` -> ``condition_<X>.pt`` (its legacy text-feature file); ``None`` for other names."""
    base = PurePosixPath(name).name
    if not base.startswith(_LATENT_PREFIX):
        return None
    return _CONDITION_PREFIX + base[len(_LATENT_PREFIX) :]


def pair_legacy_conditions(listed: dict[str, set[str]]) -> dict[str, set[str]]:
    """Directory -> sample names, with ``conditions/condition_<X>.pt`` counted as the sample ``latent_<X>.pt``
    of the other directories (only where ``conditions/`` has no file of that sample's own name)."""
    if CONDITIONS_DIR not in listed:
        return listed
    files = listed[CONDITIONS_DIR]
    others = set().union(*(names for d, names in listed.items() if d != CONDITIONS_DIR))
    paired = {n for n in others if n not in files and legacy_condition_name(n) in files}
    used = {legacy_condition_name(n) for n in paired}
    return {**listed, CONDITIONS_DIR: (files - used) | paired}


def sample_path(root: Path, directory: str, name: str) -> Path:
    """The file of sample ``name`` in ``directory``: its own name, or the legacy ``condition_<X>.pt``."""
    path = root / directory / name
    if directory == CONDITIONS_DIR and (legacy := legacy_condition_name(name)) is not None and not path.is_file():
        return root / directory / legacy
    return path


def patchify(latents: Tensor) -> Tensor:
    """``[C, F, H, W]`` -> ``[F*H*W, C]``, frame-major (the layout legacy datasets stored)."""
    return latents.flatten(1).transpose(0, 1)


def unpatchify(tokens: Tensor, frames: int, height: int, width: int) -> Tensor:
    """``[F*H*W, C]`` (token ``f*H*W + h*W + w``) -> ``[C, F, H, W]``."""
    return tokens.transpose(0, 1).reshape(tokens.shape[1], frames, height, width)


def normalise(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A loaded sample file in ltxtune's layout (a new dict when something changed; ``data`` otherwise)."""
    latents = data.get("latents")
    if isinstance(latents, Tensor) and latents.dim() == 2:
        data = {**data, "latents": _unpatchified(path, data, latents)}
    if isinstance(data.get("prompt_embeds"), Tensor):
        shared = data["prompt_embeds"]
        data = {k: v for k, v in data.items() if k != "prompt_embeds"}  # stacked once, not three times
        data.setdefault("video_prompt_embeds", shared)
        data.setdefault("audio_prompt_embeds", shared)
    return data


def _unpatchified(path: Path, data: dict[str, Any], tokens: Tensor) -> Tensor:
    if missing := [k for k in _GRID if k not in data]:
        raise DataError(
            f"{path}: latents have shape {list(tokens.shape)} (patchified, [F*H*W, C]) but no "
            f"{', '.join(missing)} beside them to unpatchify to [C, F, H, W]"
        )
    frames, height, width = (int(data[k]) for k in _GRID)
    if frames * height * width != tokens.shape[0]:
        raise DataError(
            f"{path}: latents have {tokens.shape[0]} tokens but num_frames={frames}, height={height}, "
            f"width={width} make {frames * height * width}"
        )
    return unpatchify(tokens, frames, height, width)
