"""Apply and clear faults on a running lab, choosing the kernel mechanism when there is one.

Every fault is recorded in the lab's state file with *how* it is implemented (``mechanism``) and
the exact steps that undo it, so ``cnilab fault clear`` works from another shell, after a crash,
and from the dashboard. Commands enter the node's namespace with ``nsenter --net=PATH`` from the
host, so the same code serves the netns and the container backends.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, Protocol

import sim.state as lab_state
from sim.faults.spec import FaultError, FaultSpec, Place, parse_fault, resolve_target
from sim.runtime.process import ProcessRecord, spawn
from sim.state import FaultRecord, LabState
from sim.topology.plan import LabPlan


class LabLike(Protocol):
    """What fault injection needs from a lab (sim.lab.lab.Lab satisfies it)."""

    @property
    def state(self) -> LabState: ...

    @property
    def plan(self) -> LabPlan: ...

    def netns_path(self, node: str) -> str: ...

    def ifname(self, node: str, l3_name: str) -> str: ...


def _ns(path: str, *argv: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
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


def _table(kind: str, iface: str) -> str:
    return f"cnilab_{kind.replace('-', '_')}_{iface.replace('.', '_').replace('-', '_')}"


def _nft_filter(path: str, kind: str, iface: str, rule: str) -> dict[str, Any]:
    table = _table(kind, iface)
    _ns(path, "nft", "-f", "-", input=(
        f"table netdev {table} {{\n"
        f"  chain in {{ type filter hook ingress device \"{iface}\" priority -10; {rule}; }}\n"
        f"  chain out {{ type filter hook egress device \"{iface}\" priority -10; {rule}; }}\n"
        "}\n"))
    return {"type": "nft-delete", "ns": path, "table": f"netdev {table}"}


def _queue_num(lab: str, iface: str) -> int:
    return 1000 + zlib.crc32(f"{lab}/{iface}".encode()) % 60000


def _apply_place(lab: LabLike, place: Place, spec: FaultSpec) -> tuple[str, list[dict[str, Any]]]:
    """Apply ``spec`` at one place; return (mechanism text, undo steps)."""
    path = lab.netns_path(place.node)
    where = f"{place.node}:{place.iface}"
    k = spec.kind
    if k in ("down", "swap") or (k == "light" and not spec.carrier_up):
        _ns(path, "ip", "link", "set", "dev", place.iface, "down")
        why = {"down": "carrier down", "swap": "RX/TX swapped: no link",
               "light": "light below the optic's floor: no link"}[k]
        return (f"{why} (ip link set {where} down; the peer sees NO-CARRIER)",
                [{"type": "link-up", "ns": path, "iface": place.iface}])
    if k == "light":
        return (f"light {spec.value_text} at {where}: above the floor, no dataplane effect (API state only)", [])
    if k == "blackhole":
        return (f"nftables netdev ingress+egress drop on {where}",
                [_nft_filter(path, k, place.iface, "drop")])
    if k == "drop-bfd":
        return (f"nftables netdev drop udp 3784 on {where}",
                [_nft_filter(path, k, place.iface, "udp dport { 3784, 4784 } drop")])
    if k == "drop-bgp":
        return (f"nftables netdev drop tcp 179 on {where}",
                [_nft_filter(path, k, place.iface, "tcp dport 179 drop; tcp sport 179 drop")])
    if k == "loss":
        if netem_available():
            _ns(path, "tc", "qdisc", "replace", "dev", place.iface, "root", "netem", "loss", f"{spec.loss_pct}%")
            return (f"kernel netem loss {spec.loss_pct:g}% on {where} egress",
                    [{"type": "tc-del", "ns": path, "iface": place.iface}])
        # nftables numgen: per-packet uniform draw; applied in both directions, so each direction
        # loses loss_pct independently (as netem on both ends would). IP packets only: losing ARP
        # too would add neighbour-resolution outages on top, and the loss asked for would not be
        # the loss measured.
        rule = f"meta protocol {{ ip, ip6 }} numgen random mod 10000 < {int(spec.loss_pct * 100)} drop"
        return (f"nftables numgen random {spec.loss_pct:g}% of IP packets both directions on {where} "
                "(no netem in this kernel)", [_nft_filter(path, k, place.iface, rule)])
    if k == "delay":
        if netem_available():
            args = ["delay", f"{spec.delay_ms}ms"] + ([f"{spec.jitter_ms}ms"] if spec.jitter_ms else [])
            _ns(path, "tc", "qdisc", "replace", "dev", place.iface, "root", "netem", *args)
            peer = lab.netns_path(place.peer_node)
            _ns(peer, "tc", "qdisc", "replace", "dev", place.peer_iface, "root", "netem", *args)
            return (f"kernel netem delay {spec.value_text} on both ends of {where}",
                    [{"type": "tc-del", "ns": path, "iface": place.iface},
                     {"type": "tc-del", "ns": peer, "iface": place.peer_iface}])
        q = _queue_num(lab.state.lab, place.iface)
        rules = [["-t", "mangle", "-A", "PREROUTING", "-i", place.iface],
                 ["-t", "mangle", "-A", "POSTROUTING", "-o", place.iface]]
        undo: list[dict[str, Any]] = []
        proc = spawn(f"delay-{place.iface}", place.node,
                     ["nsenter", f"--net={path}", sys.executable, "-m", "sim.faults.delayd", "--queue", str(q),
                      "--delay-ms", str(spec.delay_ms), "--jitter-ms", str(spec.jitter_ms or 0)],
                     log=lab.state.dir / f"delay-{place.iface}.log")
        undo.append({"type": "stop", "process": proc.model_dump()})
        _wait_for_line(proc, "bound to NFQUEUE")  # until bound, --queue-bypass lets packets through undelayed
        for tool in ("iptables", "ip6tables"):
            for r in rules:
                target = ["-j", "NFQUEUE", "--queue-num", str(q), "--queue-bypass"]
                _ns(path, tool, *r, *target)
                undo.insert(0, {"type": "ipt-del", "ns": path, "tool": tool, "args": [*r[:2], "-D", *r[3:], *target]})
        return (f"userspace delay {spec.value_text} each direction on {where} (NFQUEUE {q}; no netem in this kernel)",
                undo)
    if k == "rate":
        burst = max(1600, spec.rate_kbit * 1000 // 8 // 50)  # ~20 ms of traffic
        steps = []
        for node, iface in ((place.node, place.iface), (place.peer_node, place.peer_iface)):
            p = lab.netns_path(node)
            _ns(p, "tc", "qdisc", "replace", "dev", iface, "root", "tbf", "rate", f"{spec.rate_kbit}kbit",
                "burst", str(burst), "latency", "50ms")
            steps.append({"type": "tc-del", "ns": p, "iface": iface})
        return (f"kernel tc tbf {spec.rate_kbit}kbit on both ends of {where}", steps)
    if k == "flap":
        proc = spawn(f"flap-{place.iface}", place.node,
                     ["nsenter", f"--net={path}", sys.executable, "-m", "sim.faults.flapd", "--iface", place.iface,
                      "--period", str(spec.period_s)], log=lab.state.dir / f"flap-{place.iface}.log")
        return (f"userspace flapper: {where} down/up every {spec.period_s:g}s",
                [{"type": "stop", "process": proc.model_dump()}])
    raise FaultError(f"fault {k} is not implemented")  # pragma: no cover - KINDS is exhaustive


def _wait_for_line(proc: ProcessRecord, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.log and text in Path(proc.log).read_text(errors="replace"):
            return
        if not proc.alive():
            break
        time.sleep(0.05)
    tail = Path(proc.log).read_text(errors="replace")[-400:] if proc.log else ""
    proc.stop()
    raise FaultError(f"{proc.name} did not start: {tail.strip() or 'no output'}")


def _undo(steps: list[dict[str, Any]]) -> None:
    """Run undo steps, tolerating what is already gone (a crashed lab, a removed namespace)."""
    for st in steps:
        t = st["type"]
        try:
            if t == "link-up":
                _ns(st["ns"], "ip", "link", "set", "dev", st["iface"], "up", check=False)
            elif t == "nft-delete":
                _ns(st["ns"], "nft", "delete", "table", *st["table"].split(), check=False)
            elif t == "tc-del":
                _ns(st["ns"], "tc", "qdisc", "del", "dev", st["iface"], "root", check=False)
            elif t == "ipt-del":
                _ns(st["ns"], st["tool"], *st["args"], check=False)
            elif t == "stop":
                ProcessRecord.model_validate(st["process"]).stop()
        except (OSError, FaultError):
            continue


def apply_fault(lab: LabLike, target: str, kind: str, value: str | float | None = None) -> FaultRecord:
    """Inject a fault now; a fault of the same kind on the same target is replaced."""
    spec = parse_fault(kind, value)
    places = [p.model_copy(update={"iface": lab.ifname(p.node, p.iface),
                                   "peer_iface": lab.ifname(p.peer_node, p.peer_iface)})
              for p in resolve_target(lab.plan, target)]
    clear_faults(lab, target, kind=kind)
    mechanisms, undo = [], []
    try:
        for place in places:
            mech, steps = _apply_place(lab, place, spec)
            mechanisms.append(mech)
            undo.extend(steps)
    except Exception:
        _undo(undo)
        raise
    rec = FaultRecord(target=target, kind=kind, value=spec.value_text, mechanism="; ".join(mechanisms),
                      undo={"steps": undo, "interconnects": sorted({p.interconnect for p in places if p.interconnect}),
                            "carrier_up": spec.carrier_up, "light_dbm": spec.light_dbm})
    with lab_state.update(lab.state.lab) as st:
        st.faults.append(rec)
    return rec


def clear_faults(lab: LabLike, target: str | None = None, kind: str | None = None) -> list[FaultRecord]:
    """Clear faults on ``target`` (all targets when None), optionally only of ``kind``."""
    with lab_state.update(lab.state.lab) as st:
        gone = [f for f in st.faults if (target is None or f.target == target) and (kind is None or f.kind == kind)]
        st.faults = [f for f in st.faults if f not in gone]
    for rec in reversed(gone):
        _undo(rec.undo.get("steps", []))
    return gone


def active_faults(lab_name: str) -> list[FaultRecord]:
    return LabState.load(lab_name).faults
