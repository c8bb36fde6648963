"""The dashboard's controls on localhost cannot be driven by another web site the trainer visits:
a browser marks such requests (Origin, Sec-Fetch-Site) and the dashboard refuses them, with or
without a token. No root needed: a lab that exists only as a state file is enough."""

from __future__ import annotations

from pathlib import Path

import pytest
from cnilab.sim.dashboard import create_app
from cnilab.sim.dashboard.app import cross_site_reason
from cnilab.sim.state import LabState
from cnilab.sim.topology import build_plan, load_topology
from fastapi.testclient import TestClient

TOPOLOGY = Path(__file__).resolve().parent.parent / "topologies" / "v1-gre.yml"


@pytest.fixture
def paper_lab(state_dir: Path, lab_name: str) -> str:
    LabState(lab=lab_name, plan=build_plan(load_topology(TOPOLOGY), lab_name), status="running",
             topology_path=str(TOPOLOGY)).save()
    return lab_name


@pytest.mark.parametrize(("headers", "refused"), [
    ({"host": "127.0.0.1:8788"}, False),  # curl, the CLI: no browser headers
    ({"host": "127.0.0.1:8788", "origin": "http://127.0.0.1:8788", "sec-fetch-site": "same-origin"}, False),
    ({"host": "127.0.0.1:8788", "origin": "https://evil.example"}, True),
    ({"host": "127.0.0.1:8788", "origin": "http://127.0.0.1:9999"}, True),  # another local app
    ({"host": "127.0.0.1:8788", "origin": "null"}, True),  # sandboxed iframe, file://
    ({"host": "127.0.0.1:8788", "sec-fetch-site": "cross-site"}, True),
    ({"host": "127.0.0.1:8788", "sec-fetch-site": "same-site"}, True),
])
def test_cross_site_rule(headers, refused):
    assert (cross_site_reason(headers) is not None) is refused


def test_cross_site_mutations_refused_without_a_token(paper_lab: str) -> None:
    """Loopback without a token (the default): a foreign page's POST/DELETE gets 403, nothing happens."""
    with TestClient(create_app(paper_lab, None, period=0.05), base_url="http://127.0.0.1:8788") as client:
        evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        for method, path, body in (("POST", "/api/faults", {"target": "ewr1", "kind": "down"}),
                                   ("DELETE", "/api/faults", None), ("POST", "/api/traffic", {"rate_pps": 10}),
                                   ("DELETE", "/api/traffic", None), ("POST", "/api/scenario", {"file": "x.yml"}),
                                   ("DELETE", "/api/scenario", None)):
            r = client.request(method, path, json=body, headers=evil)
            assert r.status_code == 403, (method, path, r.text)
            assert "only its own page" in r.json()["detail"]
        assert LabState.load(paper_lab).faults == []
        # the page itself (same origin) still works: a bad target is a 400 from the action, not a 403
        own = {"Origin": "http://127.0.0.1:8788", "Sec-Fetch-Site": "same-origin"}
        r = client.post("/api/faults", json={"target": "nowhere", "kind": "down"}, headers=own)
        assert r.status_code == 400 and "nowhere" in r.json()["detail"]
