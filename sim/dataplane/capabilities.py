"""What this machine's kernel and userland can really do, and what the lab does instead (``cnilab doctor``).

Every feature is tried for real in a throw-away namespace (create the device, add the qdisc, set
the socket option) rather than inferred from module lists: this kernel has no /proc/modules and
no /lib/modules at all, and a missing module only shows up when you ask for the device. Nothing is
cached: a module loaded a minute ago must show up on the next run.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from cnilab.sim.facts import router_kinds
from cnilab.sim.runtime import proc
from pydantic import BaseModel, Field
from pyroute2 import IPRoute, netns

FALLBACKS: dict[str, str] = {
    "gre": "userspace GRE endpoint (TUN device + raw IPPROTO_GRE socket)",
    "fou": "Magic Transit backhaul modelled as a link with the backhaul's MTU",
    "netem": "loss with nftables numgen, delay with a userspace delay process",
    "8021q": "not emulated: addresses on the parent interface, NAME.VLAN as an altname",
    "tcp_md5": "none: BGP sessions with an MD5 key cannot be rehearsed",
    "tun": "none: without TUN (and without kernel GRE) v1 tunnels cannot be built",
    "nftables": "iptables where possible; faults that need nftables are refused",
    "iptables_tcpmss": "nftables 'tcp option maxseg size set'",
    "tc_tbf": "rate limits refused",
    "tc_htb": "rate limits use tbf",
}

BINARIES: dict[str, list[str]] = {
    "ip": ["ip"],
    "tc": ["tc"],
    # every router kind's daemons, from the registry's data (sim/data/router-kinds.yaml)
    **{f"{kind} {Path(b).name}": [b] for kind, info in router_kinds().items() for b in info.binaries},
    "exabgp": [str(Path(sys.executable).parent / "exabgp"), "exabgp"],
    "podman": ["podman"],
    "iperf3": ["iperf3"],
    "nft": ["nft"],
    "iptables": ["iptables"],
    "tcpdump": ["tcpdump"],
    "gcc": ["gcc"],
}


class Feature(BaseModel):
    name: str
    ok: bool
    detail: str = Field(description="What was tried and what the system said")
    fallback: str | None = Field(default=None, description="What the lab does instead when ok is false")


class Binary(BaseModel):
    name: str
    path: str | None
    ok: bool


class DoctorReport(BaseModel):
    """Stable ``cnilab doctor --json`` shape: {kernel, root, features[], binaries[], lab_ready}."""

    kernel: str
    root: bool
    features: list[Feature]
    binaries: list[Binary]
    lab_ready: bool = Field(description="The netns backend can build every shipped topology here")

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)


def _run(argv: list[str]) -> tuple[bool, str]:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    if res.returncode == 0:
        return True, "ok: " + " ".join(argv[argv.index(next(a for a in argv if a in ("fou", "tuntap", "qdisc",
                                                                                   "nft", "iptables"))):][:4])
    out = (res.stderr or res.stdout).strip().splitlines()
    return False, (out[-1] if out else f"exit {res.returncode}")


def _netlink(fn: Callable[[IPRoute], object], ns: str) -> tuple[bool, str]:
    try:
        with IPRoute(netns=ns) as ipr:
            fn(ipr)
    except Exception as exc:  # the error text is the answer we report
        return False, f"netlink: {exc.args[-1] if exc.args else exc}"
    return True, "ok"


def tcp_md5_supported() -> tuple[bool, str]:
    """setsockopt(TCP_MD5SIG) with a key for 127.0.0.1; ENOPROTOOPT/ENOENT means no CONFIG_TCP_MD5SIG."""
    tcp_md5sig = getattr(socket, "TCP_MD5SIG", 14)
    addr = struct.pack("=HH4s", socket.AF_INET, 0, socket.inet_aton("127.0.0.1")).ljust(128, b"\0")
    key = b"cnilab"
    opt = addr + struct.pack("=BBHI", 0, 0, len(key), 0) + key.ljust(80, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.setsockopt(socket.IPPROTO_TCP, tcp_md5sig, opt)
        except OSError as exc:
            return False, f"setsockopt(TCP_MD5SIG): {exc.strerror}"
    return True, "setsockopt(TCP_MD5SIG) accepted"


@contextlib.contextmanager
def _scratch_netns() -> Iterator[str]:
    # Not named cnilab-*: `down --all` running meanwhile must not mistake it for an orphan.
    ns = f"cnidoctor-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    netns.create(ns)
    try:
        yield ns
    finally:
        with contextlib.suppress(OSError):
            netns.remove(ns)


def _is_root() -> bool:
    try:
        caps = proc.effective_caps()
    except (OSError, StopIteration, ValueError):
        return os.geteuid() == 0
    return bool(caps >> 12 & 1 and caps >> 21 & 1)


def _probe_in(ns: str) -> dict[str, tuple[bool, str]]:
    r: dict[str, tuple[bool, str]] = {"netns": (True, f"created and removed namespace {ns}")}
    r["veth"] = _netlink(lambda i: i.link("add", ifname="dv0", kind="veth", peer={"ifname": "dv1"}), ns)
    _netlink(lambda i: [i.link("set", index=x, state="up") for x in i.link_lookup(ifname="dv0")], ns)
    r["gre"] = _netlink(lambda i: i.link("add", ifname="dgre0", kind="gre", gre_local="192.0.2.1",
                                         gre_remote="192.0.2.2"), ns)
    r["8021q"] = _netlink(lambda i: i.link("add", ifname="dv0.7", kind="vlan",
                                           link=i.link_lookup(ifname="dv0")[0], vlan_id=7), ns)
    r["fou"] = _run(["ip", "-n", ns, "fou", "add", "port", "5555", "ipproto", "4"])
    r["tun"] = _run(["ip", "-n", ns, "tuntap", "add", "dev", "dtun0", "mode", "tun"])
    tc = ["tc", "-n", ns, "qdisc"]
    r["netem"] = _run([*tc, "add", "dev", "dv0", "root", "netem", "delay", "1ms"])
    _run([*tc, "del", "dev", "dv0", "root"])
    r["tc_tbf"] = _run([*tc, "add", "dev", "dv0", "root", "tbf", "rate", "10mbit", "burst", "32k", "latency", "50ms"])
    _run([*tc, "del", "dev", "dv0", "root"])
    r["tc_htb"] = _run([*tc, "add", "dev", "dv0", "root", "handle", "1:", "htb"])
    r["nftables"] = _run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "cnidoctor"])
    r["iptables_tcpmss"] = _run(["ip", "netns", "exec", ns, "iptables", "-t", "mangle", "-A", "POSTROUTING",
                                 "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--set-mss", "1400"])
    return r


def probe_features() -> list[Feature]:
    """Try each feature in a scratch namespace; always removes it."""
    results: dict[str, tuple[bool, str]] = {}
    if not _is_root():
        why = "not root: cannot create a namespace to test in"
        names = ["netns", "veth", "gre", "fou", "8021q", "tun", "netem", "tc_tbf", "tc_htb", "nftables",
                 "iptables_tcpmss"]
        results = dict.fromkeys(names, (False, why))
    else:
        try:
            with _scratch_netns() as ns:
                results = _probe_in(ns)
        except OSError as exc:
            results["netns"] = (False, f"cannot create a namespace: {exc}")
    results["tcp_md5"] = tcp_md5_supported()
    order = ["netns", "veth", "gre", "fou", "8021q", "tun", "netem", "tc_tbf", "tc_htb", "nftables",
             "iptables_tcpmss", "tcp_md5"]
    return [Feature(name=n, ok=results[n][0], detail=results[n][1] if results[n][1] else "ok",
                    fallback=None if results[n][0] else FALLBACKS.get(n)) for n in order if n in results]


def find_binaries() -> list[Binary]:
    out = []
    for name, candidates in BINARIES.items():
        path = next((p for p in (shutil.which(c) for c in candidates) if p), None)
        out.append(Binary(name=name, path=path, ok=path is not None))
    return out


def doctor() -> DoctorReport:
    features = probe_features()
    ok = {f.name: f.ok for f in features}
    ready = ok.get("netns", False) and ok.get("veth", False) and (ok.get("gre", False) or ok.get("tun", False))
    return DoctorReport(kernel=platform.release(), root=_is_root(), features=features,
                        binaries=find_binaries(), lab_ready=ready)
