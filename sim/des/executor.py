"""The simulator as a scenario executor: the protocol of cnilab.sim.scenario.executor over a World."""

from __future__ import annotations

from collections.abc import Callable

from cnilab.sim.des.engine import Timer
from cnilab.sim.des.params import SimParams
from cnilab.sim.des.world import Flow, World
from cnilab.sim.facts import load_facts, router_kinds
from cnilab.sim.faults.kinds import KINDS, fault_kind, parse_fault
from cnilab.sim.report.model import LossBin, ProbeResult, Series, TrafficStats, Transition
from cnilab.sim.topology.model import Topology
from cnilab.sim.topology.plan import LabPlan

NICE_BINS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class SimExecutor:
    name = "sim"
    slack = 0.0  # virtual time: the engine evaluates conditions after every event, so no slack

    def __init__(self, plan: LabPlan, topology: Topology, params: SimParams, seed: int) -> None:
        self.plan, self.topology, self.params = plan, topology, params
        self.world = World(plan, params, seed, topology.internet_backup)
        self._flaps: dict[str, Timer] = {}
        self._logs: list[list[tuple[float, str | None]]] = []

    # -- time -------------------------------------------------------------------------------
    def now(self) -> float:
        return self.world.engine.now

    def run_until(self, deadline: float, until: Callable[[], bool] | None = None) -> float | None:
        return self.world.engine.run_until(deadline, until)

    # -- observation ------------------------------------------------------------------------
    def session_state(self, key: str, side: str) -> str:
        return self.world.pairs[key].end(side).state

    def bfd_state(self, key: str, side: str) -> str | None:
        bfd = self.world.pairs[key].bfd(side)
        return bfd.state if bfd else None

    def best_path(self, side: str) -> str | None:
        return self.world.best[side]

    def traffic(self) -> TrafficStats:
        f = self.world.flow
        if f is None:
            return TrafficStats()
        return TrafficStats(running=f.running, src=f.src, dst=f.dst, rate_pps=f.rate, sent=f.sent,
                            delivered=f.delivered, lost=f.lost, last_path=f.last_path, first_on=dict(f.first_on),
                            loss_window_s=round(f.max_run * f.interval, 9))

    # -- actions ----------------------------------------------------------------------------
    def start_traffic(self, src: str, dst: str, rate_pps: float) -> None:
        self.stop_traffic()
        self.world.flow = Flow(self.world, src, dst, rate_pps)
        self._logs.append(self.world.flow.log)

    def stop_traffic(self) -> None:
        if self.world.flow is not None and self.world.flow.running:
            self.world.flow.stop()

    def fault(self, link: str, kind: str, value: float | str | None) -> None:
        """The same parse as ``cnilab fault``; the kind's SimEffect says what happens to the link."""
        spec = parse_fault(kind, value)
        effect = fault_kind(kind).sim_effect(spec)
        if effect is None:
            modelled = ", ".join(k for k in KINDS if fault_kind(k).sim_effect(parse_fault(k, fault_kind(k).example))
                                 is not None)
            raise ValueError(f"fault kind {kind!r} is not modelled by the simulator (it models {modelled}); "
                             "run it on the emulator")
        lk = self.world.links[link]
        self._stop_flap(link)
        lk.set_fault(spec, effect)
        text = spec.value_text
        self.world.record("link", link, f"{kind}{'' if text is None else f' {text}'}")
        if effect.flap_period_s is not None:
            lk.flap_down = False
            self._flap(link, effect.flap_period_s / 2)
        self._carrier(link)

    def _carrier(self, link: str) -> None:
        """A lost carrier resets the sessions on the link at once (no BFD or hold timer needed).

        That is fast external failover, what FRR and most routers do on interface down. The
        emulated edge (ExaBGP) keeps its session until BFD detects the loss, but its kernel drops
        the routes through the interface at once, so traffic moves at the same instant in both.
        """
        if not self.world.links[link].carrier_lost():
            return
        for pair in self.world.pairs.values():
            if pair.sess.interconnect == link:
                for end in (pair.cf, pair.customer):
                    if end.state != "Idle":
                        end.down("interface down (carrier lost)")

    def _flap(self, link: str, half_period: float) -> None:
        """Down for half the period, up for the other half, starting down (as cnilab.sim.faults.flapd)."""
        lk = self.world.links[link]
        lk.flap_down = not lk.flap_down
        self.world.record("link", link, "flap down" if lk.flap_down else "flap up")
        self._carrier(link)
        self._flaps[link] = self.world.engine.after(half_period, self._flap, link, half_period)

    def _stop_flap(self, link: str) -> None:
        timer = self._flaps.pop(link, None)
        if timer is not None:
            timer.cancel()

    def clear(self, link: str | None) -> None:
        for name in [link] if link else list(self.world.links):
            self._stop_flap(name)
            if self.world.links[name].clear():
                self.world.record("link", name, "ok")

    def maintenance(self, link: str, op: str) -> None:
        for pair in self.world.pairs.values():
            if pair.sess.interconnect == link:
                getattr(pair.customer, op)()

    def mss_probe(self) -> ProbeResult:
        """Decided from the plan: the clamp the customer router applies vs the MSS the path needs."""
        facts = load_facts()
        router = self.topology.customer.router
        need = self.plan.mss_required
        if router.config is not None or router_kinds()[router.kind].module is None:
            return ProbeResult(passed=False, detail="cannot predict: the customer router uses its own configuration")
        clamp = router.mss_clamp
        dp = self.plan.customer_dataplane
        if dp is not None:  # the customer's own declaration decides; cnilab installs nothing
            declared = [c.value for c in dp.clamp_for(4)]
            if "pmtu" in declared:
                return ProbeResult(passed=False, detail="cannot predict: the declared clamp follows the route MTU")
            clamp = min((int(v) for v in declared), default=None)  # type: ignore[arg-type]
        elif clamp == "auto":
            return ProbeResult(passed=True, detail=f"router clamps MSS to {need}, what the path needs "
                                                   "(clamp installed by cnilab, not by your config)")
        host_mss = facts.mss_for_mtu(int(facts.physical_mtu.value))
        eff = host_mss if clamp is None else min(int(clamp), host_mss)
        what = "no MSS clamp" if clamp is None else f"MSS clamp {clamp}"
        if eff <= need:
            return ProbeResult(passed=True, detail=f"{what}: segments of {eff} fit the path (needs <= {need})")
        why = next((m.why for m in facts.mss_mistakes if m.value == clamp), "")
        return ProbeResult(passed=False, detail=f"{what}: hosts send {eff}-byte segments, the path carries at most "
                                                f"{need} (MTU {need + 40}); full-size packets are dropped"
                                                + (f". {why}" if why else ""))

    # -- report -----------------------------------------------------------------------------
    def series(self) -> Series:
        dur = self.world.engine.now
        bin_s = self.params.bin_s or next((b for b in NICE_BINS if dur / b <= 200), NICE_BINS[-1])
        bins: dict[int, LossBin] = {}
        for log in self._logs:
            for t, path in log:
                i = int(t / bin_s)
                b = bins.get(i)
                if b is None:
                    b = bins[i] = LossBin(t=round(i * bin_s, 9), sent=0, lost=0)
                b.sent += 1
                if path is None:
                    b.lost += 1
                else:
                    b.by_path[path] = b.by_path.get(path, 0) + 1
        trans = [Transition(t=round(t, 9), kind=k, subject=s, state=st, reason=r)
                 for t, k, s, st, r in self.world.transitions]
        return Series(duration=round(dur, 9), transitions=trans, bin_s=bin_s,
                      bins=[bins[i] for i in sorted(bins)])

    @property
    def notes(self) -> list[str]:
        return list(self.world.notes)
