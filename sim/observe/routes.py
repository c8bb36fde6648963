"""Where a router sends a destination, read with ``ip route get`` semantics over netlink."""

from __future__ import annotations

import contextlib
from typing import Any


class RouteReader:
    """``ip route get`` in-process: one netlink socket per node, opened once and reused.

    An observer asks both routers where they send traffic every 50 ms; forking ``ip`` twice per
    poll was itself a large part of the observation latency on a loaded 2-core host."""

    def __init__(self, netns_paths: dict[str, str]) -> None:
        from pyroute2 import IPRoute

        self._ipr: dict[str, Any] = {}
        self._names: dict[str, dict[int, str]] = {}
        try:
            for node, path in netns_paths.items():
                self._ipr[node] = IPRoute(netns=path, flags=0)  # flags=0: never create a namespace
                self._names[node] = {}
        except Exception:
            self.close()
            raise

    def dev(self, node: str, dst: str) -> str | None:
        """The interface ``node`` sends ``dst`` out of, or None (no route, or the namespace is gone)."""
        ipr = self._ipr[node]
        try:
            oif = ipr.route("get", dst=dst)[0].get("RTA_OIF")
        except Exception:  # no route (unreachable) or the namespace is going away
            return None
        if oif is None:
            return None
        names = self._names[node]
        if oif not in names:
            with contextlib.suppress(Exception):
                names.clear()
                names.update({lk["index"]: lk.get("IFLA_IFNAME") for lk in ipr.get_links()})
        return names.get(oif)

    def close(self) -> None:
        for ipr in self._ipr.values():
            with contextlib.suppress(Exception):
                ipr.close()
        self._ipr.clear()
