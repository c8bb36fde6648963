"""``cnilab incident FILE``: replay a well-known incident (topologies/incidents/) against your config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cnilab.sim.cli.output import console, emit, fail
from cnilab.sim.cli.rehearse import ConfigOpt, KindOpt


def register(app: typer.Typer) -> None:
    @app.command("incident")
    def incident(
        pack: Annotated[Path, typer.Argument(help="Incident pack, e.g. topologies/incidents/leak-to-transit.yml")],
        customer_config: ConfigOpt = None,
        kind: KindOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
        sim: Annotated[bool, typer.Option("--sim", help="Predict it on the simulator (no lab, no root)")] = False,
    ) -> None:
        """Replay an incident on a fresh lab: exit 0 if your config behaves as a correct one does, 1 with the cause."""
        from cnilab.sim.bgp.customer_policy import Unsupported
        from cnilab.sim.incidents.runner import run_incident
        from cnilab.sim.incidents.simulate import simulate_incident
        from cnilab.sim.routers import RouterError
        from cnilab.sim.topology.load import ConfigError

        if customer_config is not None and not customer_config.is_file():
            fail(f"--customer-config {customer_config}: file not found")
        if sim and kind not in (None, "frr"):
            fail(f"--sim with --kind {kind}: the simulator reads the customer's policy from FRR configs only")
        try:
            res = simulate_incident(pack, customer_config) if sim else run_incident(pack, customer_config, kind)
        except ConfigError as exc:
            fail(str(exc))
        except Unsupported as exc:
            fail(f"the simulator cannot judge this: {exc}")
        except RouterError as exc:
            fail(f"the router did not start in the lab: {exc}", code=1)

        def render(r) -> None:
            where = "the simulator" if r.lab == "(simulator)" else f"lab {r.lab}"
            console.print(f"[bold]{r.incident}[/] on {r.topology} ({r.router_kind}, {r.config}), {where}",
                          highlight=False)
            console.print(f"  a correct config: {r.correct}", highlight=False, soft_wrap=True)
            word = "[green]PASS[/]" if r.passed else "[red]FAIL[/]"
            console.print(f"{word} ({r.seconds:.1f}s)" + (f": {r.cause}" if r.cause else ""), highlight=False,
                          soft_wrap=True)
            for w in r.warnings:
                console.print(f"[yellow]WARN[/] {w}", highlight=False, soft_wrap=True)
            for k, fix in r.fix.items():
                console.print(f"  fix ({k}):\n    " + fix.replace("\n", "\n    "), highlight=False, soft_wrap=True)

        emit(res, as_json, render)
        raise typer.Exit(0 if res.passed else 1)
