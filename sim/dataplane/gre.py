"""GRE between the edge (cf) and the customer router: a kernel GRE device where the kernel has one,
a userspace endpoint (TUN + raw IPPROTO_GRE socket) where it does not.

Why two implementations: Cloudflare's v1 dataplane carries customer->CF traffic in GRE, so the lab
must have a tunnel, but GRE is a loadable module that minimal kernels (CI VMs, some container
hosts, the machine cnilab is developed on) do not ship. Both paths produce the same thing in the
node: an interface ``ifname`` with the inner /31, MTU 1476 and packets that really cross as GRE over
the interconnect's /31, so routers, probes and faults never need to know which one is in use.

The userspace endpoint is ``ugre.c`` (compiled on first use, see :mod:`cnilab.sim.dataplane.ugre_build`);
without gcc a pure-Python endpoint (:mod:`cnilab.sim.dataplane.ugre_py`) keeps the lab functional at a
fraction of the speed. :func:`gre_mode` says which one is in use and why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Interface
from pathlib import Path
from typing import Literal

from cnilab.sim.dataplane import ugre_build
from cnilab.sim.runtime.files import log_tail
from cnilab.sim.runtime.process import ProcessRecord
from pyroute2 import IPRoute

GreMode = Literal["auto", "kernel", "userspace"]

IFA_F_NODAD = 0x02
"""No duplicate address detection on a point-to-point inner IPv6 address (usable at once)."""

READY_TIMEOUT = 10.0
"""Seconds to wait for a userspace endpoint's TUN device; it appears in milliseconds normally."""

COUNTER_KEYS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
                "rx_dropped", "tx_dropped")


class GreError(RuntimeError):
    """A GRE tunnel could not be set up; the message names the namespace, interface and cause."""


def kernel_gre_available() -> tuple[bool, str]:
    """Can ``ip link add type gre`` work here? Returns (answer, why).

    As root the answer is a real probe: create a GRE device in a throwaway network namespace
    (``unshare --net``; the namespace and device vanish with the probe process), which also lets
    the kernel autoload ip_gre. Without root, or without ``unshare``, it falls back to looking for
    the module in /sys/module and /lib/modules.
    """
    unshare = shutil.which("unshare")
    ip = shutil.which("ip")
    if os.geteuid() == 0 and unshare and ip:
        proc = subprocess.run([unshare, "--net", ip, "link", "add", "cnilabprobe0", "type", "gre",
                               "local", "192.0.2.1", "remote", "192.0.2.2"],
                              capture_output=True, text=True, timeout=10, check=False)
        if proc.returncode == 0:
            return True, "kernel GRE works (probe created a gre device)"
        return False, f"kernel has no ip_gre module (probe: {proc.stderr.strip() or proc.returncode})"
    if Path("/sys/module/ip_gre").exists():
        return True, "ip_gre module is loaded"
    release = os.uname().release
    moddir = Path("/lib/modules") / release
    for index in ("modules.builtin", "modules.dep"):
        with contextlib.suppress(OSError):
            if "/ip_gre.ko" in (moddir / index).read_text():
                return True, f"ip_gre module is available for kernel {release}"
    return False, f"kernel {release} has no ip_gre module"


def userspace_endpoint() -> tuple[list[str], str]:
    """The command that runs a userspace endpoint (before its arguments), and a description.

    The C endpoint is compiled here if it is not cached yet; only when there is no compiler at all
    does the lab fall back to Python, and a compiler that rejects the file is an error, not a
    silent slowdown.
    """
    if ugre_build.compiler() is None and not ugre_build.binary_path().is_file():
        return [sys.executable, "-m", "cnilab.sim.dataplane.ugre_py"], "pure-Python endpoint (gcc not found; slow)"
    try:
        binary = ugre_build.ensure_binary()
    except ugre_build.BuildError as exc:
        raise GreError(f"cannot build the userspace GRE endpoint: {exc}") from exc
    return [str(binary)], f"C endpoint {binary}"


def _userspace_desc() -> str:
    if ugre_build.compiler() is None and not ugre_build.binary_path().is_file():
        return "pure-Python endpoint (gcc not found; slow)"
    return "C endpoint (ugre.c, TUN + raw GRE socket)"


