"""Where a router sends a destination, read with ``ip route get`` semantics over netlink."""

from __future__ import annotations

import contextlib
import threading
from typing import Any


class RouteReader:
    """``ip route get`` in-process: one netlink socket per node, opened once and reused.

    An observer asks both routers where they send traffic every 50 ms; forking ``ip`` twice per
    poll was itself a large part of the observation latency on a loaded 2-core host.

    A pyroute2 socket runs its netlink exchange on the event loop of the thread that opened it, so
    each thread that asks (the observer's poller, a caller's ``refresh``) gets its own socket per
    node; the first ones are opened here, so a missing namespace is refused at once."""

    def __init__(self, netns_paths: dict[str, str]) -> None:
        self._paths = dict(netns_paths)
        self._ipr: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()
        self._names: dict[str, dict[int, str]] = {node: {} for node in netns_paths}
        try:
            for node in netns_paths:
                self._socket(node)
        except Exception:
            self.close()
            raise

    def _socket(self, node: str) -> Any:
        key = (threading.get_ident(), node)
        ipr = self._ipr.get(key)
        if ipr is None:
            from pyroute2 import IPRoute

            ipr = IPRoute(netns=self._paths[node], flags=0)  # flags=0: never create a namespace
            with self._lock:
                self._ipr[key] = ipr
        return ipr

    def dev(self, node: str, dst: str) -> str | None:
        """The interface ``node`` sends ``dst`` out of, or None (no route, or the namespace is gone)."""
        try:
            ipr = self._socket(node)
        except Exception:  # the namespace is gone
            return None
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
        with self._lock:
            sockets, self._ipr = list(self._ipr.values()), {}
        for ipr in sockets:
            with contextlib.suppress(Exception):
                ipr.close()
