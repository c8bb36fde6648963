"""GRACEFUL_SHUTDOWN (RFC 8326) both ways, on real labs.

Cloudflare-side maintenance: the edge tags its routes on the interconnect carrying traffic, waits,
then the link goes dark; a sequenced stream measures the loss. BIRD honours the community only with
the import-filter line the template has, so the same lab with and without that line is the A/B.
Customer-side: routes the customer tags GSHUT lose the edge's best path (cnilab.sim.bgp.bestpath).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cnilab.sim.bgp.bestpath import Candidate, best

REPO = Path(__file__).resolve().parent.parent
NET = ipaddress.ip_network("198.51.100.0/24")
GSHUT_LINE = "  if (65535, 0) ~ bgp_community then bgp_local_pref = 0;\n"


def test_customer_gshut_loses_cloudflares_best_path() -> None:
    a = Candidate(session="ewr1/v4", prefix=NET, as_path=(65010,), priority=200, gshut=True)
    b = Candidate(session="ewr2/v4", prefix=NET, as_path=(65010, 65010, 65010), med=100, priority=150)
    assert best([a, b]) == b
    assert best([a.model_copy(update={"gshut": False}), b]).session == "ewr1/v4"


def _bird_config(tmp: Path, honour: bool) -> Path:
    from cnilab.sim.routers.bird import render_bird
    from cnilab.sim.topology import build_plan, load_topology

    text = render_bird(build_plan(load_topology(REPO / "topologies" / "ha-three-site.yml"), "ha-three-site"))
    assert GSHUT_LINE in text
    f = tmp / f"bird-{'gshut' if honour else 'no-gshut'}.conf"
    f.write_text(text if honour else text.replace(GSHUT_LINE, ""))
    return f


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("honour", [True, False], ids=["honoured", "ignored"])
def test_cloudflare_maintenance_gshut_loss_measured(tmp_path: Path, honour: bool) -> None:
    from cnilab.sim.drills.gshut import _path_map, customer_path, gshut_drill
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.testing import wait_for

    from tests.labs import running_lab

    cfg = _bird_config(tmp_path, honour)

    def with_bird(t):
        r = t.customer.router.model_copy(update={"kind": "bird", "config": cfg})
        return t.model_copy(update={"customer": t.customer.model_copy(update={"router": r})})

    with running_lab(tmp_path / "st", "ha-three-site.yml", with_bird, wait_prefixes=False) as lab:
        edge = EdgeClient(lab.state.control["edge"])  # type: ignore[attr-defined]
        edge.wait_established(timeout=90)
        wait_for(lambda: all(b["state"] == "Up" for b in edge.bfd()) and customer_path(
            lab, "104.16.0.10", _path_map(lab)) == "ewr1", 30, what="BFD Up, traffic to Cloudflare on ewr1")
        rep = gshut_drill(lab)  # type: ignore[arg-type]
        assert rep.interconnect == "ewr1" and rep.path_before == "ewr1" and rep.sent > 500
        if honour:
            assert rep.honoured and rep.lost == 0 and rep.path_after_tag == "ewr2", rep.summary
            assert rep.moved_after_s is not None and rep.moved_after_s < rep.wait_s
        else:
            assert not rep.honoured and rep.moved_after_s is None and rep.path_after_tag == "ewr1"
            # the loss is what BFD takes to notice the dark link (900 ms), measured: generous bounds
            assert 0.2 * rep.detection_ms < rep.loss_ms < 5 * rep.detection_ms, rep.summary
            assert "(65535, 0) ~ bgp_community" in rep.fix["bird"]
        edge.wait_established(timeout=60)  # the drill restored the link and untagged the routes
        assert all(not r.communities for r in edge.routes().received)
