"""Lifecycle: status from the physical facts (pure function, lab controls, lab state-file faults),
and CNI objects driving a lab's edge peer over its real control protocol (JSON lines, unix socket)."""

from __future__ import annotations

import json
import shutil
import socketserver
import tempfile
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from cnilab.mock_api.config import DEV_ACCOUNT
from cnilab.mock_api.lab_bridge import EdgeBridge
from cnilab.mock_api.status import derive_status
from cnilab.sim.facts import load_facts

from tests.api import BASE, api_client, new_interconnect


@pytest.mark.parametrize(("args", "state", "reason_id"), [
    ((False, -3.0, False, True), "Pending", "no_cross_connect"),
    ((True, -3.0, True, True), "Pending", "rx_tx_swapped"),
    ((True, None, False, True), "Down", "no_light"),
    ((True, -20.5, False, True), "Unhealthy", "low_light"),
    ((True, -20.0, False, True), "Healthy", None),
    ((True, -3.0, False, False), "Down", "link_down"),
    ((True, -3.0, False, True), "Healthy", None),
])
def test_derive_status(args, state, reason_id):
    d = derive_status(*args)
    assert (d.state, d.reason_id) == (state, reason_id)
    if reason_id:
        assert d.reason == load_facts().states["reasons"][reason_id]["text"]


def test_lab_controls_drive_status(tmp_path):
    with api_client(tmp_path / "api.sqlite3") as c:
        name = new_interconnect(c)

        def status() -> dict:
            return c.get(BASE + f"/interconnects/{name}/status").json()

        lab = f"/lab/v1/interconnects/{name}"
        assert status() == {"state": "Pending"}
        assert c.get(lab).json()["reason"] == "cross-connect not received"
        assert c.post(lab + "/cross-connect", json={"made": True}).status_code == 200
        assert status() == {"state": "Healthy"}
        c.post(lab + "/light", json={"dbm": -25.0})
        assert status() == {"state": "Unhealthy", "reason": "light level below -20 dBm"}
        c.post(lab + "/light", json={"dbm": None})
        assert status() == {"state": "Down", "reason": "no light detected"}
        c.post(lab + "/light", json={"dbm": -4.0})
        c.post(lab + "/swap", json={"swapped": True})
        assert status() == {"state": "Pending"} and c.get(lab).json()["reason_id"] == "rx_tx_swapped"
        c.post(lab + "/swap", json={"swapped": False})
        c.post(lab + "/link", json={"up": False})
        assert status() == {"state": "Down", "reason": "link operational state down"}
        c.post(lab + "/link", json={"up": True})
        assert status() == {"state": "Healthy"}
        assert c.post(lab + "/light", json={"dbm": 99}).status_code == 400
        # lab controls need auth too
        assert httpx.post(c.base_url.join(lab + "/cross-connect"), json={}).status_code == 400


class _FakeEdge(socketserver.ThreadingUnixStreamServer):
    """Speaks the edge driver's control protocol and records every ``configure``."""

    daemon_threads = True

    def __init__(self, path: str) -> None:
        self.configured: list[list[dict]] = []
        self.refuse: str | None = None
        super().__init__(path, _Handler)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            req = json.loads(line)
            srv: _FakeEdge = self.server  # type: ignore[assignment]
            if req["cmd"] == "configure" and srv.refuse:
                resp = {"ok": False, "error": srv.refuse}
            else:
                if req["cmd"] == "configure":
                    srv.configured.append(req["sessions"])
                resp = {"ok": True, "result": {"configured": len(req.get("sessions", []))}}
            self.wfile.write(json.dumps(resp).encode() + b"\n")


