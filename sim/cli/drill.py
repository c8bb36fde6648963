"""``cnilab drill gshut``: rehearse one operational event on a running lab, measured on the dataplane.

Exit 1 when the customer's config does not handle the event (with the line that fixes it), 0 when it does.
"""

from __future__ import annotations

from typing import Annotated

import typer
from cnilab.sim.cli.output import console, emit, fail
from cnilab.sim.cli.probe import JsonOpt, LabOpt, _lab


def register(app: typer.Typer) -> None:
    drill = typer.Typer(help="Rehearse an operational event on a running lab (exit 1 when it hurts)",
                        no_args_is_help=True)
    app.add_typer(drill, name="drill")

    @drill.command("gshut")
    def gshut(
        link: Annotated[str | None, typer.Option("--link", help="Interconnect under maintenance "
                                                                  "(default: the one carrying traffic)")] = None,
        wait: Annotated[float, typer.Option("--wait", help="Seconds between the tag and the link going down")] = 5.0,
        rate: Annotated[int, typer.Option("--rate", help="Stream rate, packets per second")] = 200,
        lab: LabOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Cloudflare-side maintenance: tag routes GRACEFUL_SHUTDOWN (65535:0), wait, pull the link; loss?"""
        from cnilab.sim.drills.gshut import gshut_drill

        the_lab = _lab(lab)
        try:
            rep = gshut_drill(the_lab, link, wait, rate)
        except ValueError as exc:
            fail(str(exc))

        def render(r) -> None:
            console.print(("[green]PASS[/] " if r.honoured else "[red]FAIL[/] ") + r.summary, highlight=False,
                          soft_wrap=True)
            for kind, fix in r.fix.items():
                console.print(f"  fix ({kind}):\n    " + fix.replace("\n", "\n    "), highlight=False, soft_wrap=True)

        emit(rep, as_json, render)
        raise typer.Exit(0 if rep.honoured else 1)
