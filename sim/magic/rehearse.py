"""The Magic Transit over CNI rehearsal: seed 001's last steps, on the emulator.

1. the lab (GRE over CNI + GRE over the internet) comes up;
2. Cloudflare's health checks come back through every tunnel (else: the cause and the fix);
3. every tunnel is healthy (30 clean probes);
4. traffic starts on the internet GRE tunnel (the CNI tunnel's priority is still worse);
5. "Cloudflare up-prefs the CNI connection": its priority is raised and the move is measured
   (time to the first packets on the CNI tunnel, loss, reordering);
6. MSS 1332 end to end (real TCP handshakes both ways);
7. egress by direct server return: origin -> internet leaves through the customer's transit;
8. rollback: the up-pref is undone and traffic moves back.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from cnilab.sim.handle import LabHandle
from cnilab.sim.magic.facts import legacy_range, legacy_target, timing
from cnilab.sim.magic.lab import read_status, wait_status
from cnilab.sim.topology.plan import CUSTOMER, EDGE
from pydantic import BaseModel, Field

STREAM_PPS = 200
MOVE_SLACK_S = 3.0
"""Declared slack for a priority change to reach the kernel on a loaded machine (config reload <= 0.1 s)."""
MAX_LOSS = 0.005
"""Packets a priority move may lose: 0.5 % of the stream (a route replace is atomic; the slack is for load)."""


class RStep(BaseModel):
    id: str
    title: str
    status: Literal["pass", "fail", "skip", "not-run"] = "not-run"
    seconds: float = 0.0
    detail: str = ""
    measured: dict[str, float | int | str] = Field(default_factory=dict)
    cause: str = ""
    fix: list[str] = Field(default_factory=list)


class MagicRehearsal(BaseModel):
    topology: str
    lab: str
    passed: bool
    steps: list[RStep]


class StepFailed(Exception):
    def __init__(self, detail: str, cause: str = "", fix: list[str] | None = None) -> None:
        super().__init__(detail)
        self.detail, self.cause, self.fix = detail, cause, fix or []


def require_all(results: list[Any], figure: Callable[[Any], int | None], measured: dict,
                failure: Callable[[Any], StepFailed], prefix: str = "") -> None:
    """Record each direction's ``figure`` in ``measured`` (-1 when the probe got none), then raise
    ``failure`` of the first result that failed, so a probe step reports every direction before it
    fails on one."""
    for r in results:
        v = figure(r)
        measured[f"{prefix}{r.direction}"] = v if v is not None else -1
    bad = next((r for r in results if not r.ok), None)
    if bad is not None:
        raise failure(bad)


# -- diagnosis ----------------------------------------------------------------------------------
def _sysctl(lab: LabHandle, key: str) -> int | None:
    r = lab.run(CUSTOMER, ["sysctl", "-n", key], check=False)
    return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else None


def _route_dev(lab: LabHandle, dst: str) -> str | None:
    """The interface the customer routes ``dst`` out of (what strict rp_filter compares with the
    interface a probe arrived on), or None without a route."""
    r = lab.run(CUSTOMER, ["ip", "-j", "route", "get", dst], check=False)
    if r.returncode != 0:
        return None
    import json

    routes = json.loads(r.stdout or "[]")
    return str(routes[0].get("dev")) if routes else None


def diagnose(lab: LabHandle, tunnel: str) -> tuple[str, list[str]]:
    """Why the customer's router does not return ``tunnel``'s probes, and the lines that fix it."""
    from cnilab.sim.magic.config import load_config
    from cnilab.sim.magic.faults import cust_ifname
    from cnilab.sim.magic.lab import config_path

    cfg = load_config(config_path(lab))
    t = next(x for x in cfg.tunnels if x.name == tunnel)
    ifname = cust_ifname(lab, t)
    hc = t.health_check
    from cnilab.sim.magic.lab import customer_source

    src = customer_source(lab, t)
    if src != str(t.cust_outer):
        return (f"the customer's end of {tunnel} sends GRE from {src}; Cloudflare's end accepts it only from "
                f"customer_gre_endpoint {t.cust_outer}, so every answer is dropped at Cloudflare",
                [f"set the tunnel source to {t.cust_outer} (Linux: ip tunnel change {ifname} local {t.cust_outer}; "
                 f"Cisco: tunnel source {t.cust_outer}; Junos: tunnel source {t.cust_outer})",
                 f"or change customer_gre_endpoint to {src} through the API"])
    rules = lab.run(CUSTOMER, ["nft", "list", "ruleset"], check=False).stdout
    dropping = [ln.strip() for ln in rules.splitlines() if f'"{ifname}"' in ln and "drop" in ln]
    if dropping:
        return (f"the customer's firewall drops the probes arriving on {ifname}: {dropping[0]}",
                [f"allow ICMP on the tunnel: nft insert rule <table> <chain> iifname \"{ifname}\" "
                 "icmp type { echo-request, echo-reply } accept",
                 "or remove the drop rule; the probe is ICMP inside GRE, decapsulated on the tunnel"])
    rp = max(_sysctl(lab, f"net.ipv4.conf.{ifname}.rp_filter") or 0,
             _sysctl(lab, "net.ipv4.conf.all.rp_filter") or 0)
    if hc.type == "reply" and not hc.legacy and _sysctl(lab, f"net.ipv4.conf.{ifname}.accept_local") == 0:
        src = t.cust_inner if hc.direction == "bidirectional" else t.cust_outer
        return (f"a reply-style probe arrives from {src}, the router's own address on {ifname}; Linux drops it as a "
                "martian source (accept_local=0), so it never goes back into the tunnel",
                [f"sysctl -w net.ipv4.conf.{ifname}.accept_local=1",
                 "or ask for request-style checks: PUT .../magic/cf_interconnects/{id} "
                 "{\"health_check\": {\"type\": \"request\"}}  (cnilab tunnels set "
                 f"{tunnel} --type request)"])
    src = str(hc.target or legacy_target()) if hc.legacy else ""
    back = _route_dev(lab, src) if src else ifname
    if rp == 1 and back != ifname:
        return (f"strict reverse-path filtering (rp_filter=1) on {ifname} drops the probe: {src} is routed back "
                f"{'out of ' + back if back else 'nowhere'}, not through the tunnel",
                [f"ip route replace {legacy_range()} dev {ifname}  (the legacy target's route back into the tunnel)",
                 f"or sysctl -w net.ipv4.conf.{ifname}.rp_filter=2 and net.ipv4.conf.all.rp_filter=2 (loose)"])
    st = read_status(lab)
    tun = next((x for x in st.tunnels if x.name == tunnel), None) if st else None
    note = next((p.note for p in reversed(tun.last) if not p.ok), "") if tun else ""
    if "outside the tunnel" in note:
        return (f"the answer leaves the customer router outside the tunnel ({note}); a bidirectional check needs it "
                "back through the tunnel",
                [f"route the health-check answer into {ifname} (a route or policy route for its destination)"])
    return (f"no probe comes back through {ifname} ({note or 'no answer'})",
            [f"check that {ifname} is up and decapsulates, and that the router routes {t.cf_inner} back into it"])


# -- steps --------------------------------------------------------------------------------------
class _Ctx:
    def __init__(self, lab: LabHandle) -> None:
        self.lab = lab
        cfg = _cfg(lab)
        self.cni = next(t.name for t in cfg.tunnels if t.kind == "cni")
        self.inet = next((t.name for t in cfg.tunnels if t.kind == "gre"), "")
        self.ifnames = {t.ifname: t.name for t in cfg.tunnels}
        self.prio = {t.name: min((r.priority for r in cfg.routes if r.nexthop == t.name), default=0)
                     for t in cfg.tunnels}
        self.worse = max(self.prio.values(), default=0) + 100


def _cfg(lab: LabHandle):
    from cnilab.sim.magic.config import load_config
    from cnilab.sim.magic.lab import config_path

    return load_config(config_path(lab))


def _interval(lab: LabHandle) -> float:
    st = read_status(lab)
    return max((t.interval_s for t in st.tunnels), default=timing().interval("mid")) if st else timing().interval("mid")


def step_probes_return(c: _Ctx, measured: dict) -> str:
    bound = _interval(c.lab) + (timing().reprobes + 1) * timing().probe_timeout_s + 5.0
    st = wait_status(c.lab, lambda s: all(t.state != "down" for t in s.tunnels), bound)
    down = [t.name for t in st.tunnels if t.state == "down"] if st else ["(no status)"]
    if down:
        cause, fix = diagnose(c.lab, down[0])
        raise StepFailed(f"tunnel {', '.join(down)} down: Cloudflare's health checks do not come back", cause, fix)
    return "; ".join(f"{t.name}: {t.returned} probes returned ({t.type}/{t.direction}), rtt "
                     f"{t.last[-1].rtt_ms} ms" for t in st.tunnels)


def step_healthy(c: _Ctx, measured: dict) -> str:
    bound = timing().healthy_window_probes * _interval(c.lab) + 30.0
    st = wait_status(c.lab, lambda s: all(t.state == "healthy" for t in s.tunnels), bound)
    if st is None or not all(t.state == "healthy" for t in st.tunnels):
        bad = [t for t in (st.tunnels if st else []) if t.state != "healthy"]
        states = ", ".join(f"{t.name} {t.state}" for t in bad)
        raise StepFailed(f"not healthy within {bound:.0f}s: {states}",
                         "probes are lost now and then (degraded needs 30 clean probes to clear)",
                         ["look for loss on the tunnel path (cnilab tunnels shows which probes failed)"])
    return "all tunnels healthy (30 clean probes each)"


def _move(c: _Ctx, priority: int, to: str, label: str, measured: dict) -> str:
    from cnilab.sim.magic.ops import set_tunnel
    from cnilab.sim.probes.traffic import PathSampler, UdpStream

    lab = c.lab
    with UdpStream(lab.netns_path("inet"), lab.netns_path("origin"), "198.51.100.10", STREAM_PPS) as s, \
            PathSampler(lab.netns_path(EDGE), c.ifnames) as ps:
        time.sleep(1.0)
        before = ps.path_at(time.monotonic() - 0.8, time.monotonic(), min_total=STREAM_PPS // 10)
        t0 = time.monotonic()
        set_tunnel(lab, c.cni, priority=priority)
        first = None
        deadline = t0 + 1.0 + MOVE_SLACK_S
        while time.monotonic() < deadline and first is None:
            time.sleep(0.05)
            first = ps.first_on(to, t0, 0.1, STREAM_PPS // 20)
        time.sleep(1.0)
        s.stop()
        stats = s.stats()
    measured.update({"moved_after_ms": round((first - t0) * 1000, 1) if first else -1, "sent": stats.sent,
                     "lost": stats.lost, "reordered": stats.reordered, "duplicates": stats.duplicates,
                     "max_gap_ms": round(stats.max_gap_ms, 1), "before": before or "-"})
    if first is None:
        raise StepFailed(f"{label}: traffic did not reach {to} within {1.0 + MOVE_SLACK_S:.0f}s (it was on {before})")
    if stats.lost > MAX_LOSS * stats.sent:
        raise StepFailed(f"{label}: {stats.lost} of {stats.sent} packets lost in the move",
                         "packets in flight were dropped during the move",
                         ["check the tunnel MTU/MSS and that both tunnels deliver to the origin"])
    return (f"traffic {before} -> {to} {measured['moved_after_ms']} ms after the change; {stats.lost}/{stats.sent} "
            f"lost, {stats.reordered} reordered, max gap {measured['max_gap_ms']} ms")


def step_on_internet(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.magic.ops import set_tunnel
    from cnilab.sim.probes.traffic import PathSampler, UdpStream

    set_tunnel(c.lab, c.cni, priority=c.worse)
    time.sleep(0.5)
    with UdpStream(c.lab.netns_path("inet"), c.lab.netns_path("origin"), "198.51.100.10", STREAM_PPS) as s, \
            PathSampler(c.lab.netns_path(EDGE), c.ifnames) as ps:
        time.sleep(1.5)
        path = ps.path_at(time.monotonic() - 1.0, time.monotonic(), min_total=STREAM_PPS // 10)
        s.stop()
        stats = s.stats()
    measured.update({"path": path or "-", "received": stats.received})
    if path != c.inet or stats.received == 0:
        raise StepFailed(f"traffic is on {path}, not on the internet GRE tunnel {c.inet} ({stats.received} received)")
    return f"{stats.received}/{stats.sent} packets reached the origin over {c.inet} (CNI priority {c.worse})"


def step_mss(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.probes.mss import probe_mss

    rep = probe_mss(c.lab)
    require_all(rep.results, lambda r: r.syn_arrived, measured, lambda bad: StepFailed(
        f"{bad.direction}: {bad.advice}", f"the customer router does not clamp MSS to {rep.required} on every path",
        list(rep.fix.values())))
    from cnilab.sim.probes.mtu import measure_direction
    from cnilab.sim.topology.plan import INTERNET, ORIGIN

    plan = c.lab.plan
    ic = next(t.interconnect for t in plan.tunnels if t.cf_ifname in c.ifnames) if plan.tunnels else \
        plan.sessions[0].interconnect
    addr = {n: str(next(a for i in plan.node(n).interfaces for a in i.addresses if a.version == 4).ip)
            for n in (INTERNET, ORIGIN)}
    # Ingress crosses the backhaul and the tunnel; egress leaves by DSR through the customer's transit,
    # so its path MTU is the transit path's, not the tunnel's.
    transit = min((lk.mtu for lk in plan.links if lk.role == "transit"), default=1500)
    mtu = [measure_direction(c.lab, "cf_to_customer", INTERNET, ORIGIN, addr[ORIGIN],
                             plan.e2e_mtu(ic, "cf_to_customer")),
           measure_direction(c.lab, "customer_to_cf", ORIGIN, INTERNET, addr[INTERNET], transit)]
    require_all(mtu, lambda r: r.measured, measured, prefix="mtu ", failure=lambda bad: StepFailed(
        f"path MTU {bad.direction} {bad.measured}, want {bad.expected}: {bad.diagnosis}"))
    return (f"MSS {rep.required} both ways: " + "; ".join(f"{r.direction} SYN {r.syn_arrived}" for r in rep.results)
            + f"; path MTU inet->origin {mtu[0].measured} (backhaul + tunnel), origin->inet {mtu[1].measured} "
              "(DSR via transit)")


def step_dsr(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.probes.traffic import PathSampler, UdpStream

    lab = c.lab
    inet = str(next(a for a in lab.plan.node("inet").iface("eth0").addresses if a.version == 4).ip)
    cust_ifs = {"transit0": "transit"} | {t.cust_ifname: "cloudflare" for t in lab.plan.tunnels} | \
        {lab.ifname(CUSTOMER, s.cust_iface): "cloudflare" for s in lab.plan.sessions}
    cust_ifs |= {n: "cloudflare" for n in c.ifnames if n.startswith("gre-")}
    with UdpStream(lab.netns_path("origin"), lab.netns_path("inet"), inet, STREAM_PPS) as s, \
            PathSampler(lab.netns_path(CUSTOMER), cust_ifs) as ps:
        time.sleep(1.5)
        path = ps.path_at(time.monotonic() - 1.0, time.monotonic(), min_total=STREAM_PPS // 10)
        s.stop()
        stats = s.stats()
    measured.update({"egress": path or "-", "received": stats.received})
    if path != "transit" or stats.received == 0:
        raise StepFailed(f"origin -> internet egress leaves via {path} ({stats.received} received), not the "
                         "customer's transit", "CNI does not carry egress: Magic Transit returns traffic by DSR",
                         ["route the origin's egress to your transit (e.g. a policy route from your prefixes)"])
    return f"origin -> internet via the customer's transit ({stats.received}/{stats.sent}); ingress via Cloudflare"


STEPS: dict[str, Callable[[_Ctx, dict], str]] = {
    "probes": step_probes_return,
    "healthy": step_healthy,
    "internet": step_on_internet,
    "up-pref": lambda c, m: _move(c, c.prio[c.cni], c.cni, "up-pref", m),
    "mss": step_mss,
    "dsr": step_dsr,
    "rollback": lambda c, m: _move(c, c.worse, c.inet, "rollback", m),
}


MT_STEPS = (
    ("lab", "lab up: GRE over CNI and GRE over the internet"),
    ("probes", "Cloudflare's health checks come back through every tunnel"),
    ("healthy", "every tunnel healthy"),
    ("internet", "traffic starts on the internet GRE tunnel"),
    ("up-pref", "Cloudflare up-prefs the CNI tunnel: traffic moves to CNI"),
    ("mss", "MSS 1332 and the path MTU, end to end both ways"),
    ("dsr", "egress by direct server return through the customer's transit"),
    ("rollback", "rollback of the up-pref moves traffic back"),
)


def rehearse_magic(topology: str | Path, lab_name: str | None = None, edit: Callable[[Any], Any] | None = None,
                   on_step: Callable[[RStep], None] | None = None) -> MagicRehearsal:
    """The Magic Transit rehearsal, or the Cloud Interconnect one for a topology with a Cloud Router."""
    from cnilab.sim.lab.lab import Lab
    from cnilab.sim.topology import build_plan, load_topology

    topo = load_topology(topology)
    if edit:
        topo = edit(topo)
    if topo.magic is None:
        raise ValueError(f"{topology}: the Magic rehearsal needs a magic: section")
    if topo.magic.cloud_router:
        from cnilab.sim.magic.gcp import GCP_STEPS
        from cnilab.sim.magic.gcp import STEPS as GSTEPS

        defs, table = GCP_STEPS, GSTEPS
    else:
        if not any(t.kind == "gre" for t in topo.magic.tunnels):
            raise ValueError(f"{topology}: the Magic Transit rehearsal needs a cni and a gre (internet) tunnel")
        defs, table = MT_STEPS, STEPS
    name = lab_name or f"mr-{uuid.uuid4().hex[:6]}"
    steps = [RStep(id=i, title=t) for i, t in defs]
    with contextlib.ExitStack() as stack:
        ctx: Any = None
        for step in steps:
            t0 = time.monotonic()
            try:
                if step.id == "lab":
                    lab = stack.enter_context(Lab.create(build_plan(topo, name)))
                    ctx = _Ctx(lab)
                    step.detail = f"lab {name}: " + lab.state.mechanisms.get("gre", "no GRE")
                else:
                    step.detail = table[step.id](ctx, step.measured)
                step.status = "pass"
            except StepFailed as exc:
                step.status, step.detail, step.cause, step.fix = "fail", exc.detail, exc.cause, exc.fix
            except Exception as exc:  # a step that could not run is a failure with its reason, never a pass
                step.status, step.detail = "fail", f"{type(exc).__name__}: {exc}"
            step.seconds = round(time.monotonic() - t0, 2)
            if on_step:
                on_step(step)
            if step.status == "fail":
                break
    return MagicRehearsal(topology=str(topology), lab=name, passed=all(s.status == "pass" for s in steps),
                          steps=steps)
