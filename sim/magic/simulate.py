"""The simulator's executor for Magic scenarios: the same Prober/TunnelHealth/steer the emulator's
daemon runs, driven in virtual time with a link model instead of packets.

The link model: a probe comes back after ``RTT_S`` unless a fault on the tunnel blocks it
(:func:`blocks`: a firewall, blackhole or wrong tunnel source drops every probe; ``accept-local-off``
drops reply-style probes sourced from the customer's own address; ``rp-filter`` (without the route
back) drops legacy probes, whose source 172.64.240.253 is not on the tunnel). Each tunnel's probe phase is
drawn from the seed, so a sweep over seeds gives the spread a real lab shows.
"""

from __future__ import annotations

import random
import statistics

from cnilab.sim.magic import scenario
from cnilab.sim.magic.config import HcConfig, RouteChange
from cnilab.sim.magic.facts import Timing, timing
from cnilab.sim.magic.health import Prober, Sample, TunnelHealth
from cnilab.sim.magic.scenario import Expect, MagicRun, MagicScenario, SetTunnel, Snapshot, TunnelFault
from cnilab.sim.magic.steering import steer
from pydantic import BaseModel

RTT_S = 0.001
def blocks(kind: str, hc_type: str, legacy: bool) -> bool:
    """Does customer-side fault ``kind`` stop this probe coming back? (What the emulator shows.)"""
    if kind in ("firewall", "blackhole", "wrong-source"):
        return True
    if kind == "accept-local-off":  # only a probe sourced from the router's own address is a martian
        return hc_type == "reply" and not legacy
    if kind == "rp-filter":  # a bidirectional probe's source is the tunnel's own /31: only legacy fails
        return legacy
    return False


def config_for(sc: MagicScenario) -> HcConfig:
    from cnilab.sim.magic.lab import resolve
    from cnilab.sim.topology import build_plan, load_topology

    topo = load_topology(scenario.topology_path(sc))
    if topo.magic is None:
        raise ValueError(f"{sc.topology}: the topology has no magic: section")
    cfg = resolve(build_plan(topo))
    if sc.intervals:
        cfg.intervals.update(sc.intervals)
    if sc.rate:
        for t in cfg.tunnels:
            t.health_check = t.health_check.model_copy(update={"rate": sc.rate})
    return cfg


class _Tun:
    def __init__(self, name: str, hc_type: str, prober: Prober, legacy: bool = False) -> None:
        self.name, self.hc_type, self.prober, self.legacy = name, hc_type, prober, legacy
        self.faults: set[str] = set()
        self.reply_at: float | None = None


