"""From a Topology to a LabPlan: every node, interface, address, tunnel, route and BGP session.

The plan is the contract between the topology and everything that builds or reasons about a lab:
the netns and docker backends build it, the containerlab exporter writes it out, the edge peer and
the customer router templates read their sessions from it, and the simulator models it. Nothing
below this layer decides addressing or MTUs again.

Lab shape (names are node names; each is one namespace / container)::

    inet ── cf ══ interconnect(s) ══ cust ── origin
             │  (colo ── backhaul ── cf, for Magic Transit)
             └── transit ── cust          (internet backup, optional)
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from cnilab.sim.bgp.rov import Roa
from cnilab.sim.dataplane.declared import CustomerDataplane, DeclaredTunnel, load_dataplane
from cnilab.sim.facts import DIRECTIONS, cloudflare_ranges, load_facts
from cnilab.sim.magic.model import MagicSpec
from cnilab.sim.topology.model import CustomerRouter, Interconnect, Topology
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["edge", "customer", "internet", "origin", "transit", "colo", "peer"]
LinkRole = Literal["interconnect", "lan", "backbone", "backhaul", "transit", "peer"]

EDGE, CUSTOMER, INTERNET, ORIGIN, TRANSIT, COLO = "cf", "cust", "inet", "origin", "transit", "colo"
PEER = "peer"

BACKUP_METRIC = 1000
"""Kernel metric of the static internet-backup route: worse than any CNI route."""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Iface(Plan):
    name: str
    mtu: int = 1500
    vlan: int | None = Field(default=None, description="802.1Q tag; addresses then live on NAME.VLAN")
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = Field(default_factory=list)

    @property
    def l3_name(self) -> str:
        """The interface that carries the addresses (the VLAN sub-interface when tagged)."""
        return f"{self.name}.{self.vlan}" if self.vlan else self.name


class Route(Plan):
    dst: ipaddress.IPv4Network | ipaddress.IPv6Network
    via: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dev: str | None = None
    metric: int = 0
    mtu: int | None = Field(default=None, description="Locked route MTU (`mtu lock N`): limits this hop only")


class Node(Plan):
    name: str
    role: Role
    interfaces: list[Iface] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    forwarding: bool = False
    loopbacks: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = Field(default_factory=list)

    def iface(self, name: str) -> Iface:
        return next(i for i in self.interfaces if i.name == name)


class Endpoint(Plan):
    node: str
    iface: str


class Link(Plan):
    name: str
    role: LinkRole
    a: Endpoint
    b: Endpoint
    mtu: int = 1500
    interconnect: str | None = None


class Tunnel(Plan):
    """A GRE tunnel between the edge and the customer router over an interconnect's /31."""

    name: str
    interconnect: str
    mtu: int
    cf_ifname: str
    cust_ifname: str
    cf_outer: ipaddress.IPv4Address
    cust_outer: ipaddress.IPv4Address
    cf_inner: ipaddress.IPv4Interface
    cust_inner: ipaddress.IPv4Interface
    cf_inner6: ipaddress.IPv6Interface | None = Field(default=None, description="Inner /127 when the link has IPv6")
    cust_inner6: ipaddress.IPv6Interface | None = None
    declared: DeclaredTunnel | None = Field(
        default=None, description="The customer's own declaration of its end (customer.router.dataplane), "
                                  "matched to this tunnel; None: cnilab builds the customer end from the plan")

    def cust_nexthop(self, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The customer's inner address of ``family`` (where the edge sends traffic into the tunnel)."""
        if family == 6 and self.cust_inner6 is not None:
            return self.cust_inner6.ip
        return self.cust_inner.ip


class Session(Plan):
    """One BGP session (per interconnect and address family), as both sides must configure it."""

    interconnect: str
    family: Literal[4, 6]
    cf_addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    cust_addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    cf_asn: int
    cust_asn: int
    md5: str | None
    customer_md5: str | None
    hold_time: int
    keepalive: int
    passive: bool
    local_pref: int
    priority: int
    bfd: bool
    bfd_tx_ms: int
    bfd_rx_ms: int
    bfd_multiplier: int
    cf_nexthop: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(
        description="Next hop the edge announces: its GRE inner address when customer->CF rides GRE"
    )
    cust_nexthop_via: Literal["link", "gre"] = Field(
        description="How the edge reaches customer prefixes: over the link or the GRE tunnel"
    )
    cf_iface: str
    cust_iface: str
    max_prefix: int | None = Field(default=None, description="Edge's limit on prefixes from the customer")

    @property
    def key(self) -> str:
        return f"{self.interconnect}/v{self.family}"

    @property
    def detection_ms(self) -> int | None:
        """BFD detection time with both ends configured alike (RFC 5880 6.8.4): multiplier x the
        negotiated interval, max(desired min TX, required min RX); None when BFD is off."""
        return self.bfd_multiplier * max(self.bfd_tx_ms, self.bfd_rx_ms) if self.bfd else None


class LabPlan(Plan):
    lab: str
    topology: str
    nodes: list[Node]
    links: list[Link]
    tunnels: list[Tunnel]
    sessions: list[Session]
    cf_prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    customer_prefixes: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    customer_announce: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    mss_required: int
    path_mtu: dict[str, dict[str, int]] = Field(
        description="interconnect -> direction -> path MTU over the interconnect itself (GRE or not)")
    backhaul_mtu: int | None = Field(
        default=None, description="Magic Transit: what the FOU/IPv6 backhaul leaves for a packet entering at "
                                  "the ingress colo (Cloudflare -> customer only)")
    customer_dataplane: CustomerDataplane | None = Field(
        default=None, description="What the customer declared for its side (customer.router.dataplane)")

    def e2e_mtu(self, interconnect: str, direction: str) -> int:
        """Path MTU inet <-> origin through ``interconnect``, the one Magic Transit figure.

        Cloudflare -> customer: traffic enters at the ingress colo and crosses the FOU/IPv6
        backhaul to the CNI colo, then the GRE tunnel: min(backhaul, tunnel) = 1372.
        Customer -> Cloudflare: the customer's GRE packet is decapsulated at the CNI colo and
        leaves Cloudflare from there (no backhaul): the tunnel's 1476. ``cnilab status``, the MTU
        probe and the README all show these two numbers.
        """
        mtu = self.path_mtu[interconnect][direction]
        if self.backhaul_mtu and direction == "cf_to_customer":
            return min(mtu, self.backhaul_mtu)
        return mtu
    customer_router: CustomerRouter = Field(
        default_factory=CustomerRouter, description="kind/config/mss_clamp of the customer router (cnilab.sim.routers)"
    )
    scale_routes: int = Field(default=0, description="Extra more-specifics the edge announces (cnilab.sim.bgp.scale)")
    roas: list[Roa] | None = Field(default=None, description="The customer's ROAs; None: the edge does no ROV",
                                   exclude_if=lambda v: v is None)
    magic: MagicSpec | None = Field(default=None, description="Magic tunnels and routes (cnilab.sim.magic)",
                                    exclude_if=lambda v: v is None)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def link(self, name: str) -> Link:
        return next(lk for lk in self.links if lk.name == name)

    def sessions_for(self, interconnect: str) -> list[Session]:
        return [s for s in self.sessions if s.interconnect == interconnect]


def _gre_inner(index: int) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Interface]:
    base = ipaddress.IPv4Address("10.212.0.0") + 2 * index
    return ipaddress.IPv4Interface(f"{base}/31"), ipaddress.IPv4Interface(f"{base + 1}/31")


