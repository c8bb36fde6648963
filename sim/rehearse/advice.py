"""Turn what the lab observed into lines an engineer can act on during the call.

Each function reads facts (the edge's NOTIFICATION, the import policy's reasons, the probes' fix
lines) and says *what to change and where*. The text quotes the edge rather than paraphrasing it,
so the rehearsal teaches the same words the engineer will read on Cloudflare's side.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from cnilab.sim.bgp.policy import LEAK_RULES
from cnilab.sim.edge.control import RejectedRoute, SessionInfo
from cnilab.sim.facts import load_facts
from cnilab.sim.probes.mss import MssReport
from cnilab.sim.rehearse.model import Finding
from cnilab.sim.topology.plan import LabPlan


class StepFailed(Exception):
    """A checklist step failed: ``detail`` says what was seen, ``advice`` what to change.

    ``findings`` carry the same content split into cause and fix, one per distinct problem; when
    given, the report prints them instead of ``advice`` so nothing is said twice."""

    def __init__(self, detail: str, advice: list[str] | None = None, checks: list[str] | None = None,
                 findings: list[Finding] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.findings = findings or []
        self.advice = advice if advice is not None else [f.text() for f in self.findings]
        self.checks = checks or []


def _group(findings: list[Finding]) -> list[Finding]:
    """One finding per (check, cause, fix): sessions that fail the same way are named together."""
    out: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.check, f.cause, f.fix)
        if key in out:
            prev = out[key]
            out[key] = prev.model_copy(update={"subject": f"{prev.subject}, {f.subject}"})
        else:
            out[key] = f
    return list(out.values())


def bgp_findings(sessions: list[SessionInfo], customer: list[dict[str, Any]], expected_asn: int,
                 asn_source: str) -> list[Finding]:
    """Why sessions are not Established, from both ends, one finding per distinct cause.

    A NOTIFICATION that names the problem (Bad Peer AS) is explained once with its fix; the edge's
    own wording of it is not repeated next to it (issue 18: findings printed twice)."""
    cf_asn = load_facts().cloudflare_asn
    out: list[Finding] = []
    by_peer = {str(c.get("peer")): c for c in customer}
    for s in sessions:
        if s.up:
            continue
        cust = by_peer.get(s.local, {})
        note = s.last_notification
        local_as = cust.get("local_as")
        remote = cust.get("remote_as")
        if note is not None and (note.code, note.subcode, note.direction) == (2, 2, "sent"):
            sent = f"AS{local_as}" if local_as else _open_asn(s.last_error) or "another AS"
            out.append(Finding(
                severity="fail", check="bgp.bad-peer-as", subject=s.key,
                cause=f"Cloudflare refused your OPEN with NOTIFICATION 2/2 Bad Peer AS: your router opens as {sent}, "
                      f"Cloudflare has AS{expected_asn} on file ({asn_source})",
                fix=f"set your ASN to {expected_asn} (FRR `router bgp {expected_asn}`, BIRD `local as {expected_asn};`)"
                    f" or correct {asn_source}; keep `remote-as {cf_asn}` on your Cloudflare neighbors"))
            continue
        if note is not None:
            who = "Cloudflare sent" if note.direction == "sent" else "your router sent"
            cause = (f"{who} NOTIFICATION {note.code}/{note.subcode} {note.name}"
                     + (f" ({note.data})" if note.data else ""))
            why = s.last_error or ""
            fix = why.split("; ", 1)[1] if "; " in why else ""
            if remote not in (None, cf_asn):
                fix = (f"your router expects AS{remote} for {s.local}; Cloudflare is AS{cf_asn}: set "
                       f"`neighbor {s.local} remote-as {cf_asn}` (BIRD `neighbor {s.local} as {cf_asn};`)")
            refused_cf = (note.code, note.subcode, note.direction) == (2, 2, "received")
            out.append(Finding(severity="fail",
                               check="bgp.remote-as" if refused_cf else f"bgp.notification-{note.code}-{note.subcode}",
                               subject=s.key, cause=cause + (f": {why.split('; ', 1)[0]}" if why and not fix else ""),
                               fix=fix))
            continue
        if s.md5_evidence is not None:
            out.append(Finding(
                severity="fail", check="bgp.md5", subject=s.key,
                cause=f"the kernel dropped your router's TCP segments on the MD5 check ({s.md5_evidence.counters}): "
                      + ("a wrong key or none" if s.md5 else "your router signs with a key Cloudflare does not use"),
                fix=("set the TCP MD5 password on your Cloudflare neighbors (FRR `neighbor ADDRESS password`, BIRD "
                     "`password`) to exactly the CNI's bgp.md5_key" if s.md5 else
                     "remove the TCP MD5 password from your Cloudflare neighbors (FRR `neighbor ADDRESS password`, "
                     "BIRD `password`)")))
            continue
        if remote not in (None, cf_asn):
            out.append(Finding(severity="fail", check="bgp.remote-as", subject=s.key,
                               cause=f"your router expects AS{remote} for {s.local}; Cloudflare is AS{cf_asn}",
                               fix=f"set `neighbor {s.local} remote-as {cf_asn}` (BIRD `neighbor {s.local} as "
                                   f"{cf_asn};`)"))
            continue
        cause = f"{s.state} at the edge: {s.last_error}" if s.last_error else f"{s.state} at the edge, no OPEN received"
        fix = ("check the /31 addressing, that your router connects to Cloudflare's address (it waits passively)"
               + (", and the MD5 key" if s.md5 else ""))
        out.append(Finding(severity="fail", check="bgp.no-session", subject=s.key, cause=cause, fix=fix))
    return _group(out)


def _open_asn(text: str | None) -> str | None:
    import re

    m = re.search(r"OPEN from AS (\d+)", text or "")
    return f"AS{m.group(1)}" if m else None


LEAK_FIX = {
    "cloudflare-route": "re-advertises routes it learned from Cloudflare back to Cloudflare",
    "default-route": "sends a default route",
    "connected-link": "announces its connected interconnect link nets",
}


def _net_order(prefix: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(prefix, strict=False)
    return net.version, int(net.network_address), net.prefixlen


def outbound_policy_fix(allowed: list[str], neighbors: list[str] | None = None) -> str:
    """The outbound policy every CNI customer needs, for FRR and BIRD, naming their prefixes."""
    nbrs = neighbors or ["<cloudflare-address>"]
    frr: list[str] = []
    for fam, ip, suffix in ((4, "ip", ""), (6, "ipv6", "6")):
        mine = [p for p in allowed if (":" in p) == (fam == 6)]
        peers = [n for n in nbrs if (":" in n) == (fam == 6) or n.startswith("<")]
        if not mine or not peers:
            continue
        frr += [f"{ip} prefix-list TO-CF{suffix} permit {p}" for p in mine]
        frr += [f"route-map TO-CF{suffix} permit 10", f" match {ip} address prefix-list TO-CF{suffix}"]
        frr += [f"neighbor {n} route-map TO-CF{suffix} out" for n in peers]
    return ("an outbound policy toward Cloudflare that permits only your prefixes: FRR "
            + "; ".join(f"`{line.strip()}`" for line in frr)
            + ", and keep FRR's default `bgp ebgp-requires-policy` (a neighbor without a policy then sends "
              f"nothing); BIRD `export where net ~ [ {', '.join(allowed)} ];` instead of `export all`")


def rejected_findings(rejected: dict[str, list[RejectedRoute]], allowed: list[str],
                      neighbors: dict[str, str] | None = None) -> list[Finding]:
    """Refused prefixes. Leaks (Cloudflare's routes, a default, link nets: routes that are not the
    customer's) are one finding with the outbound policy fix, said once; every other refusal is one
    finding per rule quoting the import policy's reasons."""
    out: list[Finding] = []
    by_rule: dict[str, dict[str, str]] = {}  # rule -> prefix -> reason
    sessions: dict[str, set[str]] = {}
    for key, routes in rejected.items():
        for r in routes:
            by_rule.setdefault(r.rule, {}).setdefault(r.prefix, r.reason)
            sessions.setdefault(r.rule, set()).add(key)
    leak_parts, leak_sessions = [], set()
    for rule, reasons in by_rule.items():
        subject = ", ".join(sorted(sessions[rule]))
        prefixes = sorted(reasons, key=_net_order)
        if rule in LEAK_RULES:
            shown = ", ".join(prefixes[:6]) + (f" and {len(prefixes) - 6} more" if len(prefixes) > 6 else "")
            leak_parts.append(f"{LEAK_FIX[rule]} ({len(prefixes)}: {shown})")
            leak_sessions |= sessions[rule]
        else:
            out.append(Finding(severity="fail", check=f"announce.{rule}", subject=subject,
                               cause="Cloudflare refused " + "; ".join(reasons.values()) + f" (rule {rule})",
                               fix=f"announce only your allow-listed prefixes ({', '.join(allowed)}): remove the "
                                   "others from the export policy toward Cloudflare (FRR prefix-list ... out without "
                                   "`le`, and their `network` lines; BIRD the export filter)"))
    if leak_parts:
        nbrs = [neighbors[k] for k in sorted(leak_sessions) if neighbors and k in neighbors]
        out.insert(0, Finding(severity="fail", check="announce.leak", subject=", ".join(sorted(leak_sessions)),
                              cause="your router has no working outbound policy toward Cloudflare: it "
                                    + "; it ".join(leak_parts)
                                    + ". Cloudflare refuses these; a peer without its filters would not",
                              fix="add " + outbound_policy_fix(allowed, nbrs)))
    return out


def bfd_advice(peers: list[str], tx_ms: int, mult: int) -> list[str]:
    return [f"Cloudflare runs BFD {tx_ms} ms x {mult} on this interconnect and your router answers on none of "
            f"{', '.join(peers)}: FRR `bfd` + `neighbor <cf-address> bfd` (or a `bfd profile`), BIRD "
            "`protocol bfd { interface \"*\" { ... }; }` and `bfd on;` in each BGP protocol. Without it a silent "
            "failure takes the BGP hold time to detect"]


def mss_advice(report: MssReport, plan: LabPlan) -> list[str]:
    out = list(report.diagnosis)
    out += list(dict.fromkeys(r.advice for r in report.results if not r.ok))
    ifaces = list(dict.fromkeys([t.declared.name if t.declared else t.cust_ifname for t in plan.tunnels]
                                + [s.cust_iface for s in plan.sessions]))
    out.append(f"clamp TCP MSS to {report.required} on SYNs through the interfaces toward Cloudflare "
               f"(IF below = {', '.join(ifaces)}):")
    out += [f"  {name}: {line}" for name, line in report.fix.items()]
    return out


def mtu_advice(report: Any) -> list[str]:
    return [f"{r.direction}: {r.diagnosis}" for r in report.results if not r.ok]