class MagicSim:
    name = "simulator"

    def __init__(self, cfg: HcConfig, tm: Timing | None = None, seed: int = 0, start_healthy: bool = True) -> None:
        self.cfg, self.tm, self.t = cfg, tm or timing(), 0.0
        rnd = random.Random(seed)
        self.tuns: dict[str, _Tun] = {}
        for t in cfg.tunnels:
            enabled = t.health_check.enabled
            h = TunnelHealth(self.tm, initial="healthy" if start_healthy or not enabled else None)
            if start_healthy:  # a clean history, as a lab that has been up for a while has
                for i in range(self.tm.healthy_window_probes):
                    h.samples.append(Sample(t=-i * 0.001, ok=True))
            iv = self.interval_of(t.health_check.rate)
            phase = rnd.uniform(0, iv) if enabled else float("inf")  # disabled: never probed, no penalty
            self.tuns[t.name] = _Tun(t.name, t.health_check.type, Prober(h, iv, t0=0.0, phase=phase),
                                     legacy=t.health_check.legacy)
        self.changes: list[RouteChange] = []
        self.transitions: list[tuple[str, float, str]] = []
        self._steered = self._steer()

    def interval_of(self, rate: str) -> float:
        return self.cfg.intervals.get(rate) or self.tm.interval(rate)

    # -- executor protocol -------------------------------------------------------------------
    def now(self) -> float:
        return self.t

    def interval(self, tunnel: str) -> float:
        return self.tuns[tunnel].prober.interval_s

    def fault(self, f: TunnelFault, on: bool) -> None:
        (self.tuns[f.tunnel].faults.add if on else self.tuns[f.tunnel].faults.discard)(f.kind)

    def set(self, s: SetTunnel) -> None:
        tun = self.tuns[s.tunnel]
        if s.priority is not None:
            for r in self.cfg.routes:
                if r.nexthop == s.tunnel:
                    r.priority = s.priority
        if s.rate is not None:
            tun.prober.set_interval(self.interval_of(s.rate), self.t)
        if s.type is not None:
            tun.hc_type = s.type
        self._after()

    def sleep(self, seconds: float) -> None:
        self._advance(self.t + seconds, None)

    def until(self, pred, timeout: float) -> Snapshot | None:
        return self._advance(self.t + timeout, pred)

    def changed_at(self, exp: Expect, since: float) -> float | None:
        return scenario.changed_at(exp, since, self.changes, self.transitions)

    # -- the event loop ----------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot(t=self.t, states={n: x.prober.health.state for n, x in self.tuns.items()},
                        steered=self._steered)

    def _steer(self) -> list[str]:
        routes = steer(self.cfg.routes, {n: x.prober.health.state for n, x in self.tuns.items()})
        return [h.tunnel for h in next(iter(routes.values()), [])]

    def _after(self) -> None:
        now = self._steer()
        if now != self._steered:
            self._steered = now
            self.changes.append(RouteChange(t=self.t, prefix="*", tunnels=now))

    def _next_event(self) -> tuple[float, _Tun, str] | None:
        best: tuple[float, _Tun, str] | None = None
        for x in self.tuns.values():
            p = x.prober
            cands = [(x.reply_at, "reply")] if x.reply_at is not None else []
            if p.deadline is not None:
                cands.append((p.deadline, "timeout"))
            elif x.reply_at is None:
                cands.append((p.next_at, "send"))
            for t, kind in cands:
                if t is not None and (best is None or t < best[0]):
                    best = (t, x, kind)
        return best

    def _advance(self, t_end: float, pred) -> Snapshot | None:
        if pred is not None and pred(self.snapshot()):
            return self.snapshot()
        while True:
            ev = self._next_event()
            if ev is None or ev[0] > t_end:
                self.t = t_end
                return None
            self.t, x, kind = ev
            before = x.prober.health.state
            if kind == "send":
                x.prober.sent(self.t)
                if not any(blocks(f, x.hc_type, x.legacy) for f in x.faults):
                    x.reply_at = self.t + RTT_S
            elif kind == "reply":
                x.reply_at = None
                x.prober.result(self.t, True, RTT_S * 1000)
            else:
                x.prober.result(self.t, False)
            if x.prober.health.state != before:
                self.transitions.append((x.name, self.t, x.prober.health.state))
            self._after()
            if pred is not None and pred(self.snapshot()):
                return self.snapshot()


def simulate(sc: MagicScenario, seed: int = 0) -> MagicRun:
    return scenario.run(sc, MagicSim(config_for(sc), seed=seed), seed=seed)


class Spread(BaseModel):
    step: int
    detail: str
    n: int
    min_s: float
    mean_s: float
    max_s: float
    passed: int


def sweep(sc: MagicScenario, seeds: int = 100) -> list[Spread]:
    """Measured times of each expectation over ``seeds`` probe phases."""
    runs = [simulate(sc, seed=s) for s in range(seeds)]
    out = []
    for i, step in enumerate(runs[0].steps):
        if step.action != "expect":
            continue
        vals = [r.steps[i].measured_s for r in runs if len(r.steps) > i and r.steps[i].measured_s is not None]
        ok = sum(1 for r in runs if len(r.steps) > i and r.steps[i].ok)
        if vals:
            out.append(Spread(step=i, detail=step.detail.split(": not within")[0], n=len(vals),
                              min_s=round(min(vals), 3), mean_s=round(statistics.fmean(vals), 3),
                              max_s=round(max(vals), 3), passed=ok))
    return out
