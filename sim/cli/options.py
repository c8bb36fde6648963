"""Options shared by the lab commands (light: `down` imports it before the lab layer)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from cnilab.sim.backends.registry import backend_kind, backend_names, backends_help
from cnilab.sim.cli.output import lab_name_param

LAB_OPTION = typer.Option(None, "--lab", "-l", help="Lab name (may be omitted when only one lab runs)",
                          callback=lab_name_param)
JSON_OPTION = typer.Option(False, "--json", help="Print stable JSON instead of tables")
ATTACH_BACKEND_HELP = ("Backend of the lab (default: its state file's; attach-only ones are auto-detected when "
                       f"--lab has no cnilab state but their deployment exists). {backends_help(builds=False)}")


def backend_param(builds: bool | None = None) -> Callable[[str | None], str | None]:
    """A ``--backend`` callback accepting the registry's names (``builds``: see backend_names)."""
    def check(value: str | None) -> str | None:
        if value is not None and value not in backend_names(builds):
            if builds and value in backend_names():  # known, but another tool deploys it: say which
                raise typer.BadParameter(f"{backend_kind(value).build_refusal}; to build one here choose "
                                         f"{' or '.join(backend_names(builds))}")
            raise typer.BadParameter(f"{value!r}: choose {', '.join(backend_names(builds))}")
        return value
    return check


ATTACH_BACKEND_OPTION = typer.Option(None, "--backend", callback=backend_param(), help=ATTACH_BACKEND_HELP)
