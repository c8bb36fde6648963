"""Kernel routes in the cf namespace for the customer prefixes the edge accepted.

The edge's forwarding table must follow BGP, or a probe would "pass" over a session that is down.
Routes are owned by protocol 186 (``proto bgp`` in ``ip route``), so this module can list and
remove exactly what it installed and nothing else (the plan's static routes, e.g. the internet
backup at metric 1000, stay). Every alternative path is installed with its rank as metric
(:mod:`cnilab.sim.bgp.bestpath`), so when the best session drops the kernel already holds the next one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict
from pyroute2 import IPRoute, NetNS
from pyroute2.netlink.exceptions import NetlinkError

RTPROT_BGP = 186
"""rtnetlink protocol number shown as ``proto bgp`` by iproute2 (/etc/iproute2/rt_protos)."""

log = logging.getLogger(__name__)


class KernelRoute(BaseModel):
    model_config = ConfigDict(frozen=True)

    dst: ipaddress.IPv4Network | ipaddress.IPv6Network
    gateway: ipaddress.IPv4Address | ipaddress.IPv6Address
    metric: int


class RouteTable:
    """Converges the kernel's proto-bgp routes onto a desired set; a context manager that flushes
    them on exit, so a driver that stops never leaves the edge forwarding into a dead session."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: IPRoute | NetNS | None = None
        self.errors: dict[str, str] = {}

    def __enter__(self) -> RouteTable:
        self._ipr = NetNS(self.netns) if self.netns else IPRoute()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
        finally:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

    @property
    def ipr(self) -> IPRoute | NetNS:
        if self._ipr is None:
            raise RuntimeError("RouteTable used outside its `with` block")
        return self._ipr

    def installed(self) -> set[KernelRoute]:
        out: set[KernelRoute] = set()
        for m in self.ipr.route("dump", proto=RTPROT_BGP):
            if m.get("table") not in (None, 254) or m.get("gateway") is None:
                continue
            dst = ipaddress.ip_network(f"{m.get('dst') or ('0.0.0.0' if m.get('family') == 2 else '::')}"
                                       f"/{m['dst_len']}")
            out.add(KernelRoute(dst=dst, gateway=ipaddress.ip_address(m.get("gateway")),
                                metric=int(m.get("priority") or 0)))
        return out

    def _op(self, op: str, r: KernelRoute) -> None:
        kw = {"dst": str(r.dst), "priority": r.metric, "proto": RTPROT_BGP,
              "family": 2 if r.dst.version == 4 else 10}
        kw["gateway"] = str(r.gateway)
        self.ipr.route(op, **kw)

    def sync(self, desired: Iterable[KernelRoute]) -> dict[str, str]:
        """Make the kernel hold exactly ``desired``; returns {prefix: error} for routes the kernel
        refused (e.g. a GRE next hop whose tunnel is not up yet), retried on the next sync."""
        # The kernel keys a route by (prefix, metric): `replace` swaps the gateway in place, so a
        # re-ranking (ewr1 gone: ewr2 moves from metric 11 to 10) never leaves a gap, and only keys
        # nobody wants any more are deleted - by gateway too, so a delete never hits a replacement.
        want = {(r.dst, r.metric): r for r in desired}
        have = {(r.dst, r.metric): r for r in self.installed()}
        errors: dict[str, str] = {}
        for key in sorted(want, key=lambda k: (k[0].version, str(k[0]), k[1])):
            r = want[key]
            if have.get(key) == r:
                continue
            try:
                self._op("replace", r)
            except NetlinkError as exc:
                errors[str(r.dst)] = f"kernel refused {r.dst} via {r.gateway} metric {r.metric}: {exc}"
        for key in have.keys() - want.keys():
            r = have[key]
            try:
                self._op("del", r)
            except NetlinkError as exc:
                if exc.code != 3:  # ESRCH: already gone
                    errors[str(r.dst)] = f"could not remove {r.dst} metric {r.metric}: {exc}"
        self.errors = errors
        return errors

    def flush(self) -> None:
        if self._ipr is None:
            return
        for r in self.installed():
            try:
                self._op("del", r)
            except NetlinkError as exc:
                log.warning("could not remove %s: %s", r.dst, exc)
