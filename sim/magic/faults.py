"""Faults on Magic tunnels, applied in the customer node: the ways a customer router stops
returning health-check probes (or a tunnel stops carrying anything), switchable at run time.

Each kind is a real change in the ``cust`` namespace, never a flag the daemon reads: the probe is
really dropped, and the edge's daemon really sees it missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnilab.sim.handle import LabHandle
from cnilab.sim.magic.config import HcTunnel, load_config
from cnilab.sim.magic.facts import legacy_range
from cnilab.sim.topology.plan import CUSTOMER

FaultFn = Callable[[Any, str, bool], None]


def _nft_table(tunnel: str, kind: str) -> str:
    return f"cnilab_mg_{kind.replace('-', '_')}_{tunnel.replace('-', '_')}"


def _firewall(lab: LabHandle, ifname: str, on: bool, tunnel: str = "") -> None:
    t = _nft_table(tunnel, "fw")
    if on:
        lab.run(CUSTOMER, ["nft", "-f", "-"], input=(
            f"table inet {t} {{ chain hc_in {{ type filter hook prerouting priority -150; "
            f'iifname "{ifname}" meta l4proto icmp drop; }}; }}\n'))
    else:
        lab.run(CUSTOMER, ["nft", "delete", "table", "inet", t], check=False)


def _blackhole(lab: LabHandle, ifname: str, on: bool, tunnel: str = "") -> None:
    t = _nft_table(tunnel, "bh")
    if on:
        lab.run(CUSTOMER, ["nft", "-f", "-"], input=(
            f"table inet {t} {{ chain hc_in {{ type filter hook prerouting priority -150; "
            f"iifname \"{ifname}\" drop; }};"
            f" chain hc_out {{ type filter hook postrouting priority 150; oifname \"{ifname}\" drop; }}; }}\n"))
    else:
        lab.run(CUSTOMER, ["nft", "delete", "table", "inet", t], check=False)


def _sysctl(key: str, bad: int, good: int) -> Callable[..., None]:
    def fn(lab: LabHandle, ifname: str, on: bool, tunnel: str = "") -> None:
        lab.run(CUSTOMER, ["sysctl", "-qw", f"net.ipv4.conf.{ifname}.{key}={bad if on else good}"])
    return fn


def _rp_filter(lab: LabHandle, ifname: str, on: bool, tunnel: str = "") -> None:
    """Strict rp_filter with the route back to the probe's source pointing away from the tunnel.

    Only the legacy target (172.64.240.253) is exposed: a bidirectional probe's source is on the
    tunnel's own /31. Deleting the customer's /30 route is not enough to model the mistake, since
    Cloudflare's BGP announcement 172.64.0.0/13 covers the target and routes it back into the
    tunnel; the real mistake is a more specific route back out of another interface (the LAN or the
    internet uplink), which this installs on ``lan0``."""
    from cnilab.sim.magic.lab import config_path

    t = next(x for x in load_config(config_path(lab)).tunnels if x.name == tunnel)
    for key in (f"net.ipv4.conf.{ifname}.rp_filter", "net.ipv4.conf.all.rp_filter"):
        lab.run(CUSTOMER, ["sysctl", "-qw", f"{key}={1 if on else 0}"])
    if t.health_check.legacy:
        lab.run(CUSTOMER, ["ip", "route", "replace", legacy_range(), "dev", "lan0" if on else ifname])


def _wrong_source(lab: LabHandle, ifname: str, on: bool, tunnel: str = "") -> None:
    import ipaddress

    from cnilab.sim.magic.lab import config_path, set_customer_source

    t = next(x for x in load_config(config_path(lab)).tunnels if x.name == tunnel)
    if t.kind == "cni" and not ifname.startswith("gre-"):
        raise ValueError(f"tunnel {tunnel} has no GRE (a CNI without GRE has no tunnel source)")
    lan = next(a for a in lab.plan.node(CUSTOMER).iface("lan0").addresses if a.version == 4)
    set_customer_source(lab, t, lan.ip if on else ipaddress.IPv4Address(str(t.cust_outer)))


FAULTS: dict[str, tuple[Callable[..., None], str]] = {
    "wrong-source": (_wrong_source, "the customer's GRE end sends from its LAN address, not the "
                     "customer_gre_endpoint Cloudflare expects (Cloudflare drops it)"),
    "firewall": (_firewall, "the customer's firewall drops ICMP arriving on the tunnel (no probe returns)"),
    "accept-local-off": (_sysctl("accept_local", 0, 1), "Linux drops a probe sourced from its own address "
                         "(reply style) as a martian: accept_local=0"),
    "rp-filter": (_rp_filter, "strict reverse-path filter and the route back to the probe's source out of another "
                  "interface (bites the "
                  "legacy target 172.64.240.253; a bidirectional probe's source is on the tunnel)"),
    "blackhole": (_blackhole, "the tunnel carries nothing either way (customer side drops it)"),
}


def cust_ifname(lab: LabHandle, t: HcTunnel) -> str:
    from cnilab.sim.magic.lab import _cust_ifname

    return t.ifname if t.kind == "gre" else _cust_ifname(lab, t)


def apply(lab: LabHandle, tunnel: str, kind: str, on: bool = True) -> str:
    """Apply (or clear) fault ``kind`` on Magic tunnel ``tunnel``; returns what it does."""
    from cnilab.sim.magic.lab import config_path

    if kind not in FAULTS:
        raise ValueError(f"unknown tunnel fault {kind!r}; choose one of {', '.join(FAULTS)}")
    cfg = load_config(config_path(lab))
    t = next((x for x in cfg.tunnels if x.name == tunnel), None)
    if t is None:
        raise ValueError(f"no Magic tunnel {tunnel!r}; tunnels: {', '.join(x.name for x in cfg.tunnels)}")
    fn, what = FAULTS[kind]
    fn(lab, cust_ifname(lab, t), on, tunnel)
    with lab.update() as st:
        active = st.extra.setdefault("magic_faults", {})
        kinds = set(active.get(tunnel, []))
        kinds = kinds | {kind} if on else kinds - {kind}
        active[tunnel] = sorted(kinds)
    return what


def clear_all(lab: LabHandle) -> None:
    for tunnel, kinds in dict(lab.state.extra.get("magic_faults", {})).items():
        for k in kinds:
            apply(lab, tunnel, k, on=False)