def _gre_inner6(index: int) -> tuple[ipaddress.IPv6Interface, ipaddress.IPv6Interface]:
    """Inner /127 of the tunnel, so IPv6 rides GRE like IPv4 where the profile says GRE (ULA space)."""
    base = ipaddress.IPv6Address("fd00:cf:6e::") + 2 * index
    return ipaddress.IPv6Interface(f"{base}/127"), ipaddress.IPv6Interface(f"{base + 1}/127")


def match_declared(dp: CustomerDataplane, tunnels: list[Tunnel]) -> list[Tunnel]:
    """Pair each planned tunnel with the customer's declaration of its end.

    By Cloudflare's outer address first (what the customer was told to point at), then by the
    customer's own outer address, then in order: a tunnel declared with a wrong destination still
    belongs to its interconnect, so the lab builds it as written and the mistake shows.
    """
    left = list(dp.tunnels)
    pick: dict[int, DeclaredTunnel] = {}
    for key in ("remote", "local", None):
        for i, t in enumerate(tunnels):
            if i in pick or not left:
                continue
            want = t.cf_outer if key == "remote" else t.cust_outer if key == "local" else None
            found = next((d for d in left if key is None or getattr(d, key) == want), None)
            if found is not None:
                left.remove(found)
                pick[i] = found
    return [t.model_copy(update={"declared": pick.get(i)}) for i, t in enumerate(tunnels)]


