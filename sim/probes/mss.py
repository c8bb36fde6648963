"""MSS probe: real TCP handshakes across the lab, with the MSS option read off the wire.

A TCP connection from the internet host to the origin (and back) is opened by the kernels of the
two hosts, so the SYN carries the MSS a real client would send (1460 on a 1500-byte interface).
Sockets on both hosts capture the SYN and the SYN-ACK as they arrive, which shows exactly what the
customer router did to the MSS in each direction.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from cnilab.sim.facts import load_facts
from cnilab.sim.handle import LabHandle
from cnilab.sim.probes.mtu import first_addr, flush_pmtu
from cnilab.sim.probes.sockets import packet_socket, parse_tcp_frame, socket_in
from cnilab.sim.topology.plan import INTERNET, ORIGIN
from pydantic import BaseModel, Field


class MssResult(BaseModel):
    direction: str
    family: int = 4
    client: str
    server: str
    syn_sent: int | None
    syn_arrived: int | None
    synack_sent: int | None
    synack_arrived: int | None
    required: int
    ok: bool
    path_down: bool = False
    advice: str


class MssReport(BaseModel):
    lab: str
    required: int
    required_v6: int | None = None
    results: list[MssResult]
    fix: dict[str, str]
    ok: bool
    provenance: str = Field(default="", description="Who installed the clamp under test: your config or cnilab")
    diagnosis: list[str] = Field(default_factory=list,
                                 description="What is wrong with your declared clamp (or its absence), by name")


def fix_lines(required: int) -> dict[str, str]:
    """The exact lines that clamp MSS to ``required`` on common customer routers."""
    from cnilab.sim.routers.mss import mss_fix_hint

    return mss_fix_hint(required)


def _advice(arrived: int | None, required: int, family: int = 4) -> str:
    if arrived is None:
        return ("the path is down: no SYN/SYN-ACK crossed it (no MSS verdict; fix reachability first: "
                "`cnilab status`, `cnilab bgp`)")
    if arrived == required:
        return f"clamped to {required}, as required"
    if arrived < required:
        return f"clamped to {arrived}, below the {required} needed: works, but wastes payload"
    mistake = next((m for m in load_facts().mss_mistakes if m.value == arrived), None) if family == 4 else None
    if mistake:
        return f"MSS {arrived} is too large: {mistake.why}"
    return f"MSS {arrived} is too large: the customer router must clamp to {required}"


def _capture(sock: socket.socket, port: int, stop: threading.Event, seen: dict[str, int | None]) -> None:
    sock.setblocking(False)
    while not stop.is_set():
        r, _, _ = select.select([sock], [], [], 0.05)
        if not r:
            continue
        with contextlib.suppress(BlockingIOError):
            while True:
                frame, addr = sock.recvfrom(65535)
                tcp = parse_tcp_frame(frame)
                if tcp is None:
                    continue
                outgoing = addr[2] == socket.PACKET_OUTGOING
                if tcp.syn and tcp.dport == port:
                    seen["syn_out" if outgoing else "syn_in"] = tcp.mss
                elif tcp.synack and tcp.sport == port:
                    seen["synack_out" if outgoing else "synack_in"] = tcp.mss


def handshake(lab: LabHandle, client: str, server: str, server_addr: str,
              timeout: float = 3.0) -> dict[str, int | None]:
    """Open one TCP connection client -> server_addr; return the MSS seen at each end."""
    cns, sns = lab.netns_path(client), lab.netns_path(server)
    # A PMTU learned earlier lowers the MSS the hosts themselves offer; start from the interface MTU.
    for ns in (cns, sns):
        flush_pmtu(ns)
    fam = socket.AF_INET6 if ":" in server_addr else socket.AF_INET
    listener = socket_in(sns, fam, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_addr, 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    # the hosts' one interface: eth0 in a cnilab plan, eth1 in a containerlab export's plan
    cap_c = packet_socket(cns, lab.plan.node(client).interfaces[0].name)
    cap_s = packet_socket(sns, lab.plan.node(server).interfaces[0].name)
    stop = threading.Event()
    seen_c: dict[str, int | None] = {}
    seen_s: dict[str, int | None] = {}
    threads = [threading.Thread(target=_capture, args=(c, port, stop, d), daemon=True)
               for c, d in ((cap_c, seen_c), (cap_s, seen_s))]
    for t in threads:
        t.start()
    time.sleep(0.05)
    conn = socket_in(cns, fam, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        with contextlib.suppress(OSError):
            conn.connect((server_addr, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not ("syn_in" in seen_s and "synack_in" in seen_c):
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for s in (conn, listener, cap_c, cap_s):
            s.close()
    return {"syn_sent": seen_c.get("syn_out"), "syn_arrived": seen_s.get("syn_in"),
            "synack_sent": seen_s.get("synack_out"), "synack_arrived": seen_c.get("synack_in")}


def probe_mss(lab: LabHandle) -> MssReport:
    """Handshakes both ways over IPv4, and over IPv6 when both hosts have it (required MSS - 20).

    A direction where no SYN crossed is reported as a down path, not as a clamp failure: an MSS
    fix printed for a path that carries nothing would send the engineer after the wrong problem.
    """
    from cnilab.sim.dataplane.customer import clamp_diagnosis, clamp_provenance

    plan = lab.plan
    required = plan.mss_required
    h = load_facts().headers
    req6 = required - (h["ipv6"].bytes - h["ipv4"].bytes)
    fams = [4] + ([6] if first_addr(plan, ORIGIN, 6) and first_addr(plan, INTERNET, 6) else [])
    results = []
    for fam in fams:
        need = required if fam == 4 else req6
        for client, server in ((INTERNET, ORIGIN), (ORIGIN, INTERNET)):
            seen = handshake(lab, client, server, first_addr(plan, server, fam) or "")
            # The customer router must clamp what crosses it in both directions: the SYN of the
            # direction under test, and the SYN-ACK coming back.
            worst = max((v for v in (seen["syn_arrived"], seen["synack_arrived"]) if v is not None), default=None)
            down = seen["syn_arrived"] is None
            ok = not down and seen["synack_arrived"] is not None and worst is not None and worst <= need
            results.append(MssResult(direction=f"{client}->{server}" + (" (IPv6)" if fam == 6 else ""), family=fam,
                                     client=client, server=server, required=need, ok=ok, path_down=down,
                                     advice=_advice(None if down else worst, need, fam), **seen))
    ok = all(r.ok for r in results)
    clamp_wrong = any(not r.ok and not r.path_down for r in results)
    installed = lab.state.extra.get("customer_router", {}).get("mss_clamp")
    return MssReport(lab=lab.state.lab, required=required, required_v6=req6 if 6 in fams else None, results=results,
                     fix=fix_lines(required) if clamp_wrong else {}, ok=ok,
                     provenance=clamp_provenance(plan, installed).text,
                     diagnosis=clamp_diagnosis(plan, required) if clamp_wrong else [])
