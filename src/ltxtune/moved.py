"""Import paths from before the package was split into subpackages, kept working for users' own YAML and code.

A user's config may name ``ltxtune.samplers.UniformSampler`` or ``ltxtune.conditions.FirstFrame`` in a
``_target_``, and scripts may run ``python -m ltxtune.bench``: each old module name resolves to the module
that now holds the code (the same module object, so ``isinstance`` checks and monkeypatching still agree).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType

MOVED: dict[str, str] = {
    "ltxtune.estimate": "ltxtune.app.estimate",
    "ltxtune.bench": "ltxtune.app.bench",
    "ltxtune.environment": "ltxtune.app.environment",
    "ltxtune.build": "ltxtune.training.parts",
    "ltxtune.run": "ltxtune.training.run",
    "ltxtune.loop": "ltxtune.training.loop",
    "ltxtune.checkpoint": "ltxtune.training.checkpoint",
    "ltxtune.optim": "ltxtune.training.optim",
    "ltxtune.tracking": "ltxtune.training.tracking",
    "ltxtune.settings": "ltxtune.training.settings",
    "ltxtune.flow": "ltxtune.diffusion.flow",
    "ltxtune.samplers": "ltxtune.diffusion.samplers",
    "ltxtune.positions": "ltxtune.diffusion.positions",
    "ltxtune.sampling": "ltxtune.diffusion.sampling",
    "ltxtune.conditions": "ltxtune.strategies.conditions",
    "ltxtune.validation": "ltxtune.evaluation.loss",
    "ltxtune.validation_videos": "ltxtune.evaluation.videos",
    "ltxtune.media": "ltxtune.evaluation.media",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the target module is already executed

    def get_code(self, fullname: str) -> CodeType | None:  # what `python -m <old name>` runs
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target) if spec and spec.loader else None


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        moved_to = importlib.util.find_spec(MOVED[fullname])
        origin = moved_to.origin if moved_to else None  # `python -m` puts it in sys.argv[0]
        return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]), origin=origin)


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
