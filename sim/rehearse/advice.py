"""Turn what the lab observed into lines an engineer can act on during the call.

Each function reads facts (the edge's NOTIFICATION, the import policy's reasons, the probes' fix
lines) and says *what to change and where*. The text quotes the edge rather than paraphrasing it,
so the rehearsal teaches the same words the engineer will read on Cloudflare's side.
"""

from __future__ import annotations

from typing import Any

from sim.edge.control import RejectedRoute, SessionInfo
from sim.facts import load_facts


class StepFailed(Exception):
    """A checklist step failed: ``detail`` says what was seen, ``advice`` what to change."""

    def __init__(self, detail: str, advice: list[str] | None = None, checks: list[str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.advice = advice or []
        self.checks = checks or []


def bgp_advice(sessions: list[SessionInfo], customer: list[dict[str, Any]], expected_asn: int,
               asn_source: str) -> list[str]:
    """Why sessions are not Established, from both ends; ``asn_source`` names where the ASN is on file."""
    cf_asn = load_facts().cloudflare_asn
    out: list[str] = []
    by_peer = {str(c.get("peer")): c for c in customer}
    for s in sessions:
        if s.up:
            continue
        cust = by_peer.get(s.local, {})
        note = s.last_notification
        if note is not None:
            who = "Cloudflare sent" if note.direction == "sent" else "your router sent"
            out.append(f"{s.key}: {who} NOTIFICATION {note.code}/{note.subcode} {note.name}"
                       + (f" ({note.data})" if note.data else "") + (f": {s.last_error}" if s.last_error else ""))
        elif s.last_error:
            out.append(f"{s.key}: edge says: {s.last_error}")
        else:
            out.append(f"{s.key}: {s.state} at the edge (no OPEN received: check the /31 addressing, the MD5 key "
                       "and that your router connects to Cloudflare's address, which waits passively)")
        local_as = cust.get("local_as")
        if note is not None and note.code == 2 and note.subcode == 2 and note.direction == "sent":
            sent = f"AS{local_as}" if local_as else "another AS"
            out.append(f"{s.key}: your router opens as {sent}, but Cloudflare has AS{expected_asn} on file "
                       f"({asn_source}): set your ASN to {expected_asn} (FRR `router bgp {expected_asn}`, BIRD "
                       f"`local as {expected_asn};`) or correct {asn_source}; keep Cloudflare's side as "
                       f"`neighbor {s.local} remote-as {cf_asn}`")
        remote = cust.get("remote_as")
        if remote not in (None, cf_asn):
            out.append(f"{s.key}: your router expects AS{remote} for {s.local}; Cloudflare is AS{cf_asn}: "
                       f"set `neighbor {s.local} remote-as {cf_asn}` (BIRD `neighbor {s.local} as {cf_asn};`)")
        if s.md5 and not note and s.state in ("Idle", "Active", "Connect"):
            out.append(f"{s.key}: Cloudflare uses a TCP MD5 key on this session: check `neighbor {s.local} password` "
                       "(BIRD `password`) matches bgp.md5_key exactly")
    return list(dict.fromkeys(out))


def rejected_advice(rejected: dict[str, list[RejectedRoute]], allowed: list[str]) -> list[str]:
    """One line per refused prefix quoting the import policy, and the export policy fix."""
    out = []
    for key, routes in rejected.items():
        for r in routes:
            out.append(f"{key}: Cloudflare refused {r.prefix}: {r.reason} (rule {r.rule})")
    if out:
        out.append(f"announce only your allow-listed prefixes ({', '.join(allowed)}): remove the others from the "
                   "export policy toward Cloudflare (FRR prefix-list ... out without `le`, and their `network` "
                   "lines; BIRD the export filter)")
    return out


def bfd_advice(peers: list[str], tx_ms: int, mult: int) -> list[str]:
    return [f"Cloudflare runs BFD {tx_ms} ms x {mult} on this interconnect and your router answers on none of "
            f"{', '.join(peers)}: FRR `bfd` + `neighbor <cf-address> bfd` (or a `bfd profile`), BIRD "
            "`protocol bfd { interface \"*\" { ... }; }` and `bfd on;` in each BGP protocol. Without it a silent "
            "failure takes the BGP hold time to detect"]


def mss_advice(report: Any, plan: Any) -> list[str]:
    out = list(getattr(report, "diagnosis", []))
    out += list(dict.fromkeys(r.advice for r in report.results if not r.ok))
    ifaces = list(dict.fromkeys([t.declared.name if t.declared else t.cust_ifname for t in plan.tunnels]
                                + [s.cust_iface for s in plan.sessions]))
    out.append(f"clamp TCP MSS to {report.required} on SYNs through the interfaces toward Cloudflare "
               f"(IF below = {', '.join(ifaces)}):")
    out += [f"  {name}: {line}" for name, line in report.fix.items()]
    return out


def mtu_advice(report: Any) -> list[str]:
    return [f"{r.direction}: {r.diagnosis}" for r in report.results if not r.ok]
