"""Build the Magic side of a running lab: internet GRE tunnels, the customer's return settings,
the DSR egress policy, and the health-check daemon on the edge.

Called by :class:`cnilab.sim.lab.lab.Lab` after the customer router starts (``start_magic``) when the
topology has a ``magic:`` section. Everything made here is recorded in the lab's state file
(tunnel endpoints, processes), so ``cnilab down`` removes it like the rest of the lab.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from pathlib import Path

from cnilab.sim.backends.registry import backend_kind, backend_names
from cnilab.sim.handle import LabHandle
from cnilab.sim.magic.config import CONFIG_FILE, STATUS_FILE, HcConfig, HcTunnel, MagicStatus, load_config, save_config
from cnilab.sim.magic.facts import legacy_range, raw
from cnilab.sim.magic.model import MagicSpec
from cnilab.sim.magic.steering import MagicRoute
from cnilab.sim.runtime import process
from cnilab.sim.state import TunnelRecord
from cnilab.sim.topology.plan import CUSTOMER, EDGE, TRANSIT, LabPlan

INET_GRE_BASE = ipaddress.IPv4Address("10.213.0.0")
"""Inner /31s of the internet GRE tunnels (CNI tunnels use the plan's 10.212.0.0/31s)."""
DSR_TABLE = 200
IGNORED_TABLE = 301
"""Edge table (and rule preference) that makes prefixes announced by a GCP Cloud Router unreachable
unless a Magic static route (table 300, checked first) covers them: the BGP routes are ignored."""
NFT_TABLE = "cnilab_magic"


class MagicError(RuntimeError):
    pass


def _transit_addrs(plan: LabPlan) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address,
                                           ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """(customer outer, transit on the customer side, cf outer, transit on the cf side)."""
    tr = plan.node(TRANSIT)
    cu = next(a for a in plan.node(CUSTOMER).iface("transit0").addresses if a.version == 4)
    cf = next(a for a in plan.node(EDGE).iface("transit0").addresses if a.version == 4)
    t_cu = next(a for a in tr.iface("cust0").addresses if a.version == 4)
    t_cf = next(a for a in tr.iface("cf0").addresses if a.version == 4)
    return cu.ip, t_cu.ip, cf.ip, t_cf.ip


def resolve(plan: LabPlan, spec: MagicSpec | None = None) -> HcConfig:
    """The daemon's config from the plan: each Magic tunnel's edge interface and addresses."""
    spec = spec or plan.magic
    if spec is None:
        raise MagicError("the topology has no magic: section")
    tunnels: list[HcTunnel] = []
    gre_idx = 0
    for t in spec.tunnels:
        if t.kind == "cni":
            tun = next((x for x in plan.tunnels if x.interconnect == t.interconnect), None)
            if tun is not None:
                tunnels.append(HcTunnel(name=t.name, kind="cni", ifname=tun.cf_ifname, cf_inner=tun.cf_inner.ip,
                                        cust_inner=tun.cust_inner.ip, cf_outer=tun.cf_outer, cust_outer=tun.cust_outer,
                                        health_check=t.health_check, mtu=tun.mtu))
            else:  # a CNI without GRE (v2, Cloud Interconnect): the interconnect interface is the "tunnel"
                s = next(x for x in plan.sessions if x.interconnect == t.interconnect and x.family == 4)
                tunnels.append(HcTunnel(name=t.name, kind="cni", ifname=s.cf_iface, cf_inner=s.cf_addr,
                                        cust_inner=s.cust_addr, cf_outer=s.cf_addr, cust_outer=s.cust_addr,
                                        health_check=t.health_check, mtu=plan.link(t.interconnect).mtu))
        else:
            cu_out, _, cf_out, _ = _transit_addrs(plan)
            base = INET_GRE_BASE + 2 * gre_idx
            gre_idx += 1
            tunnels.append(HcTunnel(name=t.name, kind="gre", ifname=f"gre-{t.name}"[:15], cf_inner=base,
                                    cust_inner=base + 1, cf_outer=cf_out, cust_outer=cu_out,
                                    health_check=t.health_check, mtu=int(raw()["gre"]["default_mtu"]["value"])))
    prefixes = spec.routes or [p for p in plan.customer_prefixes if p.version == 4]
    routes = [MagicRoute(prefix=p, nexthop=t.name, priority=t.priority, weight=t.weight,
                         id=f"{t.name}-{i}") for t in spec.tunnels for i, p in enumerate(prefixes)]
    return HcConfig(tunnels=tunnels, routes=routes, intervals=dict(spec.intervals or {}))


def _gre_mode(lab: LabHandle) -> str:
    return "kernel" if lab.state.mechanisms.get("gre", "").startswith("kernel") else "userspace"


def _build_inet_gre(lab: LabHandle, t: HcTunnel) -> None:
    from cnilab.sim.dataplane import gre as gremod

    mode = _gre_mode(lab)
    for node, local, remote, inner in (("cf", t.cf_outer, t.cust_outer, t.cf_inner),
                                       ("cust", t.cust_outer, t.cf_outer, t.cust_inner)):
        iface = ipaddress.IPv4Interface(f"{inner}/31")
        rec = TunnelRecord(name=t.name, node=node, ifname=t.ifname, mode=mode)  # type: ignore[arg-type]
        if mode == "kernel":
            gremod.create_kernel_gre(lab.netns_path(node), t.ifname, local, remote, iface, t.mtu)
        else:
            logfile = lab.node_dir(node) / f"{t.ifname}.log"

            def host_spawn(name: str, argv: list[str], node: str = node, logfile: Path = logfile):
                return process.spawn(name, node, argv, logfile)

            rec.process = gremod.start_userspace_gre(host_spawn, lab.netns_path(node), t.ifname, local, remote,
                                                     iface, t.mtu, logfile)
        with lab.update() as st:
            st.tunnels.append(rec)


def _customer_settings(lab: LabHandle, spec: MagicSpec, cfg: HcConfig, only: str | None = None) -> None:
    """What the customer's router does with probes: the knobs a rehearsal gets right or wrong."""
    c = spec.customer
    for t in cfg.tunnels:
        if only is not None and t.name != only:
            continue
        ifname = t.ifname if t.kind == "gre" else _cust_ifname(lab, t)
        for key, val in (("accept_local", int(c.accept_local)), ("rp_filter", c.rp_filter)):
            lab.run(CUSTOMER, ["sysctl", "-qw", f"net.ipv4.conf.{ifname}.{key}={val}"])
        if c.rp_filter:
            lab.run(CUSTOMER, ["sysctl", "-qw", f"net.ipv4.conf.all.rp_filter={c.rp_filter}"])
        if t.health_check.legacy:  # the route back for the legacy target (what rp_filter checks)
            lab.run(CUSTOMER, ["ip", "route", "replace", legacy_range(), "dev", ifname])
    if c.firewall_drop_icmp and only is None:
        ifs = ", ".join(f'"{t.ifname if t.kind == "gre" else _cust_ifname(lab, t)}"' for t in cfg.tunnels)
        lab.run(CUSTOMER, ["nft", "-f", "-"], input=(
            f"table inet {NFT_TABLE} {{ chain hc_in {{ type filter hook prerouting priority -150; "
            f"iifname {{ {ifs} }} meta l4proto icmp drop; }}; }}\n"))


def set_customer_source(lab: LabHandle, t: HcTunnel, local: ipaddress.IPv4Address) -> None:
    """Rebuild the customer's end of GRE tunnel ``t`` with outer source ``local`` (the "wrong tunnel
    source" mistake, and its fix). Cloudflare's end accepts GRE only from customer_gre_endpoint."""
    from cnilab.sim.dataplane import gre as gremod

    ifname = _cust_ifname(lab, t)
    st = lab.refresh()
    rec = next((r for r in st.tunnels if r.node == CUSTOMER and r.ifname == ifname), None)
    if rec is None:
        raise MagicError(f"tunnel {t.name} has no GRE endpoint on the customer side")
    if rec.mode == "kernel":
        lab.run(CUSTOMER, ["ip", "tunnel", "change", ifname, "local", str(local)])
    else:
        if rec.process:
            rec.process.stop()
        logfile = lab.node_dir(CUSTOMER) / f"{ifname}.log"

        def host_spawn(name: str, argv: list[str]):
            return process.spawn(name, CUSTOMER, argv, logfile)

        new = gremod.start_userspace_gre(host_spawn, lab.netns_path(CUSTOMER), ifname, local, t.cf_outer,
                                         ipaddress.IPv4Interface(f"{t.cust_inner}/31"), t.mtu, logfile)
        with lab.update() as st2:
            for r in st2.tunnels:
                if r.node == CUSTOMER and r.ifname == ifname:
                    r.process = new
        assert lab.plan.magic is not None
        # a new TUN device starts with default sysctls; the MSS clamp matches by name and stays
        _customer_settings(lab, lab.plan.magic, load_config(config_path(lab)), only=t.name)
    with lab.update() as st3:
        st3.extra.setdefault("magic_sources", {})[t.name] = str(local)


def customer_source(lab: LabHandle, t: HcTunnel) -> str:
    """The outer source the customer's end of ``t`` uses now."""
    return lab.state.extra.get("magic_sources", {}).get(t.name, str(t.cust_outer))


def _cust_ifname(lab: LabHandle, t: HcTunnel) -> str:
    if t.kind == "gre":  # internet GRE: the same name on both ends
        return t.ifname
    plan: LabPlan = lab.plan
    tun = next((x for x in plan.tunnels if x.cf_ifname == t.ifname), None)
    if tun is not None:
        return tun.cust_ifname
    s = next(x for x in plan.sessions if x.cf_iface == t.ifname)
    return lab.ifname(CUSTOMER, s.cust_iface)


def _dsr(lab: LabHandle, plan: LabPlan) -> None:
    """Origin egress through the customer's own transit (seed 001: DSR, not through Cloudflare)."""
    _, t_cu, _, _ = _transit_addrs(plan)
    for p in plan.customer_prefixes:
        if p.version == 4:
            lab.run(CUSTOMER, ["ip", "rule", "add", "from", str(p), "lookup", str(DSR_TABLE), "pref", str(DSR_TABLE)])
    lab.run(CUSTOMER, ["ip", "route", "replace", "default", "via", str(t_cu), "table", str(DSR_TABLE)])


def _mss_clamp(lab: LabHandle, plan: LabPlan, cfg: HcConfig) -> None:
    """The customer clamps on every path Magic traffic takes: the internet GRE tunnels and, for
    DSR egress, its transit link (the CNI interfaces are clamped by the router module)."""
    from cnilab.sim.routers.mss import TABLE, render_nft, resolve_clamp

    mss = resolve_clamp(plan)
    ifaces = [t.ifname for t in cfg.tunnels if t.kind == "gre"]
    if TRANSIT in {n.name for n in plan.nodes}:
        ifaces.append("transit0")
    if mss is None or not ifaces:
        return
    lab.run(CUSTOMER, ["nft", "-f", "-"], input=render_nft(mss, ifaces).replace(TABLE, f"{TABLE}_magic"))


def _ignore_bgp(lab: LabHandle, plan: LabPlan, cfg: HcConfig) -> None:
    """seed 003: 'BGP routes advertised from GCP Cloud Router are ignored'. The edge's BGP session
    still accepts them (``cnilab bgp`` shows it); forwarding uses the Magic WAN static routes only."""
    static = {str(r.prefix) for r in cfg.routes}
    for p in plan.customer_announce:
        if p.version == 4 and str(p) not in static:
            lab.run(EDGE, ["ip", "route", "replace", "unreachable", str(p), "table", str(IGNORED_TABLE)])
            lab.run(EDGE, ["ip", "rule", "add", "to", str(p), "lookup", str(IGNORED_TABLE), "pref",
                           str(IGNORED_TABLE)])


def config_path(lab: LabHandle) -> Path:
    return Path(lab.node_dir(EDGE)) / CONFIG_FILE


def status_path(lab: LabHandle) -> Path:
    return Path(lab.node_dir(EDGE)) / STATUS_FILE


def start_magic(lab: LabHandle) -> None:
    plan: LabPlan = lab.plan
    spec = plan.magic
    if spec is None:
        return
    backend = lab.state.backend
    if not backend_kind(backend).host_files:  # the daemon and its files live on the host
        need = " or ".join(backend_names(host_files=True))
        with lab.update() as st:
            st.mechanisms["magic"] = (f"not built: Magic tunnels and health checks need the {need} backend, "
                                      f"not {backend}")
        return
    cfg = resolve(plan)
    if any(t.kind == "gre" for t in cfg.tunnels):
        cu_out, t_cu, cf_out, t_cf = _transit_addrs(plan)
        lab.run(EDGE, ["ip", "route", "replace", f"{cu_out}/32", "via", str(t_cf)])
        lab.run(CUSTOMER, ["ip", "route", "replace", f"{cf_out}/32", "via", str(t_cu)])
        for t in cfg.tunnels:
            if t.kind == "gre":
                _build_inet_gre(lab, t)
    _customer_settings(lab, spec, cfg)
    _mss_clamp(lab, plan, cfg)
    if spec.cloud_router:
        _ignore_bgp(lab, plan, cfg)
    if spec.vlan_attachment_mtu:
        for t in cfg.tunnels:
            if t.kind == "cni":
                lab.run(CUSTOMER, ["ip", "link", "set", "dev", _cust_ifname(lab, t), "mtu",
                                   str(spec.vlan_attachment_mtu)])
    if spec.dsr and TRANSIT in {n.name for n in plan.nodes}:
        _dsr(lab, plan)
    save_config(config_path(lab), cfg)
    lab.spawn(EDGE, "magic-hcd", [sys.executable, "-m", "cnilab.sim.magic.hcd", "--config", str(config_path(lab)),
                                  "--status", str(status_path(lab))], log=Path(lab.node_dir(EDGE)) / "magic-hcd.log")
    with lab.update() as st:
        st.mechanisms["magic"] = ("health checks: cnilab.sim.magic.hcd in cf (AF_PACKET into each tunnel, "
                                  f"raw ICMP back); steered routes in cf table 300; {len(cfg.tunnels)} tunnels")


STALE_S = 5.0
"""A status older than this comes from a daemon that stopped: it says nothing about the tunnels
(the daemon rewrites it every 0.5 s; the rest is slack for a loaded machine)."""


class StaleStatus(RuntimeError):
    pass


def read_status(lab: LabHandle, fresh: bool = True) -> MagicStatus | None:
    """The daemon's last report; with ``fresh``, :class:`StaleStatus` if it stopped reporting."""
    try:
        st = MagicStatus.model_validate(json.loads(status_path(lab).read_text()))
    except (OSError, ValueError):
        return None
    age = time.time() - st.updated
    if fresh and age > STALE_S:
        raise StaleStatus(f"the health-check daemon stopped reporting {age:.0f}s ago (pid {st.pid}; log "
                          f"{Path(lab.node_dir(EDGE)) / 'magic-hcd.log'}): its last tunnel states are not current")
    return st


def wait_status(lab: LabHandle, pred, timeout: float) -> MagicStatus | None:
    """Poll the daemon's status until ``pred(status)``; returns the last status seen."""
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        st = read_status(lab)
        if st is not None and pred(st):
            return st
        time.sleep(0.1)
    return st


def update_config(lab: LabHandle, fn) -> HcConfig:
    """Read-modify-write the running daemon's config (route priority, health-check rate...)."""
    path = config_path(lab)
    cfg = fn(load_config(path))
    save_config(path, cfg)
    return cfg