def gre_mode(requested: GreMode = "auto") -> tuple[str, str]:
    """Decide how GRE is implemented: ("kernel"|"userspace", human reason).

    ``auto`` prefers the kernel; ``kernel`` fails with :class:`GreError` if the kernel cannot;
    ``userspace`` is always honoured (useful to test the endpoint on a kernel that has GRE).
    """
    if requested not in ("auto", "kernel", "userspace"):
        raise GreError(f"gre mode: expected auto, kernel or userspace, got {requested!r}")
    if requested == "userspace":
        return "userspace", f"userspace requested; {_userspace_desc()}"
    ok, why = kernel_gre_available()
    if ok:
        return "kernel", why
    if requested == "kernel":
        raise GreError(f"gre mode kernel requested but {why}; use auto or userspace")
    return "userspace", f"{why}; {_userspace_desc()}"


def _ipr(netns_path: str) -> IPRoute:
    """Netlink socket in ``netns_path``; flags=0 so a wrong path fails instead of creating a netns."""
    if not Path(netns_path).exists():
        raise GreError(f"network namespace {netns_path} does not exist")
    return IPRoute(netns=netns_path, flags=0)


TUN_TXQUEUELEN = 5000
"""TUN queue towards the userspace endpoint. The default 500 overflows under a TCP burst while the
endpoint thread is descheduled (12k drops in 4 s at 1 Gbit/s); 5000 absorbs it (bench_gre.py)."""


def _configure(ipr: IPRoute, index: int, inner: IPv4Interface | None, mtu: int | None, txqlen: int | None = None,
               up: bool = True, inner6: IPv6Interface | None = None) -> None:
    """MTU, inner addresses and link state; ``None`` leaves what the device already has (a tunnel
    declared without ``mtu`` keeps the kernel's choice, one without ``ip addr`` has no address)."""
    opts = ({"mtu": mtu} if mtu else {}) | ({"txqlen": txqlen} if txqlen else {})
    if opts:
        ipr.link("set", index=index, **opts)
    for addr in (inner, inner6):
        if addr is not None:
            ipr.addr("add", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen,
                     **({"flags": IFA_F_NODAD} if addr.version == 6 else {}))
    if up:
        ipr.link("set", index=index, state="up")


def default_mtu(key: int | None = None, outer_mtu: int = 1500) -> int:
    """The MTU Linux gives a GRE device created without ``mtu``: the outer route's MTU minus the
    outer IPv4 header and the GRE header (4 bytes, 8 with a key). The userspace endpoint uses the
    same figure, so an undeclared MTU means the same thing with either implementation."""
    return outer_mtu - 20 - (8 if key is not None else 4)


