"""Tunnel probe: does the customer's GRE tunnel reach Cloudflare's, and if not, which value is wrong?

The verdict is live: a ping from the customer router to Cloudflare's inner address, which only
answers when the outer source and destination, the key and the inner /31 all match on both ends
(exactly what a mismatch breaks on a real CNI: nothing crosses, and the BGP next hop Cloudflare
announces inside the tunnel is unreachable). The diagnosis then compares the customer's
declaration with what Cloudflare built, so the failure names the value and the fix.
"""

from __future__ import annotations

import re

from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import CUSTOMER, Tunnel
from pydantic import BaseModel, Field

_RECV = re.compile(r"(\d+) packets transmitted, (\d+) received")


class TunnelResult(BaseModel):
    tunnel: str
    interconnect: str
    customer_ifname: str | None
    declared_at: str | None
    ping: str = Field(description="What the ping to Cloudflare's inner address saw")
    ok: bool
    causes: list[str] = Field(default_factory=list, description="Declared values that differ from Cloudflare's")
    fixes: list[str] = Field(default_factory=list)


class TunnelReport(BaseModel):
    lab: str
    results: list[TunnelResult]
    ok: bool
    provenance: str


def mismatches(t: Tunnel) -> tuple[list[str], list[str]]:
    """(causes, fixes): every declared value of the customer's end that cannot work with Cloudflare's."""
    d = t.declared
    if d is None:
        return [], []
    causes, fixes = [], []
    where = f" ({d.where})"
    if d.local != t.cust_outer:
        causes.append(f"tunnel {d.name} sends from {d.local}{where}; Cloudflare accepts GRE only from "
                      f"{t.cust_outer} (your end of the {t.interconnect} /31)")
        fixes.append(f"`ip tunnel add {d.name} mode gre local {t.cust_outer} remote {t.cf_outer} ttl 255`")
    if d.remote != t.cf_outer:
        causes.append(f"tunnel {d.name} points at {d.remote}{where}; Cloudflare's tunnel endpoint is {t.cf_outer}")
        fixes.append(f"set the tunnel destination to {t.cf_outer} (`remote {t.cf_outer}`)")
    if d.key is not None:
        causes.append(f"tunnel {d.name} uses GRE key {d.key}{where}; Cloudflare's CNI tunnel has no key, so each "
                      "end drops the other's packets")
        fixes.append("remove `key` from the tunnel")
    if d.address is None:
        causes.append(f"tunnel {d.name} has no inner IPv4 address; Cloudflare's is {t.cf_inner}")
        fixes.append(f"`ip addr add {t.cust_inner} dev {d.name}`")
    elif d.address.network != t.cf_inner.network or d.address.ip == t.cf_inner.ip:
        causes.append(f"tunnel {d.name} has inner address {d.address}{where}; Cloudflare's end is {t.cf_inner}, "
                      f"so yours must be {t.cust_inner}: {t.cf_inner.ip} (the BGP next hop of every Cloudflare "
                      "route) is unreachable")
        fixes.append(f"`ip addr add {t.cust_inner} dev {d.name}` (and remove {d.address})")
    if t.cf_inner6 is not None and (d.address6 is None or d.address6.network != t.cf_inner6.network):
        causes.append(f"tunnel {d.name} has inner IPv6 {d.address6 or 'none'}; Cloudflare's end is {t.cf_inner6}: "
                      f"IPv6 next hop {t.cf_inner6.ip} is unreachable")
        fixes.append(f"`ip -6 addr add {t.cust_inner6} dev {d.name}`")
    if not d.up:
        causes.append(f"tunnel {d.name} is never brought up (no `ip link set {d.name} up`)")
        fixes.append(f"`ip link set {d.name} up`")
    return causes, fixes


def probe_tunnel(lab: LabHandle) -> TunnelReport:
    from cnilab.sim.dataplane.customer import tunnel_provenance

    plan = lab.plan
    out: list[TunnelResult] = []
    for t in plan.tunnels:
        r = lab.run(CUSTOMER, ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(t.cf_inner.ip)], check=False)
        m = _RECV.search(r.stdout)
        got = f"{m.group(2)}/{m.group(1)} replies" if m else ((r.stderr or r.stdout).strip().splitlines() or ["?"])[-1]
        alive = r.returncode == 0
        causes, fixes = mismatches(t)
        if plan.customer_dataplane is not None and t.declared is None:
            causes.append(f"no tunnel toward Cloudflare's {t.cf_outer} is declared in "
                          f"{plan.customer_dataplane.source}")
            fixes.append(f"`ip tunnel add gre-{t.interconnect} mode gre local {t.cust_outer} remote {t.cf_outer} "
                         f"ttl 255`, `ip addr add {t.cust_inner} dev gre-{t.interconnect}`, "
                         f"`ip link set gre-{t.interconnect} mtu {t.mtu} up`")
        out.append(TunnelResult(
            tunnel=t.name, interconnect=t.interconnect,
            customer_ifname=t.declared.name if t.declared else (None if plan.customer_dataplane else t.cust_ifname),
            declared_at=t.declared.where if t.declared else None,
            ping=f"ping {t.cf_inner.ip} (Cloudflare's inner address): {got}", ok=alive, causes=causes, fixes=fixes))
    prov = tunnel_provenance(plan)
    return TunnelReport(lab=lab.state.lab, results=out, ok=all(x.ok for x in out), provenance=prov.text if prov else "")
