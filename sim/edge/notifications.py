"""BGP NOTIFICATIONs in words: the RFC names of each code/subcode, and what to change on which side."""

from __future__ import annotations

from cnilab.sim.topology.plan import Session

CEASE_BFD_DOWN = 10
"""RFC 9384: Cease subcode 'BFD Down'."""

NOTIFICATION_NAMES: dict[tuple[int, int], str] = {
    (1, 0): "Message Header Error", (1, 1): "Connection Not Synchronized", (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 0): "OPEN Message Error", (2, 1): "Unsupported Version Number", (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier", (2, 4): "Unsupported Optional Parameter", (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability", (2, 11): "Role Mismatch",
    (3, 0): "UPDATE Message Error", (3, 1): "Malformed Attribute List", (3, 3): "Missing Well-known Attribute",
    (3, 6): "Invalid ORIGIN Attribute", (3, 8): "Invalid NEXT_HOP Attribute", (3, 11): "Malformed AS_PATH",
    (4, 0): "Hold Timer Expired", (5, 0): "Finite State Machine Error",
    (6, 0): "Cease", (6, 1): "Maximum Number of Prefixes Reached", (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured", (6, 4): "Administrative Reset", (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change", (6, 7): "Connection Collision Resolution", (6, 8): "Out of Resources",
    (6, 9): "Hard Reset", (6, 10): "BFD Down",
}


def notification_name(code: int, subcode: int) -> str:
    return NOTIFICATION_NAMES.get((code, subcode)) or NOTIFICATION_NAMES.get((code, 0)) or f"code {code}"


def explain_notification(direction: str, code: int, subcode: int, session: Session, *,
                         open_asn: int | None = None, open_hold: int | None = None, data: str = "") -> str:
    """A NOTIFICATION in words an engineer can act on (what is wrong and on which side)."""
    name = notification_name(code, subcode)
    tag = f"NOTIFICATION {code}/{subcode}"
    if (code, subcode) == (2, 2):
        got = f"AS {open_asn}" if open_asn is not None else "the wrong AS"
        if direction == "sent":
            return (f"OPEN from {got}, expected {session.cust_asn}: {name} ({tag}); set the customer router's "
                    f"local AS to {session.cust_asn} or fix customer.asn in the topology")
        return (f"customer router refused Cloudflare's AS {session.cf_asn}: {name} ({tag}); its neighbor "
                f"must use remote-as {session.cf_asn}")
    if (code, subcode) == (2, 6):
        hold = f"{open_hold}s" if open_hold is not None else "the offered hold time"
        return f"{name} ({code}/{subcode}): hold time {hold} is not allowed; use 0 or at least 3 seconds"
    if code == 4:
        side = "Cloudflare heard nothing from the customer" if direction == "sent" else \
            "the customer router heard nothing from Cloudflare"
        return f"{name} ({tag}): {side} for {session.hold_time}s (packet loss or a dead path)"
    who = "Cloudflare sent" if direction == "sent" else "the customer router sent"
    extra = f": {data}" if data else ""
    return f"{who} {name} ({tag}){extra}"
