"""Optional hooks: a function from a module that a given install or build may not have."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def optional_attr(module: str, attr: str) -> Callable[..., Any] | None:
    """``module.attr`` if the module exists, else None; an import error *inside* it still raises."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, attr, None)
