"""``cnilab export containerlab``: write labs as containerlab topologies (see sim/export)."""

from __future__ import annotations

from pathlib import Path

import typer
from cnilab.sim.cli.output import console, emit, fail, lab_name_param
from cnilab.sim.topology.load import ConfigError, load_topology
from cnilab.sim.topology.paths import topologies_dir
from cnilab.sim.topology.plan import build_plan


def shipped_topologies() -> list[Path]:
    return sorted(topologies_dir().glob("*.yml"))


def register(app: typer.Typer) -> None:
    export = typer.Typer(help="Export labs to other tools.", no_args_is_help=True)
    app.add_typer(export, name="export")

    @export.command("containerlab")
    def containerlab(
        topology: Path | None = typer.Argument(None, help="Topology YAML (omit with --all)"),
        out: Path = typer.Option(..., "--out", "-o", help="Directory; each lab goes to DIR/<name>/"),
        all_: bool = typer.Option(False, "--all", help="Export every shipped topology (topologies/*.yml)"),
        lab: str | None = typer.Option(None, "--lab", help="Lab name (default: the topology's name)",
                                         callback=lab_name_param),
        as_json: bool = typer.Option(False, "--json", help="Print stable JSON"),
    ) -> None:
        """Write <name>.clab.yml, node configs and the interface map for containerlab."""
        from cnilab.sim.export.containerlab import ExportError, ExportResult, write_export  # jsonschema, yaml: on use

        if all_ == (topology is not None):
            fail("give either a TOPOLOGY file or --all")
        paths = shipped_topologies() if all_ else [topology]
        # Load and render everything first: bad input must not leave some labs exported.
        plans = []
        for p in paths:
            assert p is not None
            try:
                plans.append((p, build_plan(load_topology(p), None if all_ else lab)))
            except ConfigError as exc:
                fail(str(exc))
            except ValueError as exc:
                fail(f"{p}: {exc}")
        results: list[ExportResult] = []
        for p, plan in plans:
            try:
                results.append(write_export(plan, out, source=p.name))
            except (ExportError, OSError) as exc:
                fail(f"{p}: {exc}")

        def render(rs: list[ExportResult]) -> None:
            for r in rs:
                console.print(f"[bold]{r.lab}[/]: {r.directory}/{r.lab}.clab.yml ({len(r.files)} files)")
            console.print("deploy with: containerlab deploy -t DIR/<name>/<name>.clab.yml")

        emit(results, as_json, render)
