"""Entry point of the ``cnilab`` command.

Command groups live in their own modules and register themselves, so each stays small and owns its
options; this module only assembles them.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="cnilab",
    help="Rehearse and test a Cloudflare Network Interconnect: emulated links, BGP/BFD/GRE, mock CNI API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help text is plain text: docstrings name values like [PERIOD] or MS[/JITTER], which rich markup
    # would parse as tags (and crash `--help` on the closing one).
    rich_markup_mode=None,
)

COMMAND_MODULES = (
    "sim.cli.lab",        # up, down, status, exec, doctor, schema
    "sim.cli.demo",       # demo (the README's main job)
    "sim.cli.bgp",        # bgp, bfd, routes
    "sim.cli.api",        # api
    "sim.cli.probe",      # probe, fault, failover
    "sim.cli.scenario",   # run, sim, compare
    "sim.cli.export",     # export containerlab
    "sim.cli.dashboard",  # dashboard
    "sim.cli.rehearse",   # rehearse, test
    "sim.cli.tunnels",    # tunnels (Magic health checks and steering)
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":
    app()
