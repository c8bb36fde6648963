"""Interface state and counters read from the kernel, in each node's network namespace.

One netlink socket per node is opened inside that node's namespace (a socket keeps the namespace
it was created in), so a 250 ms sampling loop costs one RTNL dump per node and never forks ``ip``.
Carrier and counters come from the kernel, not from the lab's own bookkeeping: a fault that did
not take, or a link a colleague downed by hand, shows up as it really is.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cnilab.sim.runtime.nsenter import in_netns
from pydantic import BaseModel
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

IFF_UP = 0x1


class IfaceSample(BaseModel):
    admin_up: bool
    carrier: bool
    operstate: str
    tx_packets: int
    tx_bytes: int


class NetnsReader:
    """``with NetnsReader({node: netns_path}) as r: r.sample()`` -> node -> ifname -> IfaceSample.

    A namespace that cannot be opened (a lab being torn down) is retried on the next sample and
    reported as absent meanwhile, so the dashboard shows the loss instead of dying.
    """

    def __init__(self, netns: dict[str, str]) -> None:
        self.netns = netns
        self._sockets: dict[str, IPRoute] = {}
        self.errors: dict[str, str] = {}

    def __enter__(self) -> NetnsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            with contextlib.suppress(OSError):
                ipr.close()
        self._sockets.clear()

    def _socket(self, node: str) -> IPRoute | None:
        ipr = self._sockets.get(node)
        if ipr is None:
            try:
                with in_netns(self.netns[node]):
                    ipr = IPRoute()
            except (OSError, NetlinkError) as exc:
                self.errors[node] = f"namespace {self.netns[node]}: {getattr(exc, 'strerror', None) or exc}"
                return None
            self._sockets[node] = ipr
            self.errors.pop(node, None)
        return ipr

    def sample(self) -> dict[str, dict[str, IfaceSample]]:
        out: dict[str, dict[str, IfaceSample]] = {}
        for node in self.netns:
            ipr = self._socket(node)
            if ipr is None:
                continue
            try:
                links = ipr.get_links()
            except (OSError, NetlinkError) as exc:  # namespace gone under us: reopen next time
                self.errors[node] = str(exc)
                with contextlib.suppress(OSError):
                    ipr.close()
                self._sockets.pop(node, None)
                continue
            out[node] = {link.get_attr("IFLA_IFNAME"): _iface(link) for link in links}
        return out


def _iface(link: Any) -> IfaceSample:
    stats = link.get_attr("IFLA_STATS64") or link.get_attr("IFLA_STATS") or {}
    return IfaceSample(admin_up=bool(link["flags"] & IFF_UP), carrier=bool(link.get_attr("IFLA_CARRIER")),
                       operstate=str(link.get_attr("IFLA_OPERSTATE") or "UNKNOWN"),
                       tx_packets=int(stats.get("tx_packets", 0)), tx_bytes=int(stats.get("tx_bytes", 0)))
