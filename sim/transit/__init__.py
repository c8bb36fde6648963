"""Third parties next to the customer: a transit provider (and an optional peer) as real BGP speakers.

A CNI customer also has an upstream; the classic mistake is re-advertising what Cloudflare sent
(AS13335 in the path) to it, which turns the customer into a transit for Cloudflare (a valley-free
violation, RFC 7908 type 1 leak). The ``transit`` node runs ExaBGP as AS64500 (a documentation ASN),
sends a small internet table (``sim/data/internet-table.yaml``) and records every route the customer
announces to it, before any filtering, so checks can name each leaked prefix.

Entry points::

    start_third_parties(lab)                 # lab hook: one speaker per third party in the plan
    party_sessions(plan) -> [TransitSession] # transit and/or peer, each with its role (``party``)
    read_received(lab, party) -> Received    # what the customer announced to it, with raw UPDATEs
    classify(received, plan) -> list[Leak]   # cnilab.sim.transit.leaks
"""

from __future__ import annotations

from cnilab.sim.transit.speaker import (
    NODE_OF,
    TRANSIT_NODE,
    Received,
    TransitSession,
    party_session,
    party_sessions,
    read_received,
    start_third_parties,
    start_transit,
    transit_session,
)

__all__ = ["NODE_OF", "TRANSIT_NODE", "Received", "TransitSession", "party_session", "party_sessions",
           "read_received", "start_third_parties", "start_transit", "transit_session"]
