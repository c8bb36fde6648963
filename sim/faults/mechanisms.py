"""How a fault is made real in a node's namespace, and undone: kernel, nftables or userspace.

Each helper applies one mechanism and returns the undo steps (plain dicts, stored in the lab's
state file so ``cnilab fault clear`` works from another shell or after a crash). Commands enter the
node's namespace with ``nsenter --net=PATH`` from the host, so the netns and container backends
share this code. Nothing here knows fault kinds: the kinds (cnilab.sim.faults.kinds) choose mechanisms.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Literal, Protocol

from cnilab.sim.runtime.files import log_tail
from cnilab.sim.runtime.process import ProcessRecord, spawn
from pydantic import BaseModel

Mechanism = Literal["kernel", "nftables", "userspace", "none"]
"""Where a fault lives: a kernel feature (link state, tc), an nftables table, a helper process, or
nowhere in the dataplane (state the mock API reads, e.g. a light level above the optic's floor)."""

Undo = dict[str, Any]


class FaultError(ValueError):
    """A fault request that cannot be honoured, phrased for the person who asked."""


class Place(BaseModel):
    """Where a fault is applied: a node's interface (always on the side the lab owns)."""

    target: str
    node: str
    iface: str
    peer_node: str
    peer_iface: str
    interconnect: str | None = None


class Site(Protocol):
    """What a mechanism needs from the running lab (cnilab.sim.faults.apply builds it from a LabHandle)."""

    @property
    def lab(self) -> str: ...

    @property
    def state_dir(self) -> Path: ...

    def netns_path(self, node: str) -> str: ...


class Applied(BaseModel):
    """One place's fault: which mechanism, the sentence ``status`` shows, and how to undo it."""

    mechanism: Mechanism
    text: str
    undo: list[Undo] = []


def ns(path: str, *argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise FaultError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@functools.cache
def netem_available() -> bool:
    """Whether the kernel has sch_netem (tried once, in a throw-away namespace)."""
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && tc qdisc add dev lo root netem delay 1ms"],
        capture_output=True, text=True)
    return probe.returncode == 0


def link_down(path: str, iface: str) -> list[Undo]:
    ns(path, "ip", "link", "set", "dev", iface, "down")
    return [{"type": "link-up", "ns": path, "iface": iface}]


def nft_filter(path: str, kind: str, iface: str, rule: str) -> list[Undo]:
    """A netdev table filtering ``iface`` both ways (ingress and egress hooks) with ``rule``."""
    table = f"cnilab_{kind.replace('-', '_')}_{iface.replace('.', '_').replace('-', '_')}"
    ns(path, "nft", "-f", "-", input=(
        f"table netdev {table} {{\n"
        f"  chain in {{ type filter hook ingress device \"{iface}\" priority -10; {rule}; }}\n"
        f"  chain out {{ type filter hook egress device \"{iface}\" priority -10; {rule}; }}\n"
        "}\n"))
    return [{"type": "nft-delete", "ns": path, "table": f"netdev {table}"}]


def tc_root(path: str, iface: str, *qdisc: str) -> list[Undo]:
    ns(path, "tc", "qdisc", "replace", "dev", iface, "root", *qdisc)
    return [{"type": "tc-del", "ns": path, "iface": iface}]


def helper(site: Site, place: Place, name: str, module: str, *args: str, ready: str | None = None) -> list[Undo]:
    """Start ``python -m module args`` inside the node's namespace, owned by the lab."""
    path = site.netns_path(place.node)
    proc = spawn(f"{name}-{place.iface}", place.node,
                 ["nsenter", f"--net={path}", sys.executable, "-m", module, *args],
                 log=site.state_dir / f"{name}-{place.iface}.log")
    if ready is not None:
        _wait_for_line(proc, ready)
    return [{"type": "stop", "process": proc.model_dump()}]


def nfqueue_num(lab: str, iface: str) -> int:
    return 1000 + zlib.crc32(f"{lab}/{iface}".encode()) % 60000


def nfqueue_both_ways(path: str, iface: str, queue: int) -> list[Undo]:
    """Send the interface's IP traffic both ways through NFQUEUE ``queue`` (bypassed if nobody listens)."""
    rules = [["-t", "mangle", "-A", "PREROUTING", "-i", iface], ["-t", "mangle", "-A", "POSTROUTING", "-o", iface]]
    target = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
    undo: list[Undo] = []
    for tool in ("iptables", "ip6tables"):
        for r in rules:
            ns(path, tool, *r, *target)
            undo.insert(0, {"type": "ipt-del", "ns": path, "tool": tool, "args": [*r[:2], "-D", *r[3:], *target]})
    return undo


def _wait_for_line(proc: ProcessRecord, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.log and text in Path(proc.log).read_text(errors="replace"):
            return
        if not proc.alive():
            break
        time.sleep(0.05)
    proc.stop()
    raise FaultError(f"{proc.name} did not start: {log_tail(proc.log, 5)}")


def undo(steps: list[Undo]) -> None:
    """Run undo steps, tolerating what is already gone (a crashed lab, a removed namespace)."""
    for st in steps:
        t = st["type"]
        try:
            if t == "link-up":
                ns(st["ns"], "ip", "link", "set", "dev", st["iface"], "up", check=False)
            elif t == "nft-delete":
                ns(st["ns"], "nft", "delete", "table", *st["table"].split(), check=False)
            elif t == "tc-del":
                ns(st["ns"], "tc", "qdisc", "del", "dev", st["iface"], "root", check=False)
            elif t == "ipt-del":
                ns(st["ns"], st["tool"], *st["args"], check=False)
            elif t == "stop":
                ProcessRecord.model_validate(st["process"]).stop()
        except (OSError, FaultError):
            continue
