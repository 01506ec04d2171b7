"""ltx-trainer configs as ltxtune experiments: ``python -m ltxtune.convert their.yaml -o conf/experiment/x.yaml``."""

from ltxtune.convert.mapping import ConversionError, Experiment, convert
from ltxtune.convert.writer import render

__all__ = ["ConversionError", "Experiment", "convert", "render"]
