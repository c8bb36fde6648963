"""Entry point of the ``cnilab`` command.

Command groups live in their own modules and register themselves, so each stays small and owns its
options; this module only lists them. A module is imported when one of its commands runs
(sim/cli/lazy.py), so `cnilab --help` and `cnilab down` do not pay for the others.
"""

from __future__ import annotations

from cnilab.sim.cli.command_index import INDEX
from cnilab.sim.cli.lazy import lazy_group, new_app

COMMAND_MODULES = (
    "cnilab.sim.cli.lab",        # up, status, exec, doctor, schema, validate
    "cnilab.sim.cli.down",       # down (light: signals the daemons before the lab layer loads)
    "cnilab.sim.cli.demo",       # demo (the README's main job)
    "cnilab.sim.cli.bgp",        # bgp, bfd, routes
    "cnilab.sim.cli.api",        # api
    "cnilab.sim.cli.probe",      # probe, fault, failover
    "cnilab.sim.cli.scenario",   # run, sim, compare
    "cnilab.sim.cli.export",     # export containerlab
    "cnilab.sim.cli.dashboard",  # dashboard
    "cnilab.sim.cli.rehearse",   # rehearse, test
    "cnilab.sim.cli.verify",     # verify (before/after a config change)
    "cnilab.sim.cli.drill",      # drill gshut
    "cnilab.sim.cli.incident",   # incident (replay a well-known incident pack)
    "cnilab.sim.cli.tunnels",    # tunnels (Magic health checks and steering)
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
