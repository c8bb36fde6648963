"""Shared CLI output: ``--json`` prints the same model the human view renders, and errors exit cleanly."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, list | tuple):
        return [to_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def emit(obj: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``obj`` as stable JSON (``--json``) or through ``render`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")
    else:
        render(obj)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error for a person and exit; no traceback for expected failures."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def lab_name_param(value: str | None) -> str | None:
    """Typer callback for every ``--lab`` / ``--name``: the one lab-name rule (cnilab.sim.runtime.names), so a
    bad name is refused with exit 2 before anything is created."""
    import typer
    from cnilab.sim.runtime.names import BadLabName, validate_lab_name

    if value is None:
        return None
    try:
        return validate_lab_name(value, where="")
    except BadLabName as exc:
        raise typer.BadParameter(str(exc).strip()) from None
