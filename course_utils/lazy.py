"""Packages whose submodules load on first use (`cu.checks`, `co.attacks`) without being imported first."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType


def submodule_loader(package: str) -> Callable[[str], ModuleType]:
    """A module-level `__getattr__` for `package` that imports `package.<name>` when `<name>` is first touched."""

    def load(name: str) -> ModuleType:
        try:
            return importlib.import_module(f".{name}", package)
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
            raise AttributeError(f"{package} has no module or helper named {name!r}") from None

    return load
