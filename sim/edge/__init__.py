"""Cloudflare edge peer: ExaBGP config and driver, import policy, BFD speaker.

Entry points for the orchestrator (:mod:`cnilab.sim.lab.lab`)::

    start_edge(lab)             # render edge.json + exabgp.conf in lab.node_dir("cf"), spawn ExaBGP in cf
    wait_ready(lab, timeout)    # the driver's control socket answers (ExaBGP started it)

Everyone else talks to the running edge through :class:`cnilab.sim.edge.control.EdgeClient` at
``LabState.control["edge"]``.
"""

from __future__ import annotations

import time
from pathlib import Path

from cnilab.sim.edge.control import ControlError, EdgeClient
from cnilab.sim.edge.exabgp_conf import EdgeSpec, exabgp_argv, write
from cnilab.sim.handle import LabHandle
from cnilab.sim.runtime.files import log_tail

EDGE_NODE = "cf"
CONTROL_KEY = "edge"

__all__ = ["CONTROL_KEY", "EdgeClient", "EdgeSpec", "client_for", "start_edge", "wait_ready"]


def build_spec(lab: LabHandle, scale_routes: int | None = None) -> EdgeSpec:
    """The edge's spec from a lab's plan (scale routes from the plan when it carries them)."""
    plan = lab.plan
    workdir = Path(lab.node_dir(EDGE_NODE))
    n = scale_routes if scale_routes is not None else plan.scale_routes
    spec = EdgeSpec.from_plan(plan, workdir, scale_routes=n)
    spec.ifnames = {s.cf_iface: lab.ifname(EDGE_NODE, s.cf_iface) for s in plan.sessions}
    return spec


def start_edge(lab: LabHandle, scale_routes: int | None = None) -> None:
    """Render the config and spawn ExaBGP (which starts the driver) in node cf; record the socket."""
    spec = build_spec(lab, scale_routes)
    write(spec)
    log = spec.workdir / "exabgp.log"
    lab.spawn(EDGE_NODE, "exabgp", exabgp_argv(spec), log=log)
    with lab.update() as st:
        st.control[CONTROL_KEY] = str(spec.control_path)


def client_for(lab: LabHandle, timeout: float = 10.0) -> EdgeClient:
    path = lab.state.control.get(CONTROL_KEY) or str(Path(lab.node_dir(EDGE_NODE)) / "control.sock")
    return EdgeClient(path, timeout=timeout)




def wait_ready(lab: LabHandle, timeout: float) -> None:
    """Return once the driver answers ping; fail fast with ExaBGP's log if ExaBGP died."""
    client = client_for(lab, timeout=2.0)
    deadline = time.monotonic() + timeout
    log = Path(lab.node_dir(EDGE_NODE)) / "exabgp.log"
    while True:
        try:
            client.ping()
            return
        except ControlError as exc:
            procs = [p for p in lab.state.processes if p.name == "exabgp" and p.node == EDGE_NODE]
            tail = log_tail(log, 15, "\n")
            if procs and not procs[-1].alive():
                raise ControlError(f"ExaBGP exited before the edge was ready; {log}:\n{tail}") from None
            if time.monotonic() > deadline:
                raise ControlError(f"edge not ready within {timeout}s ({exc}); {log}:\n{tail}") from None
        time.sleep(0.1)
