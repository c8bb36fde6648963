"""The Google Cloud Interconnect rehearsal path (seed 003, "Google Cloud Interconnect (Beta)"):
a Cloud Router BGP peer whose routes Cloudflare ignores, Magic WAN static routes, legacy
bidirectional health checks, and the VLAN attachment MTU that must match the interconnect's."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from cnilab.sim.magic.rehearse import StepFailed, _Ctx, require_all, step_probes_return
from cnilab.sim.topology.plan import EDGE, ORIGIN

GCP_STEPS = (
    ("lab", "lab up: Cloud Router (AS 16550) on a partner VLAN attachment"),
    ("bgp", "Cloud Router BGP session Established"),
    ("ignored", "Cloudflare ignores the Cloud Router's BGP routes"),
    ("probes", "legacy bidirectional health checks come back over the attachment"),
    ("static", "the Magic WAN static route carries traffic to the VPC"),
    ("mtu", "the interconnect MTU matches the VLAN attachment"),
)


def step_bgp(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.edge import client_for

    client = client_for(c.lab)
    client.wait_established(timeout=60)
    want = sum(1 for p in c.lab.plan.customer_announce if p.version == 4)
    s = next(x for x in client.sessions() if x.family == 4)
    measured.update({"accepted": s.prefixes_accepted, "announced": want})
    if s.prefixes_accepted < want:
        from cnilab.sim.testing import wait_for

        wait_for(lambda: next(x for x in client.sessions() if x.family == 4).prefixes_accepted >= want, 30,
                 what="the Cloud Router's prefixes accepted")
    return f"{s.key} Established with AS {s.peer_asn}; {want} prefixes received and accepted by BGP"


def step_ignored(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.magic.lab import IGNORED_TABLE

    static = {str(r.prefix) for r in _cfg(c).routes}
    out = []
    for p in c.lab.plan.customer_announce:
        if p.version != 4 or str(p) in static:
            continue
        host = str(next(p.hosts()))
        bgp = c.lab.run(EDGE, ["ip", "route", "show", str(p), "proto", "bgp"], check=False).stdout.strip()
        got = c.lab.run(EDGE, ["ip", "route", "get", host], check=False)
        measured[str(p)] = "ignored" if got.returncode != 0 else "forwarded"
        if got.returncode == 0:
            raise StepFailed(f"{p} (announced by the Cloud Router) is forwarded: {got.stdout.strip()}",
                             "Cloudflare must ignore routes from GCP Cloud Router",
                             [f"keep the ip rule 'to {p} lookup {IGNORED_TABLE}' on the edge"])
        out.append(f"{p}: in BGP ({bgp or 'not installed'}) but {host} is unreachable at the edge (no static route)")
    return "; ".join(out) or "every announced prefix has a static route"


def _cfg(c: _Ctx):
    from cnilab.sim.magic.config import load_config
    from cnilab.sim.magic.lab import config_path

    return load_config(config_path(c.lab))


def step_static(c: _Ctx, measured: dict) -> str:
    cfg = _cfg(c)
    origin = next(a for a in c.lab.plan.node(ORIGIN).iface("eth0").addresses if a.version == 4).ip
    route = next((r for r in cfg.routes if origin in ipaddress.ip_network(r.prefix)), None)
    if route is None:
        raise StepFailed(f"no Magic WAN static route covers the VPC host {origin}", "traffic to the VPC has no route",
                         ["add a static route: POST .../magic/routes {prefix, nexthop, priority}"])
    r = c.lab.run("inet", ["ping", "-c", "5", "-i", "0.1", "-W", "1", str(origin)], check=False)
    measured["ping_rc"] = r.returncode
    if r.returncode != 0:
        raise StepFailed(f"inet -> {origin} over {route.prefix} via {route.nexthop}: no answer")
    return f"inet -> {origin}: 5/5 answered over static route {route.prefix} via {route.nexthop}"


def _attachment_mtu_mismatch(bad: Any) -> StepFailed:
    want = bad.expected
    return StepFailed(f"{bad.direction}: path MTU {bad.measured}, the interconnect's is {want} ({bad.diagnosis})",
                      f"the VLAN attachment's MTU does not match the interconnect's {want}: the MTU must match "
                      "the GCP VLAN attachment (seed 003)",
                      [f"gcloud compute interconnects attachments partner update ATTACHMENT --region REGION "
                       f"--mtu {want}", "or order the Cloudflare interconnect with the attachment's MTU"])


def step_mtu(c: _Ctx, measured: dict) -> str:
    from cnilab.sim.probes.mtu import probe_mtu

    rep = probe_mtu(c.lab)
    require_all(rep.results, lambda r: r.measured, measured, _attachment_mtu_mismatch)
    return "; ".join(f"{r.direction} {r.measured} (want {r.expected})" for r in rep.results)


STEPS: dict[str, Callable[[Any, dict], str]] = {
    "bgp": step_bgp,
    "ignored": step_ignored,
    "probes": step_probes_return,
    "static": step_static,
    "mtu": step_mtu,
}
