"""The emulator's executor for Magic scenarios: the real lab, real probes, real faults.

Times come from the edge daemon's own records (the wall-clock time it changed a route or a
tunnel's state), compared with the wall-clock time the action was applied, so polling the status
file adds nothing to the measurement.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from cnilab.sim.handle import LabHandle
from cnilab.sim.magic import faults, scenario
from cnilab.sim.magic.facts import timing
from cnilab.sim.magic.lab import read_status
from cnilab.sim.magic.ops import set_tunnel
from cnilab.sim.magic.scenario import Expect, MagicRun, MagicScenario, SetTunnel, Snapshot, TunnelFault
from cnilab.sim.magic.simulate import Spread, sweep
from pydantic import BaseModel

POLL_S = 0.05
SETTLE_SLACK_S = 30.0
"""Declared slack on top of 30 probe intervals for the lab's tunnels to become healthy first."""


class MagicEmu:
    name = "emulator"

    def __init__(self, lab: LabHandle) -> None:
        self.lab = lab

    def now(self) -> float:
        return time.time()

    def fault(self, f: TunnelFault, on: bool) -> None:
        faults.apply(self.lab, f.tunnel, f.kind, on)

    def set(self, s: SetTunnel) -> None:
        set_tunnel(self.lab, s.tunnel, priority=s.priority, rate=s.rate, hc_type=s.type)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def interval(self, tunnel: str) -> float:
        st = read_status(self.lab)
        t = next((x for x in st.tunnels if x.name == tunnel), None) if st else None
        return t.interval_s if t else timing().interval("mid")

    def _snap(self) -> Snapshot | None:
        st = read_status(self.lab)
        if st is None or not st.routes:
            return None
        return Snapshot(t=st.updated, states={t.name: t.state for t in st.tunnels},
                        steered=[h.tunnel for h in next(iter(st.routes.values()))])

    def until(self, pred, timeout: float) -> Snapshot | None:
        deadline = time.time() + timeout
        while True:
            snap = self._snap()
            if snap is not None and pred(snap):
                return snap
            if time.time() > deadline:
                return None
            time.sleep(POLL_S)

    def changed_at(self, exp: Expect, since: float) -> float | None:
        st = read_status(self.lab)
        if st is None:
            return None
        return scenario.changed_at(exp, since, st.route_changes,
                          ((t.name, tr.t, tr.to) for t in st.tunnels for tr in t.transitions))


@contextlib.contextmanager
def scenario_lab(sc: MagicScenario, name: str | None = None) -> Iterator[Any]:
    """The scenario's topology, with its rate and intervals, up and with every tunnel healthy."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology import build_plan, load_topology

    topo = load_topology(scenario.topology_path(sc))
    assert topo.magic is not None
    if sc.intervals:
        topo.magic.intervals = {**(topo.magic.intervals or {}), **sc.intervals}
    if sc.rate:
        for t in topo.magic.tunnels:
            t.health_check.rate = sc.rate
    plan = build_plan(topo, name or f"mg-{uuid.uuid4().hex[:6]}")
    with Lab.create(plan) as lab:
        yield lab


def wait_healthy(lab: LabHandle, timeout: float | None = None) -> None:
    from cnilab.sim.magic.lab import wait_status

    st = read_status(lab)
    worst = max((t.interval_s for t in st.tunnels), default=5.0) if st else 5.0
    limit = timeout or timing().healthy_window_probes * worst + SETTLE_SLACK_S
    st = wait_status(lab, lambda s: all(t.state == "healthy" for t in s.tunnels), limit)
    if st is None or not all(t.state == "healthy" for t in st.tunnels):
        raise RuntimeError(f"tunnels not healthy within {limit:.0f}s: "
                           + ", ".join(f"{t.name} {t.state}" for t in (st.tunnels if st else [])))


def emulate(sc: MagicScenario, lab: LabHandle | None = None) -> MagicRun:
    if lab is None:
        with scenario_lab(sc) as lab2:
            return emulate(sc, lab2)
    wait_healthy(lab)
    return scenario.run(sc, MagicEmu(lab))


class Agreement(BaseModel):
    step: int
    detail: str
    emulator_s: float | None
    sim_min_s: float
    sim_max_s: float
    tolerance_s: float
    agree: bool


def compare(sc: MagicScenario, emu: MagicRun, seeds: int = 200) -> list[Agreement]:
    """Each timed expectation: the emulator's time inside the simulator's range over probe phases
    (widened by the scenario's tolerance)."""
    out = []
    for sp in sweep(sc, seeds):
        e = emu.steps[sp.step].measured_s if sp.step < len(emu.steps) else None
        tol = sc.compare_tolerance_s
        out.append(Agreement(step=sp.step, detail=sp.detail, emulator_s=e, sim_min_s=sp.min_s, sim_max_s=sp.max_s,
                             tolerance_s=tol, agree=e is not None and sp.min_s - tol <= e <= sp.max_s + tol))
    return out


__all__ = ["MagicEmu", "Spread", "compare", "emulate", "scenario_lab", "wait_healthy"]