@pytest.fixture
def fake_lab(tmp_path, monkeypatch):
    """A running-lab state file (v1-gre plan) whose edge control socket is a recording fake."""
    from cnilab.sim.runtime.paths import lab_dir
    from cnilab.sim.state import LabState, update
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    # unix socket paths are short (108 bytes), so the state root is a short /tmp directory; the
    # socket lives inside the lab's directory, where the API confines it
    sockdir = tempfile.mkdtemp(prefix="cnilab-api-", dir="/tmp")
    monkeypatch.setenv("CNILAB_STATE_DIR", sockdir)
    lab = f"t-{uuid.uuid4().hex[:6]}"
    (lab_dir(lab) / "nodes" / "cf").mkdir(parents=True)
    edge = _FakeEdge(str(lab_dir(lab) / "nodes" / "cf" / "control.sock"))
    thread = threading.Thread(target=edge.serve_forever, daemon=True)
    thread.start()
    try:
        plan = build_plan(load_topology(Path(__file__).parent.parent / "topologies" / "v1-gre.yml"), lab)
        LabState(lab=lab, plan=plan, status="running", control={"edge": edge.server_address}).save()
        yield lab, edge, update
    finally:
        edge.shutdown()
        edge.server_close()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_cni_objects_configure_the_edge_peer(tmp_path, fake_lab):
    from cnilab.sim.state import FaultRecord

    lab, edge, update = fake_lab
    with api_client(tmp_path / "api.sqlite3", EdgeBridge(), lab=lab) as c:
        name = new_interconnect(c)
        r = c.post(f"/lab/v1/interconnects/{name}/bind", json={"link": "ewr1"})
        assert r.status_code == 200, r.text
        assert {s["interconnect"] for s in edge.configured[-1]} == set()  # bound, no CNI yet: no session
        # status now comes from the lab: healthy link, then a light fault in the state file
        assert c.get(BASE + f"/interconnects/{name}/status").json() == {"state": "Healthy"}
        with update(lab) as st:
            st.faults.append(FaultRecord(target="ewr1", kind="light", value=-23.5, mechanism="test"))
        assert c.get(BASE + f"/interconnects/{name}/status").json() == {
            "state": "Unhealthy", "reason": "light level below -20 dBm"}
        assert c.post(f"/lab/v1/interconnects/{name}/light", json={"dbm": -3}).status_code == 409

        body = {"account": DEV_ACCOUNT, "interconnect": name,
                "magic": {"conduit_name": "ewr", "description": "", "mtu": 1476},
                "bgp": {"customer_asn": 65010, "extra_prefixes": [], "md5_key": "cni-rehearsal"}}
        cni = c.post(BASE + "/cnis", json=body).json()
        assert (cni["p2p_ip"], cni["cust_ip"]) == ("192.0.2.10/31", "192.0.2.11/31")  # the lab link's /31
        (sess,) = edge.configured[-1]
        assert (sess["interconnect"], sess["cf_addr"], sess["cust_addr"], sess["cust_asn"], sess["md5"],
                sess["cf_asn"]) == ("ewr1", "192.0.2.10", "192.0.2.11", 65010, "cni-rehearsal", 13335)

        upd = {**cni, "bgp": {"customer_asn": 65020, "extra_prefixes": [], "md5_key": None}}
        assert c.put(BASE + f"/cnis/{cni['id']}", json=upd).status_code == 200
        (sess,) = edge.configured[-1]
        assert (sess["cust_asn"], sess["md5"]) == (65020, None)

        # the edge refuses: the API undoes the change and says so
        edge.refuse = "session rejected by driver"
        n_before = len(c.get(BASE + "/cnis").json()["items"])
        r = c.put(BASE + f"/cnis/{cni['id']}", json={**upd, "bgp": {"customer_asn": 65030, "extra_prefixes": []}})
        assert r.status_code == 502 and "session rejected by driver" in r.json()["errors"][0]["message"]
        assert c.get(BASE + f"/cnis/{cni['id']}").json()["bgp"]["customer_asn"] == 65020
        assert len(c.get(BASE + "/cnis").json()["items"]) == n_before
        edge.refuse = None

        assert c.delete(BASE + f"/cnis/{cni['id']}").status_code == 200
        assert edge.configured[-1] == []
        # unbinding hands the link back to the lab's own (topology) sessions
        assert c.delete(f"/lab/v1/interconnects/{name}/bind").status_code == 200
        assert sorted(s["family"] for s in edge.configured[-1]) == [4, 6]
