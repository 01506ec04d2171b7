"""``python -m ltxtune.convert <ltx-trainer.yaml> [-o my_conf/experiment/<name>.yaml]``.

Writes the experiment into the user's own config folder (``my_conf/`` in the current directory unless ``-o`` names
another), lists what was not carried over and prints the command that trains it: ``python train.py --config-dir
my_conf experiment=<name>``. The package's own configs are never written to. Bad input
(a missing file, not YAML, not an ltx-trainer config) ends in one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import yaml

from ltxtune.convert.mapping import ConversionError, Experiment, convert
from ltxtune.convert.writer import render

USER_CONF = Path("my_conf")  # relative: the folder a user runs the command from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.convert", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="an ltx-trainer training config (YAML)")
    default = f"{USER_CONF}/experiment/<name>.yaml"
    parser.add_argument("-o", "--output", type=Path, help=f"the experiment file (default {default})")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    output = args.output or USER_CONF / "experiment" / f"{args.config.stem}.yaml"
    try:
        text = read(args.config)
        if output.suffix != ".yaml" or output.parent.name != "experiment":
            where = f"{USER_CONF}/experiment/"
            raise ConversionError(f"-o {output}: expected a .yaml file in an experiment/ folder ({where})")
        if shipped(output.stem):
            raise ConversionError(
                f"-o {output}: experiment={output.stem} is a preset shipped with ltxtune, which would be loaded"
                " instead: choose another file name"
            )
        if output.exists() and not args.force:
            raise ConversionError(f"{output} exists (--force replaces it)")
        experiment = convert_file(args.config, parse(args.config, text))
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render(experiment, args.config.name))
    except (ConversionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {output}")
    if experiment.dropped:
        print(f"not carried over ({len(experiment.dropped)}, also listed at the top of the file):")
        for key, reason in experiment.dropped:
            print(f"  {key}: {reason}")
    print(f"train it: python train.py --config-dir {output.parent.parent} experiment={output.stem}")
    return 0


def shipped(name: str) -> bool:
    """Whether ltxtune ships an experiment ``name``: the package's configs come first in Hydra's search path."""
    return resources.files("ltxtune.conf").joinpath("experiment", f"{name}.yaml").is_file()


def convert_file(path: Path, config: object) -> Experiment:
    try:
        return convert(config)
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from None


def read(path: Path) -> str:
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise ConversionError(f"{path}: not a text file ({exc.reason})") from None


def parse(path: Path, text: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = next(iter(str(exc).splitlines()), "unreadable")
        raise ConversionError(f"{path}: not YAML ({first})") from None


if __name__ == "__main__":
    sys.exit(main())
