"""Entry point of the ``cnilab`` command.

Command groups live in their own modules and register themselves, so each stays small and owns its
options; this module only lists them. A module is imported when one of its commands runs
(sim/cli/lazy.py), so `cnilab --help` and `cnilab down` do not pay for the others.
"""

from __future__ import annotations

from sim.cli.command_index import INDEX
from sim.cli.lazy import lazy_group, new_app

COMMAND_MODULES = (
    "sim.cli.lab",        # up, status, exec, doctor, schema, validate
    "sim.cli.down",       # down (light: signals the daemons before the lab layer loads)
    "sim.cli.demo",       # demo (the README's main job)
    "sim.cli.bgp",        # bgp, bfd, routes
    "sim.cli.api",        # api
    "sim.cli.probe",      # probe, fault, failover
    "sim.cli.scenario",   # run, sim, compare
    "sim.cli.export",     # export containerlab
    "sim.cli.dashboard",  # dashboard
    "sim.cli.rehearse",   # rehearse, test
    "sim.cli.verify",     # verify (before/after a config change)
    "sim.cli.drill",      # drill gshut
    "sim.cli.incident",   # incident (replay a well-known incident pack)
    "sim.cli.tunnels",    # tunnels (Magic health checks and steering)
)

app = new_app(
    name="cnilab",
    help="Rehearse and test a Cloudflare Network Interconnect: emulated links, BGP/BFD/GRE, mock CNI API.",
    no_args_is_help=True,
    cls=lazy_group(INDEX, COMMAND_MODULES),
)


@app.callback()
def _root() -> None:
    """Makes typer build a group although no command is registered up front (they load lazily)."""


if __name__ == "__main__":
    app()
