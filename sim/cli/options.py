"""Options shared by the lab commands (light: `down` imports it before the lab layer)."""

from __future__ import annotations

import typer

from sim.cli.output import lab_name_param

LAB_OPTION = typer.Option(None, "--lab", "-l", help="Lab name (may be omitted when only one lab runs)",
                          callback=lab_name_param)
JSON_OPTION = typer.Option(False, "--json", help="Print stable JSON instead of tables")
ATTACH_BACKEND_OPTION = typer.Option(
    None, "--backend", help="containerlab: a lab containerlab deployed from a cnilab export (auto-detected when "
    "--lab has no cnilab state but clab-LAB-* containers exist)")