def _first_host(net: ipaddress.IPv4Network | ipaddress.IPv6Network, n: int, plen: int):
    sub = ipaddress.ip_network(f"{net.network_address}/{max(plen, net.prefixlen)}", strict=False)
    return ipaddress.ip_interface(f"{sub.network_address + n}/{sub.prefixlen}")


def build_plan(topo: Topology, lab: str | None = None) -> LabPlan:
    """Resolve a validated topology into the full lab plan (pure; no side effects)."""
    facts = load_facts()
    lab = lab or topo.name
    nodes: dict[str, Node] = {
        EDGE: Node(name=EDGE, role="edge", forwarding=True),
        CUSTOMER: Node(name=CUSTOMER, role="customer", forwarding=True),
        INTERNET: Node(name=INTERNET, role="internet"),
        ORIGIN: Node(name=ORIGIN, role="origin"),
    }
    links: list[Link] = []
    tunnels: list[Tunnel] = []
    sessions: list[Session] = []

    def connect(name: str, role: LinkRole, a: tuple[str, Iface], b: tuple[str, Iface], ic: str | None = None):
        nodes[a[0]].interfaces.append(a[1])
        nodes[b[0]].interfaces.append(b[1])
        links.append(Link(name=name, role=role, a=Endpoint(node=a[0], iface=a[1].name),
                          b=Endpoint(node=b[0], iface=b[1].name), mtu=a[1].mtu, interconnect=ic))

    phys = int(facts.physical_mtu.value)
    bh_mtu = phys
    mt = any(ic.service == "magic-transit" for ic in topo.interconnects)

    # Internet side: inet host on a Cloudflare range, default route to the edge (or via the colo).
    inet = topo.hosts.internet
    inet_gw4 = ipaddress.ip_interface(f"{inet.ipv4.network.network_address + 1}/{inet.ipv4.network.prefixlen}")
    inet_gw6 = (ipaddress.ip_interface(f"{inet.ipv6.network.network_address + 1}/{inet.ipv6.network.prefixlen}")
                if inet.ipv6 else None)
    front = COLO if mt else EDGE
    if mt:
        nodes[COLO] = Node(name=COLO, role="colo", forwarding=True)
    connect("backbone", "backbone",
            (front, Iface(name="inet0", addresses=[a for a in (inet_gw4, inet_gw6) if a])),
            (INTERNET, Iface(name="eth0", addresses=[a for a in (inet.ipv4, inet.ipv6) if a])))
    nodes[INTERNET].routes += [Route(dst=ipaddress.ip_network("0.0.0.0/0"), via=inet_gw4.ip)]
    if inet_gw6:
        nodes[INTERNET].routes.append(Route(dst=ipaddress.ip_network("::/0"), via=inet_gw6.ip))

    if mt:
        # Magic Transit: traffic enters at another colo and is backhauled (FOU over IPv6) to the
        # CNI colo. The backhaul link's MTU is what the backhaul stack leaves for the inner packet.
        svc = facts.services["magic-transit"]
        reserve = svc.unattributed_reserve.bytes if svc.unattributed_reserve else 0
        bh_mtu = phys - facts.overhead(svc.backhaul_encap) - reserve
        # Only ingress is backhauled (Cloudflare -> customer); egress leaves at the CNI colo. The
        # link stays 1500 and the colo's routes toward the edge carry a locked MTU, so the colo
        # answers oversized DF packets with frag-needed (PMTUD) in that one direction.
        connect("backhaul", "backhaul",
                (COLO, Iface(name="bh0", mtu=phys, addresses=[ipaddress.ip_interface("100.127.0.0/31"),
                                                             ipaddress.ip_interface("fd00:cf:b4::/127")])),
                (EDGE, Iface(name="bh0", mtu=phys, addresses=[ipaddress.ip_interface("100.127.0.1/31"),
                                                             ipaddress.ip_interface("fd00:cf:b4::1/127")])))
        nodes[COLO].routes += [Route(dst=ipaddress.ip_network("0.0.0.0/0"), via=ipaddress.ip_address("100.127.0.1"),
                                     mtu=bh_mtu),
                               Route(dst=ipaddress.ip_network("::/0"), via=ipaddress.ip_address("fd00:cf:b4::1"),
                                     mtu=bh_mtu)]
        nodes[EDGE].routes.append(Route(dst=inet.ipv4.network, via=ipaddress.ip_address("100.127.0.0")))
        if inet.ipv6:
            nodes[EDGE].routes.append(Route(dst=inet.ipv6.network, via=ipaddress.ip_address("fd00:cf:b4::")))

    # Customer LAN and origin host: first announced IPv4 prefix, .1 on the router, .10 on the origin.
    v4 = next((p for p in topo.customer.prefixes if p.version == 4), None)
    v6 = next((p for p in topo.customer.prefixes if p.version == 6), None)
    if topo.hosts.origin:
        o4, o6 = topo.hosts.origin.ipv4, topo.hosts.origin.ipv6
    else:
        if v4 is None:
            raise ValueError("customer.prefixes needs an IPv4 prefix for the origin host (or set hosts.origin)")
        o4 = _first_host(v4, 10, 24)
        o6 = _first_host(v6, 0x10, 64) if v6 else None
    gw4 = ipaddress.ip_interface(f"{o4.network.network_address + 1}/{o4.network.prefixlen}")
    gw6 = ipaddress.ip_interface(f"{o6.network.network_address + 1}/{o6.network.prefixlen}") if o6 else None
    connect("lan", "lan", (CUSTOMER, Iface(name="lan0", addresses=[a for a in (gw4, gw6) if a])),
            (ORIGIN, Iface(name="eth0", addresses=[a for a in (o4, o6) if a])))
    nodes[ORIGIN].routes.append(Route(dst=ipaddress.ip_network("0.0.0.0/0"), via=gw4.ip))
    if gw6:
        nodes[ORIGIN].routes.append(Route(dst=ipaddress.ip_network("::/0"), via=gw6.ip))

    path_mtu: dict[str, dict[str, int]] = {}
    for idx, ic in enumerate(topo.interconnects):
        prof = facts.profiles[ic.dataplane]
        addrs_cf = [ic.ipv4.cloudflare] + ([ic.ipv6.cloudflare] if ic.ipv6 else [])
        addrs_cu = [ic.ipv4.customer] + ([ic.ipv6.customer] if ic.ipv6 else [])
        connect(ic.name, "interconnect",
                (EDGE, Iface(name=ic.name, mtu=phys, vlan=ic.vlan, addresses=addrs_cf)),
                (CUSTOMER, Iface(name=ic.name, mtu=phys, vlan=ic.vlan, addresses=addrs_cu)), ic=ic.name)
        gre_dirs = {d for d in DIRECTIONS if "gre" in prof.encap[d]}
        if ic.service == "magic-transit":
            gre_dirs.add("cf_to_customer")  # Magic Transit delivers to the customer inside GRE
        tunnel = None
        if prof.gre and gre_dirs:
            cf_in, cu_in = (ic.gre.cloudflare, ic.gre.customer) if ic.gre else _gre_inner(idx)
            cf6, cu6 = ((ic.gre6.cloudflare, ic.gre6.customer) if ic.gre6 else _gre_inner6(idx)) if ic.ipv6 \
                else (None, None)
            tunnel = Tunnel(name=f"gre-{ic.name}", interconnect=ic.name,
                            mtu=phys - facts.overhead(["gre", "ipv4"]),
                            cf_ifname=f"gre-{ic.name}", cust_ifname=f"gre-{ic.name}",
                            cf_outer=ic.ipv4.cloudflare.ip, cust_outer=ic.ipv4.customer.ip,
                            cf_inner=cf_in, cust_inner=cu_in, cf_inner6=cf6, cust_inner6=cu6)
            tunnels.append(tunnel)
        path_mtu[ic.name] = {d: (tunnel.mtu if tunnel and d in gre_dirs else phys) for d in DIRECTIONS}
        sessions += _sessions(topo, ic, tunnel, gre_dirs)

    if topo.internet_backup:
        t_cu = (ipaddress.ip_interface("203.0.113.0/31"), ipaddress.ip_interface("203.0.113.1/31"))
        t_cf = (ipaddress.ip_interface("203.0.113.2/31"), ipaddress.ip_interface("203.0.113.3/31"))
        nodes[TRANSIT] = Node(name=TRANSIT, role="transit", forwarding=True)
        connect("transit-cust", "transit", (TRANSIT, Iface(name="cust0", addresses=[t_cu[0]])),
                (CUSTOMER, Iface(name="transit0", addresses=[t_cu[1]])))
        connect("transit-cf", "transit", (TRANSIT, Iface(name="cf0", addresses=[t_cf[0]])),
                (EDGE, Iface(name="transit0", addresses=[t_cf[1]])))
        for p in topo.customer.prefixes:
            if p.version == 4:
                nodes[TRANSIT].routes.append(Route(dst=p, via=t_cu[1].ip))
                nodes[EDGE].routes.append(Route(dst=p, via=t_cf[0].ip, metric=BACKUP_METRIC))
        nodes[TRANSIT].routes.append(Route(dst=inet.ipv4.network, via=t_cf[1].ip))
    if topo.peer:
        # A settlement-free peer: BGP only (cnilab.sim.transit), no traffic path, so nothing routes through it.
        nodes[PEER] = Node(name=PEER, role="peer")
        connect("peer-cust", "peer", (PEER, Iface(name="cust0", addresses=[ipaddress.ip_interface("203.0.113.4/31")])),
                (CUSTOMER, Iface(name="peer0", addresses=[ipaddress.ip_interface("203.0.113.5/31")])))

    declared = None
    if topo.customer.router.dataplane is not None:
        declared = load_dataplane(topo.customer.router.dataplane)
        matched = match_declared(declared, tunnels)
        tunnels[:] = matched
    cf_prefixes = list(cloudflare_ranges()) + list(topo.cloudflare.extra_prefixes)
    return LabPlan(
        lab=lab, topology=topo.name, nodes=list(nodes.values()), links=links, tunnels=tunnels,
        sessions=sessions, cf_prefixes=cf_prefixes, customer_prefixes=list(topo.customer.prefixes),
        customer_announce=list(topo.customer.prefixes) + list(topo.customer.announce_extra),
        mss_required=min(facts.required_mss(ic.dataplane, ic.service) for ic in topo.interconnects),
        path_mtu=path_mtu, backhaul_mtu=bh_mtu if mt else None, customer_router=topo.customer.router,
        customer_dataplane=declared,
        scale_routes=topo.cloudflare.scale_routes, magic=topo.magic,
        roas=list(topo.rpki.roas) if topo.rpki else None,
    )


