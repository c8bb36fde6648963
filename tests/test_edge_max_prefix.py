"""The edge enforces its own per-CNI max-prefix on what the customer sends (Cease 6/1), as a provider does."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest


@pytest.mark.root
@pytest.mark.daemons
def test_edge_sends_cease_6_1_when_the_customer_exceeds_the_cni_limit(tmp_path: Path) -> None:
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.testing import wait_for

    from tests.labs import running_lab

    def limit_one(t):
        ic = t.interconnects[0]
        ic = ic.model_copy(update={"bgp": ic.bgp.model_copy(update={"max_prefix": 1})})
        cust = t.customer.model_copy(update={"announce_extra": [ipaddress.ip_network("198.51.100.0/25")]})
        return t.model_copy(update={"interconnects": [ic], "customer": cust})

    with running_lab(tmp_path, "v1-gre.yml", limit_one, wait_prefixes=False) as lab:
        edge = EdgeClient(lab.state.control["edge"])  # type: ignore[attr-defined]

        def tripped():
            s = edge.session("ewr1/v4")
            n = s.last_notification
            return s if n and n.direction == "sent" and (n.code, n.subcode) == (6, 1) else None

        s = wait_for(tripped, 60, what="Cease 6/1 sent to the customer on ewr1/v4")
        assert s.last_notification is not None and s.last_notification.name == "Maximum Number of Prefixes Reached"
        ev = [e.detail for e in edge.events() if e.kind == "teardown"]
        assert any("over Cloudflare's limit of 1" in d for d in ev), ev
        v6 = edge.session("ewr1/v6")  # one prefix on IPv6: within the limit, untouched
        assert v6.last_notification is None or (v6.last_notification.code, v6.last_notification.subcode) != (6, 1)
