"""``cnilab down``: a light module, so the lab's daemons get their SIGTERM before the lab layer loads.

Importing the lab layer (the topology's pydantic models) takes ~0.2 s and FRR/ExaBGP take about as
long to exit on SIGTERM; signalling them first (cnilab.sim.runtime.early_stop) lets the two overlap
(issue 16: down <= 0.4 s). The teardown itself is the lab layer's, unchanged.
"""

from __future__ import annotations

import typer
from cnilab.sim.cli.options import ATTACH_BACKEND_OPTION, JSON_OPTION, LAB_OPTION
from cnilab.sim.cli.output import console, emit, fail


def down(lab: str = LAB_OPTION,
         all_: bool = typer.Option(False, "--all", help="Every lab, plus orphan namespaces and processes"),
         quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on success"),
         as_json: bool = JSON_OPTION, backend: str = ATTACH_BACKEND_OPTION) -> None:
    """Stop every process of the lab and remove its tunnels, namespaces and state."""
    if not all_ and backend is None:
        from cnilab.sim.runtime.early_stop import sigterm_lab

        sigterm_lab(lab)
    from cnilab.sim.cli.lab import DownResult, _errors
    from cnilab.sim.lab.lab import Lab, down_all, down_lab
    from cnilab.sim.state import list_labs

    with _errors():
        if all_:
            result = DownResult(**down_all())
        elif lab is not None:  # by name: also what a killed `up` left without (or with half) a state file
            result = DownResult(**down_lab(lab, backend))
        else:
            if not list_labs():
                if not quiet:
                    console.print("no lab is running")
                return
            handle = Lab.attach(lab, backend)  # containerlab: refused while deployed, forgotten after
            handle.destroy()
            result = DownResult(labs=[handle.name])
    if result.errors:
        fail("; ".join(result.errors))
    if quiet and not as_json:
        return
    emit(result, as_json, lambda r: console.print(
        f"removed lab(s): {', '.join(r.labs) or 'none'}"
        + (f"; namespaces swept by owner tag: {', '.join(r.orphan_namespaces)}" if r.orphan_namespaces else "")
        + (f"; orphan processes: {', '.join(r.orphan_processes)}" if r.orphan_processes else "")
        + (f"; left alone: {'; '.join(r.skipped)}" if r.skipped else "")))


def register(app: typer.Typer) -> None:
    app.command()(down)
