"""The BGP call, for real: every router kind of the registry against the ExaBGP edge, over v1 GRE and v2.

Each case builds the lab with the router kind's template, announces the allowed /24 plus a /25
inside it, and checks both sides: sessions Established with MD5 (IPv4 and IPv6), Cloudflare's
prefixes in the customer's kernel, the /24 accepted and the /25 refused with its reason, and on v1
BFD Up at 300x3 and a blackhole taking BFD and BGP down within the detection time. A kind without
BFD (GoBGP) must leave the edge's BFD down, and a blackhole then takes the BGP hold time.
"""

from __future__ import annotations

import ipaddress
import time

import pytest
from cnilab.sim.edge.control import EdgeClient
from cnilab.sim.facts import router_kind_names, router_kinds
from cnilab.sim.faults.apply import apply_fault, clear_faults
from cnilab.sim.testing import wait_for

from tests.labs import running_lab

pytestmark = [pytest.mark.root, pytest.mark.daemons]

EXTRA = ipaddress.ip_network("198.51.100.128/25")


def _edit(kind: str):
    def edit(topo):
        router = topo.customer.router.model_copy(update={"kind": kind})
        cust = topo.customer.model_copy(update={"router": router, "announce_extra": [EXTRA]})
        return topo.model_copy(update={"customer": cust})
    return edit


@pytest.mark.parametrize("kind", router_kind_names(in_lab=True))
@pytest.mark.parametrize("topology", ["v1-gre.yml", "v2-direct.yml"])
def test_customer_router_and_edge_agree(kind: str, topology: str, tmp_path_factory) -> None:
    with running_lab(tmp_path_factory.mktemp(f"{kind}"), topology, edit=_edit(kind)) as lab:
        edge = EdgeClient(lab.state.control["edge"])
        sessions = edge.wait_established(timeout=60)
        assert {s.family for s in sessions} == {4, 6}
        assert all(s.md5 and s.peer_asn == 65010 and s.local_asn == 13335 for s in sessions)

        # Cloudflare's ranges reached the customer's kernel (next hop over GRE on v1).
        def cf_route() -> str:
            return lab.run("cust", ["ip", "route", "show", "104.16.0.0/13"], check=False).stdout
        out = wait_for(cf_route, 30, what="104.16.0.0/13 in the customer's kernel")
        assert ("gre-ewr1" in out) == topology.startswith("v1"), out

        # The /24 is accepted and installed at the edge; the /25 refused with a reason.
        v4 = next(s for s in edge.sessions() if s.family == 4)
        wait_for(lambda: any(r.prefix == str(EXTRA) for r in edge.session(v4.key).rejected), 30,
                 what="the /25 refused at the edge")
        rej = next(r for r in edge.session(v4.key).rejected if r.prefix == str(EXTRA))
        assert "longer than /24" in rej.reason
        routes = edge.routes()
        assert any(r.prefix == "198.51.100.0/24" and r.accepted for r in routes.received)
        assert any(r.prefix == "198.51.100.0/24" for r in routes.installed)

        if not topology.startswith("v1"):
            assert edge.bfd() == []  # v2 has no BFD
            return
        if not router_kinds()[kind].bfd:
            # No BFD in the customer's daemon: the edge's BFD never comes Up, the hold time detects.
            assert all(b["state"] != "Up" for b in edge.bfd()), edge.bfd()
            hold = lab.plan.sessions[0].hold_time
            t0 = time.monotonic()
            apply_fault(lab, "ewr1", "blackhole")
            try:
                wait_for(lambda: not edge.session(v4.key).up, hold + 5, 0.1, what="BGP down at the hold time")
                assert time.monotonic() - t0 >= hold - 3 - 1.0  # not earlier than a hold time minus a keepalive
            finally:
                clear_faults(lab, "ewr1")
            edge.wait_established(timeout=60)
            return
        # Up first at the 1 s slow-start rate, then a Poll/Final switches both ends to 300 ms x 3.
        wait_for(lambda: len(edge.bfd()) == 2 and all(b["state"] == "Up" and b["detection_ms"] == 900
                                                      for b in edge.bfd()), 30, what="BFD Up at 300x3")
        detect = max(b["detection_ms"] for b in edge.bfd()) / 1000
        tx = detect / 3
        before = time.monotonic()
        apply_fault(lab, "ewr1", "blackhole")
        applied = time.monotonic()  # the drop is in place by now (it took effect somewhere in between)
        try:
            wait_for(lambda: all(b["state"] == "Down" for b in edge.bfd()), detect + 10, 0.02, what="BFD Down")
            down = time.monotonic()
            # Physics: BFD declares the peer down (multiplier-1..multiplier) x TX after the last packet,
            # so never sooner than 2 TX intervals after the cut; the upper bound is generous (loaded host).
            assert down - before >= 2 * tx - 0.05, (down - before, detect)
            assert down - applied <= detect + 2.0, (down - applied, detect)
            wait_for(lambda: not edge.session(v4.key).up, 10, 0.02, what="BGP torn down after BFD Down")
        finally:
            clear_faults(lab, "ewr1")
        edge.wait_established(timeout=60)
