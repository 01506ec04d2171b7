"""``python -m ltxtune.convert <ltx-trainer.yaml> [-o conf/experiment/<name>.yaml]``.

Writes the experiment, lists what was not carried over and prints the command that trains it. Bad input
(a missing file, not YAML, not an ltx-trainer config) ends in one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ltxtune.convert.mapping import ConversionError, Experiment, convert
from ltxtune.convert.writer import render

_CONF = Path(__file__).resolve().parents[3] / "conf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltxtune.convert", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="an ltx-trainer training config (YAML)")
    parser.add_argument("-o", "--output", type=Path, help="the experiment file (default conf/experiment/<name>.yaml)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    output = args.output or _CONF / "experiment" / f"{args.config.stem}.yaml"
    try:
        text = read(args.config)
        if output.suffix != ".yaml" or output.parent.name != "experiment":
            raise ConversionError(f"-o {output}: expected a .yaml file in an experiment/ folder (conf/experiment/)")
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
    conf = output.parent.parent.resolve()
    where = "" if conf == _CONF.resolve() else f" --config-dir {conf}"
    print(f"train it: python train.py{where} experiment={output.stem}")
    return 0


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
