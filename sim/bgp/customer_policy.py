"""The customer's FRR config as a policy model: what it exports to each neighbor, and its limits.

The discrete-event simulator has no routing daemon, so to predict the incidents that hinge on the
customer's policy (a leak toward a third party, a maximum-prefix trip) it reads the config the
emulator would load and evaluates the few constructs those incidents depend on, the way bgpd does:

* outbound ``prefix-list``, ``filter-list`` (``bgp as-path access-list``, FRR's ``_`` included) and
  ``route-map`` (``match ip address prefix-list``, ``match as-path``, ``set as-path prepend``; an
  entry without a match matches everything; no entry matched means deny), all of which must permit;
* ``bgp ebgp-requires-policy`` (on by default since FRR 7.4 except with ``frr defaults
  datacenter``): an eBGP neighbor without any outbound policy gets nothing;
* GRACEFUL_SHUTDOWN honoured (bgpd's own local-pref 0) unless an inbound ``set weight`` defeats it;
* ``neighbor X maximum-prefix N [threshold] [restart M | warning-only]``, ``default-originate``,
  ``shutdown``, and peer-groups (a neighbor's own settings over its group's).

What it does not model (inbound policy, communities, other daemons' languages) it does not guess:
:func:`parse_frr` raises :class:`Unsupported` for a config it cannot read, and the simulator says so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Unsupported(ValueError):
    """The config uses something this model cannot evaluate: the simulator must not guess a verdict."""


@dataclass
class PrefixEntry:
    seq: int
    permit: bool
    net: Network | None  # None: "any"
    ge: int | None = None
    le: int | None = None

    def matches(self, p: Network) -> bool:
        if self.net is None:
            return True
        if p.version != self.net.version or not p.subnet_of(self.net):  # type: ignore[arg-type]
            return False
        if self.ge is None and self.le is None:
            return p.prefixlen == self.net.prefixlen
        lo = self.ge if self.ge is not None else self.net.prefixlen
        hi = self.le if self.le is not None else p.max_prefixlen
        return lo <= p.prefixlen <= hi


@dataclass
class RouteMapEntry:
    seq: int
    permit: bool
    prefix_lists: list[str] = field(default_factory=list)
    as_paths: list[str] = field(default_factory=list)
    prepend: list[int] = field(default_factory=list)
    unmodelled: list[str] = field(default_factory=list, metadata={"doc": "match clauses this model cannot judge"})
    weight: int | None = None
    communities: list[str] = field(default_factory=list, metadata={"doc": "match community LIST names"})


@dataclass
class NeighborPolicy:
    address: str
    remote_as: int | None = None
    prefix_list_out: str | None = None
    filter_list_out: str | None = None
    route_map_out: str | None = None
    route_map_in: str | None = None
    max_prefix: int | None = None
    max_prefix_restart: int | None = None
    max_prefix_warning_only: bool = False
    default_originate: bool = False
    peer_group: str | None = None
    shutdown: bool = False

    @property
    def has_out_policy(self) -> bool:
        return any((self.prefix_list_out, self.filter_list_out, self.route_map_out))

    def inherit(self, group: NeighborPolicy) -> NeighborPolicy:
        """The neighbor's own settings over its peer-group's (bgpd's inheritance)."""
        out = NeighborPolicy(address=self.address)
        for f in ("remote_as", "prefix_list_out", "filter_list_out", "route_map_out", "route_map_in", "max_prefix",
                  "max_prefix_restart"):
            setattr(out, f, getattr(self, f) if getattr(self, f) is not None else getattr(group, f))
        out.max_prefix_warning_only = self.max_prefix_warning_only or group.max_prefix_warning_only
        out.default_originate = self.default_originate or group.default_originate
        out.shutdown = self.shutdown or group.shutdown
        return out


@dataclass
class CustomerPolicy:
    asn: int
    requires_policy: bool
    neighbors: dict[str, NeighborPolicy]
    prefix_lists: dict[str, list[PrefixEntry]]
    as_path_lists: dict[str, list[tuple[bool, str]]]
    route_maps: dict[str, list[RouteMapEntry]]
    networks: list[Network] = field(default_factory=list)
    community_lists: dict[str, list[tuple[bool, set[str]]]] = field(default_factory=dict)

    def _plist(self, name: str, p: Network) -> bool:
        for e in sorted(self.prefix_lists.get(name, []), key=lambda e: e.seq):
            if e.matches(p):
                return e.permit
        return False  # implicit deny (also for a list that is referenced but not defined)

    def _aspath(self, name: str, path: list[int]) -> bool:
        text = " ".join(map(str, path))
        for permit, regex in self.as_path_lists.get(name, []):
            if re.search(_frr_regex(regex), text):
                return permit
        return False

    def neighbor(self, address: str) -> NeighborPolicy | None:
        """The neighbor's effective settings (its peer-group's filled in); None when not configured."""
        nb = self.neighbors.get(address)
        if nb is None or nb.peer_group is None:
            return nb
        return nb.inherit(self.neighbors.get(nb.peer_group, NeighborPolicy(address=nb.peer_group)))

    def export(self, neighbor: str, prefix: Network, path: list[int]) -> list[int] | None:
        """The AS path the neighbor receives (our AS prepended), or None when the policy drops it.

        ``path`` is the route's AS path in our RIB: [] for our own prefixes, [13335] for Cloudflare's."""
        nb = self.neighbor(neighbor)
        if nb is None or nb.shutdown:
            return None
        if self.requires_policy and not nb.has_out_policy:
            return None
        if nb.prefix_list_out and not self._plist(nb.prefix_list_out, prefix):
            return None
        if nb.filter_list_out and not self._aspath(nb.filter_list_out, path):
            return None
        prepend: list[int] = []
        if nb.route_map_out:
            if any(e.communities for e in self.route_maps.get(nb.route_map_out, [])):
                raise Unsupported(f"route-map {nb.route_map_out} matches communities outbound: the communities "
                                  "each route carries in the customer's RIB are not modelled")
            e = self.entry_for(nb.route_map_out, prefix, path, set())
            if e is None or not e.permit:
                return None
            prepend = e.prepend
        return [self.asn, *prepend, *path]


    def _clist(self, name: str, comms: set[str]) -> bool:
        for permit, need in self.community_lists.get(name, []):
            if need <= comms:
                return permit
        return False

    def entry_for(self, route_map: str, prefix: Network, path: list[int], comms: set[str]) -> RouteMapEntry | None:
        """The first entry of ``route_map`` that matches the route (bgpd stops there), or None."""
        for e in sorted(self.route_maps.get(route_map, []), key=lambda e: e.seq):
            if e.unmodelled:
                raise Unsupported(f"route-map {route_map} {e.seq}: `{e.unmodelled[0]}` is not modelled")
            if all(self._plist(n, prefix) for n in e.prefix_lists) and \
                    all(self._aspath(n, path) for n in e.as_paths) and \
                    all(self._clist(n, comms) for n in e.communities):
                return e
        return None

    def gshut_defeated(self, neighbor: str, prefixes: list[Network], path: list[int]) -> str | None:
        """Why routes tagged GRACEFUL_SHUTDOWN from ``neighbor`` still win, or None when bgpd honours it.

        bgpd gives eBGP routes carrying 65535:0 local-pref 0 by itself; an inbound ``set weight`` on
        the entry such a route meets first defeats that (weight is compared before local-pref)."""
        nb = self.neighbor(neighbor)
        if nb is None or not nb.route_map_in:
            return None
        for p in prefixes:
            e = self.entry_for(nb.route_map_in, p, path, {"65535:0"})
            if e is not None and e.permit and e.weight:
                return (f"route-map {nb.route_map_in} {e.seq} sets weight {e.weight} on {p} from {neighbor}, "
                        "GRACEFUL_SHUTDOWN included")
        return None


def _frr_regex(regex: str) -> str:
    """FRR's AS-path regex: ``_`` matches a separator, the start or the end."""
    return regex.replace("_", r"(^|[ ,{}()]|$)")


_WELL_KNOWN = {"graceful-shutdown": "65535:0", "no-export": "65535:65281", "no-advertise": "65535:65282"}

_NB = re.compile(r"^\s*neighbor\s+(\S+)\s+(.*)$")


def parse_frr(text: str) -> CustomerPolicy:
    """Read the constructs above from an FRR config; raise Unsupported for what cannot be judged."""
    asn = None
    datacenter = bool(re.search(r"^\s*frr defaults datacenter", text, re.M))
    requires = not datacenter
    neighbors: dict[str, NeighborPolicy] = {}
    plists: dict[str, list[PrefixEntry]] = {}
    aspaths: dict[str, list[tuple[bool, str]]] = {}
    rmaps: dict[str, list[RouteMapEntry]] = {}
    cur_rm: RouteMapEntry | None = None
    networks: list[Network] = []
    clists: dict[str, list[tuple[bool, set[str]]]] = {}
    af = None
    for raw in text.splitlines():
        line = raw.split("!", 1)[0].rstrip()
        if not line.strip():
            continue
        words = line.split()
        if not raw.startswith(" "):
            cur_rm = None
        if words[:2] == ["router", "bgp"]:
            if len(words) > 3:
                raise Unsupported(f"`{line.strip()}`: BGP in a VRF is not modelled")
            asn = int(words[2])
            af = "ipv4"
        elif words[0] == "address-family":
            af = "ipv4" if words[1:3] == ["ipv4", "unicast"] else words[1]
        elif words[0] == "exit-address-family":
            af = "ipv4"
        elif words[0] == "network" and asn is not None and af == "ipv4":
            networks.append(ipaddress.ip_network(words[1], strict=False))
        elif words[0] == "redistribute" and asn is not None:
            raise Unsupported(f"`{line.strip()}`: redistribution is not modelled (announce with `network`)")
        elif words[:2] == ["ip", "prefix-list"] and words[3:4] == ["description"]:
            continue
        elif words[:2] == ["ip", "prefix-list"]:
            m = re.match(r"ip prefix-list (\S+) (?:seq (\d+) )?(permit|deny) (\S+)(?: ge (\d+))?(?: le (\d+))?$",
                         line.strip())
            if not m:
                raise Unsupported(f"`{line.strip()}`: prefix-list form not modelled")
            name, seq, act, net, ge, le = m.groups()
            entries = plists.setdefault(name, [])
            entries.append(PrefixEntry(seq=int(seq) if seq else 5 * (len(entries) + 1), permit=act == "permit",
                                       net=None if net == "any" else ipaddress.ip_network(net, strict=False),
                                       ge=int(ge) if ge else None, le=int(le) if le else None))
        elif words[:2] == ["bgp", "community-list"]:
            m = re.match(r"bgp community-list (?:standard )?(\S+) (?:seq \d+ )?(permit|deny) (.+)$", line.strip())
            if not m or m.group(1) == "expanded":
                raise Unsupported(f"`{line.strip()}`: community-list form not modelled")
            comms = {_WELL_KNOWN.get(c, c) for c in m.group(3).split()}
            clists.setdefault(m.group(1), []).append((m.group(2) == "permit", comms))
        elif words[:3] == ["bgp", "as-path", "access-list"]:
            m = re.match(r"bgp as-path access-list (\S+) (?:seq \d+ )?(permit|deny) (.+)$", line.strip())
            if not m:
                raise Unsupported(f"`{line.strip()}`: as-path access-list form not modelled")
            aspaths.setdefault(m.group(1), []).append((m.group(2) == "permit", m.group(3).strip()))
        elif words[0] == "route-map" and len(words) >= 4:
            cur_rm = RouteMapEntry(seq=int(words[3]), permit=words[2] == "permit")
            rmaps.setdefault(words[1], []).append(cur_rm)
        elif cur_rm is not None and raw.startswith(" "):
            w = words
            if w[:4] == ["match", "ip", "address", "prefix-list"]:
                cur_rm.prefix_lists.append(w[4])
            elif w[:2] == ["match", "as-path"]:
                cur_rm.as_paths.append(w[2])
            elif w[:2] == ["set", "weight"] and w[2:3] and w[2].isdigit():
                cur_rm.weight = int(w[2])
            elif w[:3] == ["set", "as-path", "prepend"] and all(x.isdigit() for x in w[3:]):
                cur_rm.prepend = [int(x) for x in w[3:]]
            elif w[:2] == ["match", "community"] and len(w) == 3:
                cur_rm.communities.append(w[2])
            elif w[0] in ("match", "call", "on-match", "continue"):
                cur_rm.unmodelled.append(line.strip())  # judged only if this map is used outbound
        elif words[:2] == ["no", "bgp"] and words[2:3] == ["ebgp-requires-policy"]:
            requires = False
        elif words[:2] == ["bgp", "ebgp-requires-policy"]:
            requires = True
        elif (m := _NB.match(line)) and asn is not None:
            addr, rest = m.group(1), m.group(2).split()
            nb = neighbors.setdefault(addr, NeighborPolicy(address=addr))
            if rest[0] == "remote-as" and rest[1].isdigit():
                nb.remote_as = int(rest[1])
            elif rest[0] == "peer-group" and len(rest) > 1:
                nb.peer_group = rest[1]
            elif rest[0] == "shutdown":
                nb.shutdown = True
            elif af != "ipv4":
                continue  # only IPv4 unicast: the third parties and the table growth are IPv4
            elif rest[0] == "prefix-list" and rest[2:3] == ["out"]:
                nb.prefix_list_out = rest[1]
            elif rest[0] == "filter-list" and rest[2:3] == ["out"]:
                nb.filter_list_out = rest[1]
            elif rest[0] == "route-map" and rest[2:3] == ["out"]:
                nb.route_map_out = rest[1]
            elif rest[0] == "route-map" and rest[2:3] == ["in"]:
                nb.route_map_in = rest[1]
            elif rest[0] == "default-originate":
                nb.default_originate = True
            elif rest[0] == "maximum-prefix":
                nb.max_prefix = int(rest[1])
                nb.max_prefix_warning_only = "warning-only" in rest
                if "restart" in rest:
                    nb.max_prefix_restart = int(rest[rest.index("restart") + 1])
    if asn is None:
        raise Unsupported("no `router bgp ASN` in the config")
    return CustomerPolicy(asn=asn, requires_policy=requires, neighbors=neighbors, prefix_lists=plists,
                          as_path_lists=aspaths, route_maps=rmaps, networks=networks, community_lists=clists)