def _lookup(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def create_kernel_gre(netns_path: str, ifname: str, local: IPv4Address, remote: IPv4Address,
                      inner: IPv4Interface | None, mtu: int | None, *, key: int | None = None, ttl: int = 64,
                      up: bool = True, inner6: IPv6Interface | None = None) -> None:
    """Create a kernel GRE device (RFC 2784; RFC 2890 key only when given; PMTU discovery on) and
    configure it. On any failure the device is removed again, so nothing is left half-built."""
    with _ipr(netns_path) as ipr:
        if _lookup(ipr, ifname) is not None:
            raise GreError(f"{netns_path}: interface {ifname} already exists")
        try:
            if key is None:
                ipr.link("add", ifname=ifname, kind="gre", gre_local=str(local), gre_remote=str(remote),
                         gre_ttl=ttl, gre_pmtudisc=1)
            else:  # iproute2 is the reference for the key flags' encoding; no shell, argv only
                proc = subprocess.run(["nsenter", f"--net={netns_path}", "ip", "link", "add", ifname, "type", "gre",
                                       "local", str(local), "remote", str(remote), "ttl", str(ttl), "key", str(key)],
                                      capture_output=True, text=True, timeout=10, check=False)
                if proc.returncode != 0:
                    raise GreError(f"{netns_path}: ip link add {ifname} type gre ... key {key}: {proc.stderr.strip()}")
            index = _lookup(ipr, ifname)
            if index is None:
                raise GreError(f"{netns_path}: gre device {ifname} vanished after creation")
            _configure(ipr, index, inner, mtu, up=up, inner6=inner6)
        except Exception as exc:
            with contextlib.suppress(Exception):
                index = _lookup(ipr, ifname)
                if index is not None:
                    ipr.link("del", index=index)
            if isinstance(exc, GreError):
                raise
            raise GreError(f"{netns_path}: creating kernel gre {ifname} {local}->{remote} failed: {exc}") from exc


def userspace_args(netns_path: str, ifname: str, local: IPv4Address, remote: IPv4Address,
                   key: int | None = None, ttl: int | None = None) -> list[str]:
    """Arguments shared by the C and the Python endpoint (``--key``/``--ttl``: the C one only)."""
    return (["--netns", netns_path, "--ifname", ifname, "--local", str(local), "--remote", str(remote)]
            + (["--key", str(key)] if key is not None else []) + (["--ttl", str(ttl)] if ttl is not None else []))


def _exited(rec: ProcessRecord) -> bool:
    """True once the endpoint has died (reaping it if it is our child, so it is not a zombie)."""
    with contextlib.suppress(ChildProcessError):
        pid, _ = os.waitpid(rec.pid, os.WNOHANG)
        if pid == rec.pid:
            return True
    return not rec.alive()




def start_userspace_gre(spawn: Callable[[str, list[str]], ProcessRecord], netns_path: str, ifname: str,
                        local: IPv4Address, remote: IPv4Address, inner: IPv4Interface | None, mtu: int | None,
                        log: Path, *, key: int | None = None, ttl: int | None = None, up: bool = True,
                        inner6: IPv6Interface | None = None) -> ProcessRecord:
    """Start a detached userspace GRE endpoint in ``netns_path`` and configure its TUN ``ifname``.

    ``spawn(name, argv)`` must start a detached host process (``cnilab.sim.runtime.process.spawn``
    semantics); the endpoint enters the namespace itself. Returns once ``ifname`` exists and has
    ``inner``, ``mtu`` and link up; on failure the endpoint is stopped and :class:`GreError` says why.
    """
    if len(ifname) > 15:
        raise GreError(f"gre ifname {ifname!r}: longer than 15 characters")
    with _ipr(netns_path) as ipr:
        if _lookup(ipr, ifname) is not None:
            raise GreError(f"{netns_path}: interface {ifname} already exists")
        cmd, _ = userspace_endpoint()
        rec = spawn(f"gre-{ifname}", [*cmd, *userspace_args(netns_path, ifname, local, remote, key, ttl)])
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while (index := _lookup(ipr, ifname)) is None:
                if _exited(rec):
                    raise GreError(f"{netns_path}: userspace gre endpoint for {ifname} exited: {log_tail(log, 5)}")
                if time.monotonic() > deadline:
                    raise GreError(f"{netns_path}: {ifname} did not appear within {READY_TIMEOUT:.0f}s "
                                   f"(endpoint log {log}: {log_tail(log, 5)})")
                time.sleep(0.01)
            _configure(ipr, index, inner, mtu or default_mtu(key), TUN_TXQUEUELEN, up=up, inner6=inner6)
        except BaseException as exc:
            rec.stop()
            if isinstance(exc, GreError):
                raise
            if isinstance(exc, Exception):
                cause = f"endpoint exited: {log_tail(log, 5)}" if _exited(rec) else str(exc)
                raise GreError(f"{netns_path}: configuring userspace gre {ifname} failed: {cause}") from exc
            raise
    return rec


def gre_counters(netns_path: str, ifname: str) -> dict[str, int]:
    """Kernel statistics of the tunnel interface (either kind): rx/tx packets, bytes, errors, drops.

    For a userspace tunnel, ``tx`` is what the kernel handed the endpoint to encapsulate and ``rx``
    what the endpoint decapsulated into the node, so they mean the same as on a kernel GRE device.
    """
    with _ipr(netns_path) as ipr:
        index = _lookup(ipr, ifname)
        if index is None:
            raise GreError(f"{netns_path}: no interface {ifname}")
        msg = ipr.link("get", index=index)[0]
        stats = msg.get_attr("IFLA_STATS64") or msg.get_attr("IFLA_STATS")
    return {k: int(stats[k]) for k in COUNTER_KEYS}
