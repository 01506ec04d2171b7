"""The Hydra entry point of ``preprocess.py``. Kept light: torch, PyAV and ltx-core load only when a job runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from ltxtune import ranks
from ltxtune.app import CONFIG_MODULE
from ltxtune.app.environment import check_training_environment
from ltxtune.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ltxtune.data.preprocess.pipeline import Encoders, Preprocessor, Summary

SHOWN_SKIPS = 5  # skipped rows printed after the summary; the report lists every one


def build_encoders(cfg: DictConfig) -> Encoders:
    """Instantiate the ``encoders`` group (called only once there is work to do)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ltxtune.data.preprocess.pipeline import Encoders  # torch, PyAV, ltx-core: only once there is work

    def build(name: str) -> object:
        try:
            return instantiate(cfg.encoders[name])
        except InstantiationException as exc:  # Hydra wraps the constructor's own message: give it back as is
            if isinstance(exc.__cause__, ConfigError):
                raise exc.__cause__.within(f"encoders.{name}") from None
            if isinstance(exc.__cause__, DataError):  # a file that is not what it should be, named
                raise exc.__cause__ from None
            raise

    return Encoders(video=build("video"), audio=build("audio") if cfg.audio else None, text=build("text"))


def build_preprocessor(cfg: DictConfig, **extra: object) -> Preprocessor:
    """Instantiate the config's ``_target_`` from the top-level keys its constructor names (``output``,
    ``buckets``, ...); the other keys (``input``, ``encoders``, ``demo``) belong to the command."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    params = inspect.signature(get_class(cfg._target_)).parameters
    own = {key: cfg[key] for key in params if key in cfg and key not in extra}
    try:
        return instantiate({"_target_": cfg._target_, **own}, **extra, _convert_="all")
    except InstantiationException as exc:  # a value the constructor (or the `frames` option's) refuses: as it said
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__ from None
        raise


def preprocess(cfg: DictConfig) -> Summary:
    """Read the dataset file or folder (or make the demo clips), preprocess this process's share, print a summary."""
    from ltxtune.data.preprocess.demo import make_demo  # torch and PyAV: not for --help
    from ltxtune.data.preprocess.folders import read_folder
    from ltxtune.data.preprocess.manifest import Columns, read_manifest

    for key in [k for k in cfg.encoders if OmegaConf.is_missing(cfg.encoders, k)]:  # before any clip is read
        raise ConfigError(f"encoders.{key}", "???", "a path; required with this encoders option (see docs/data.md)")
    # `accelerate launch` / `torchrun` set these: each process takes every WORLD_SIZE-th row.
    rank, world = ranks.rank(), ranks.world_size()
    preprocessor: Preprocessor = build_preprocessor(cfg, rank=rank, world=world)
    dataset = Path(cfg.input).expanduser() if cfg.input else make_demo(Path(cfg.demo.dir), cfg.demo.num_clips)
    if not cfg.input and rank == 0:
        print(f"no input given: made {cfg.demo.num_clips} demo clips with sound, listed in {dataset}")
    folder = dataset.is_dir()
    if folder:  # every video and image under it, captioned by the .txt file of its name
        listing = read_folder(dataset)
        rows, mask_column = listing.rows, None
        if rank == 0:
            print(listing.line(dataset))
    else:
        rows, column = read_manifest(dataset, Columns(**OmegaConf.to_container(cfg.columns)))
        mask_column = column["mask"]
    white = preprocessor.use_mask_column(mask_column)
    if mask_column is not None and rank == 0:  # the polarity decides the task: say which one is trained
        print(f"masks from column {mask_column!r}: white = {white} (mask_white={cfg.mask_white}; see docs/data.md)")
    summary = preprocessor.run(rows, lambda: build_encoders(cfg), source=str(dataset))
    report = preprocessor.report_path()
    if rank == 0:
        print(summary.line(rank, world))
        for row, skip in summary.skipped[:SHOWN_SKIPS]:
            print(f"  skipped {row.name if folder else f'row {row.index}'}: {skip}")
        if summary.skipped:
            more = f" (and {len(summary.skipped) - SHOWN_SKIPS} more)" if len(summary.skipped) > SHOWN_SKIPS else ""
            print(f"every skipped row and why{more}: {report}")
    if summary.skipped and not (summary.done or summary.already):
        row, skip = summary.skipped[0]
        raise DataError(
            f"no row of {dataset} could be preprocessed ({len(summary.skipped)} skipped; the first, row {row.index}: "
            f"{skip}); every one with its reason in {report}"
        )
    if rank == 0:
        print(f"train on it: python train.py data=precomputed data.root={cfg.output}")
    return summary


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    if (problem := check_training_environment()) is not None:
        sys.exit(f"error: {problem}")
    try:
        preprocess(cfg)
    except (ConfigError, DataError) as exc:
        sys.exit(f"error: {exc}")
    except MissingMandatoryValue as exc:
        sys.exit(f"error: {exc.full_key} must be set")


if __name__ == "__main__":
    main()