def _sessions(topo: Topology, ic: Interconnect, tunnel: Tunnel | None, gre_dirs: set[str]) -> list[Session]:
    facts = load_facts()
    out = []
    fams = [(4, ic.ipv4)] + ([(6, ic.ipv6)] if ic.ipv6 else [])
    for fam, p2p in fams:
        # IPv6 rides the tunnel too when it has an inner /127: the profile's encapsulation is per
        # direction, not per address family (seed 003: v1 customer->CF is GRE, 1476).
        gre4 = tunnel is not None and (fam == 4 or tunnel.cf_inner6 is not None)
        out.append(Session(
            interconnect=ic.name, family=fam, cf_addr=p2p.cloudflare.ip, cust_addr=p2p.customer.ip,
            cf_asn=facts.cloudflare_asn, cust_asn=topo.customer.asn, md5=ic.bgp.md5,
            customer_md5=ic.bgp.customer_md5 if ic.bgp.customer_md5 is not None else ic.bgp.md5,
            hold_time=ic.bgp.hold_time, keepalive=ic.bgp.keepalive_s, passive=ic.bgp.passive,
            local_pref=ic.bgp.local_pref, priority=ic.priority, bfd=ic.bfd.enabled,
            bfd_tx_ms=ic.bfd.tx_ms, bfd_rx_ms=ic.bfd.rx_ms, bfd_multiplier=ic.bfd.multiplier,
            cf_nexthop=((tunnel.cf_inner.ip if fam == 4 else tunnel.cf_inner6.ip)  # type: ignore[union-attr]
                        if gre4 and tunnel and "customer_to_cf" in gre_dirs else p2p.cloudflare.ip),
            cust_nexthop_via="gre" if gre4 and "cf_to_customer" in gre_dirs else "link",
            cf_iface=ic.name if ic.vlan is None else f"{ic.name}.{ic.vlan}",
            cust_iface=ic.name if ic.vlan is None else f"{ic.name}.{ic.vlan}", max_prefix=ic.bgp.max_prefix,
        ))
    return out
