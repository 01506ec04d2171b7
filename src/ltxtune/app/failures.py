"""The one line a user's mistake or the system's refusal ends in, instead of a traceback."""

from __future__ import annotations

import re

from hydra.errors import InstantiationException
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, ValidationError

from ltxtune.errors import ConfigError, DataError, TrainingError


def user_error(exc: BaseException) -> str | None:
    """The line to end with; ``None`` for a bug (a traceback helps)."""
    if isinstance(exc, ConfigError | DataError | TrainingError):
        return str(exc)
    if isinstance(exc, InstantiationException) and exc.__cause__ is not None:  # a constructor refused its arguments
        return user_error(exc.__cause__)
    if isinstance(exc, MissingMandatoryValue):
        return f"{exc.full_key} must be set (it has no default: add {exc.full_key}=... to the command)"
    if isinstance(exc, InterpolationToMissingValueError):  # a key that follows an unset one (${.checkpoint})
        found = re.search(r"Missing mandatory value: ([\w.\[\]]+)", str(exc))
        missing = found.group(1) if found else exc.full_key
        return f"{missing} must be set (it has no default, and {exc.full_key} follows it: add {missing}=...)"
    if isinstance(exc, ValidationError):
        return f"{exc.full_key}: {str(exc).splitlines()[0]}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc} (check the path, its permissions and the free disk space)"
    return None
