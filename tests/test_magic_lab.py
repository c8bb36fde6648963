"""Magic tunnels on the emulator: real health-check probes through GRE over CNI and GRE over the
internet, per-tunnel state, steering by priority, customer configs that do not return probes."""

from __future__ import annotations

import json
import os
import time

import pytest
from cnilab.sim.magic.facts import timing

from tests.labs import lab_fixture

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]

HIGH = 0.5
"""Lab probe interval at rate high (a lab parameter; Cloudflare publishes none)."""
DOWN_BOUND = HIGH + (timing().reprobes + 1) * timing().probe_timeout_s
"""Worst case to mark a tunnel down: wait for the next probe, then probe + 2 re-probes time out."""
SLACK = 5.0
"""Declared slack for a loaded 2-core machine (status written every 0.5 s, process scheduling)."""


def _fast(topo):
    topo.magic.intervals = {"high": HIGH, "mid": 2.0, "low": 4.0}
    return topo


lab = lab_fixture("magic-transit.yml", edit=_fast, wait_prefixes=False)


def _status(lab):
    from cnilab.sim.magic.lab import read_status

    return read_status(lab)


def _tun(st, name):
    return next(t for t in st.tunnels if t.name == name)


def _wait(lab, pred, timeout, what):
    from cnilab.sim.magic.lab import wait_status

    st = wait_status(lab, pred, timeout)
    assert st is not None and pred(st), f"{what}: last status {st.model_dump_json(indent=1) if st else None}"
    return st


def _steered(st):
    return [h.tunnel for h in st.routes.get("198.51.100.0/24", [])]


def _gre_tx(lab, ifname):
    from cnilab.sim.dataplane.gre import gre_counters

    return gre_counters(lab.netns_path("cf"), ifname)["tx_packets"]


def _ping_origin(lab, count=5):
    return lab.run("inet", ["ping", "-c", str(count), "-i", "0.05", "-W", "1", "198.51.100.10"], check=False)


def test_probes_cross_both_tunnels_and_cni_carries_traffic(lab):
    healthy_after = timing().healthy_window_probes * HIGH
    st = _wait(lab, lambda s: all(t.state == "healthy" for t in s.tunnels), healthy_after + 30,
               "both tunnels healthy")
    for t in st.tunnels:
        assert t.returned >= timing().healthy_window_probes and t.last[-1].ok and t.last[-1].rtt_ms is not None
        assert [(x.frm, x.to) for x in t.transitions[-2:]] == [("down", "degraded"), ("degraded", "healthy")]
    assert _steered(st) == ["cni-ewr1"]
    before_cni, before_inet = _gre_tx(lab, "gre-ewr1"), _gre_tx(lab, "gre-inet1")
    assert _ping_origin(lab).returncode == 0
    assert _gre_tx(lab, "gre-ewr1") - before_cni >= 5
    # the internet tunnel carried only health checks meanwhile (a few probes, not the 5 pings)
    assert _gre_tx(lab, "gre-inet1") - before_inet < 5 + 10


def test_customer_firewall_drops_probes_tunnel_down_traffic_moves(lab):
    from cnilab.sim.magic import faults

    _wait(lab, lambda s: _steered(s) == ["cni-ewr1"] and _tun(s, "cni-ewr1").state == "healthy", 60, "cni healthy")
    faults.apply(lab, "cni-ewr1", "firewall")
    try:
        st = _wait(lab, lambda s: _tun(s, "cni-ewr1").state == "down", DOWN_BOUND + SLACK, "cni-ewr1 down")
        cni = _tun(st, "cni-ewr1")
        down = cni.transitions[-1]
        assert down.to == "down" and "failed" in down.reason
        assert [p.ok for p in cni.last[-3:]] == [False, False, False]
        assert cni.effective_priority == 100 + timing().penalty["down"]
        assert _steered(st) == ["inet1"]
        before = _gre_tx(lab, "gre-inet1")
        assert _ping_origin(lab).returncode == 0, "traffic did not reach the origin over the internet GRE backup"
        assert _gre_tx(lab, "gre-inet1") - before >= 5
    finally:
        faults.apply(lab, "cni-ewr1", "firewall", on=False)
    st = _wait(lab, lambda s: _tun(s, "cni-ewr1").state == "degraded", 3 * HIGH + SLACK, "cni-ewr1 degraded")
    assert _steered(st) == ["inet1"], "a degraded CNI (100 + 500000) must not beat a healthy backup (200)"
    _wait(lab, lambda s: _steered(s) == ["cni-ewr1"], timing().healthy_window_probes * HIGH + 20, "traffic back")


def test_reply_probe_martian_then_request_type_works(lab):
    """Linux drops a reply-style probe (sourced from its own tunnel address) unless accept_local;
    Cloudflare's note: switch to request style when the network drops reply-style checks."""
    from cnilab.sim.magic import faults
    from cnilab.sim.magic.ops import set_tunnel

    _wait(lab, lambda s: _tun(s, "inet1").state != "down", 30, "inet1 up")
    faults.apply(lab, "inet1", "accept-local-off")
    try:
        _wait(lab, lambda s: _tun(s, "inet1").state == "down", DOWN_BOUND + SLACK, "inet1 down (martian)")
        set_tunnel(lab, "inet1", hc_type="request")
        st = _wait(lab, lambda s: _tun(s, "inet1").state == "degraded", 3 * HIGH + SLACK, "request style returns")
        assert _tun(st, "inet1").type == "request"
    finally:
        faults.apply(lab, "inet1", "accept-local-off", on=False)
        set_tunnel(lab, "inet1", hc_type="reply")
        _wait(lab, lambda s: _tun(s, "inet1").type == "reply", 2 + SLACK, "reply style restored for the next test")


def test_priority_change_moves_traffic_and_ecmp(lab):
    from cnilab.sim.magic.ops import set_tunnel

    _wait(lab, lambda s: all(t.state == "healthy" for t in s.tunnels),
          timing().healthy_window_probes * HIGH + 20, "both tunnels healthy")
    set_tunnel(lab, "cni-ewr1", priority=300)
    try:
        _wait(lab, lambda s: _steered(s) == ["inet1"], 2 + SLACK, "down-pref moves traffic to inet1")
        set_tunnel(lab, "cni-ewr1", priority=200)
        _wait(lab, lambda s: _steered(s) == ["cni-ewr1", "inet1"], 2 + SLACK, "ECMP on equal priority")
        out = lab.run("cf", ["ip", "route", "show", "table", "300"]).stdout
        assert "nexthop dev gre-ewr1" in out and "nexthop dev gre-inet1" in out, out
    finally:
        set_tunnel(lab, "cni-ewr1", priority=100)


def test_cli_tunnels_json(lab, monkeypatch):
    from cnilab.sim.cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setenv("CNILAB_STATE_DIR", os.environ.get("CNILAB_STATE_DIR", ""))
    res = CliRunner().invoke(app, ["tunnels", "--lab", lab.name, "--json"])
    data = json.loads(res.stdout)
    assert {t["name"]: t["kind"] for t in data["tunnels"]} == {"cni-ewr1": "cni", "inet1": "gre"}
    assert all(t["type"] == "reply" and t["direction"] == "bidirectional" for t in data["tunnels"])
    assert res.exit_code == (0 if all(t["state"] != "down" for t in data["tunnels"]) else 1)


def test_magic_api_drives_the_running_lab(lab, tmp_path):
    """Route priority and health-check rate changed through the SDK change the running lab."""
    cloudflare = pytest.importorskip("cloudflare", reason="official SDK (dev dependency) not installed")
    from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
    from cnilab.mock_api.testing import serve
    from cnilab.sim.magic.ops import set_tunnel

    _wait(lab, lambda s: all(t.state == "healthy" for t in s.tunnels), timing().healthy_window_probes * HIGH + 20,
          "both tunnels healthy")
    with serve(load_settings(db=tmp_path / "api.sqlite3", lab=lab.name)) as url:
        cf = cloudflare.Cloudflare(api_token=DEV_TOKEN, base_url=f"{url}/client/v4", max_retries=0)
        mt = cf.magic_transit
        ics = mt.cf_interconnects.list(account_id=DEV_ACCOUNT).interconnects
        assert [(i.name, i.interface_address, i.gre.cloudflare_endpoint) for i in ics] == [
            ("cni-ewr1", "10.212.0.0/31", "192.0.2.10")]
        assert [t.name for t in mt.gre_tunnels.list(account_id=DEV_ACCOUNT).gre_tunnels] == ["inet1"]
        routes = {r.nexthop: r for r in mt.routes.list(account_id=DEV_ACCOUNT).routes}
        assert {n: r.priority for n, r in routes.items()} == {"10.212.0.1": 100, "10.213.0.1": 200}
        cni = routes["10.212.0.1"]
        try:
            mt.routes.update(cni.id, account_id=DEV_ACCOUNT, prefix=cni.prefix, nexthop=cni.nexthop, priority=300)
            _wait(lab, lambda s: _steered(s) == ["inet1"], 2 + SLACK, "API down-pref moves traffic")
            mt.cf_interconnects.update(ics[0].id, account_id=DEV_ACCOUNT, health_check={"rate": "low"})
            _wait(lab, lambda s: _tun(s, "cni-ewr1").interval_s == 4.0, 2 + SLACK, "rate low in the daemon")
            for r in routes.values():
                mt.routes.delete(r.id, account_id=DEV_ACCOUNT)
            _wait(lab, lambda s: not s.routes, 2 + SLACK, "routes deleted through the API leave the edge")
            assert "198.51.100.0/24" not in lab.run("cf", ["ip", "route", "show", "table", "300"]).stdout
            for r in routes.values():
                mt.routes.create(account_id=DEV_ACCOUNT, prefix=r.prefix, nexthop=r.nexthop, priority=r.priority)
            _wait(lab, lambda s: _steered(s) == ["cni-ewr1"], 2 + SLACK, "routes re-created steer again")
        finally:
            set_tunnel(lab, "cni-ewr1", priority=100, rate="high")
            cf.close()


def test_dashboard_shows_tunnels_and_their_transitions(lab):
    from cnilab.sim.dashboard import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(lab.name, "tok-for-tests", period=0.05), base_url="http://127.0.0.1") as client:
        deadline = time.monotonic() + 10
        snap = {}
        while time.monotonic() < deadline:
            snap = client.get("/api/state").json()
            if snap.get("tunnels"):
                break
        tun = {t["name"]: t for t in snap["tunnels"]}
        assert set(tun) == {"cni-ewr1", "inet1"}
        assert tun["cni-ewr1"]["kind"] == "cni" and tun["inet1"]["kind"] == "gre"
        assert any("198.51.100.0/24" in t["carries"] for t in tun.values())
        assert any(e["kind"] == "tunnel-state" and "down -> degraded" in e["text"] for e in snap["timeline"])
        page = client.get("/").text
        assert 'data-testid="tunnels"' in page


def test_wrong_tunnel_source_takes_the_tunnel_down_with_the_cause(lab):
    from cnilab.sim.magic import faults
    from cnilab.sim.magic.rehearse import diagnose

    _wait(lab, lambda s: _tun(s, "inet1").state != "down", 30, "inet1 up")
    faults.apply(lab, "inet1", "wrong-source")
    try:
        _wait(lab, lambda s: _tun(s, "inet1").state == "down", DOWN_BOUND + SLACK, "inet1 down (wrong source)")
        cause, fix = diagnose(lab, "inet1")
        assert "198.51.100.1" in cause and "203.0.113.1" in cause and "local 203.0.113.1" in fix[0]
    finally:
        faults.apply(lab, "inet1", "wrong-source", on=False)
    _wait(lab, lambda s: _tun(s, "inet1").state == "degraded", 3 * HIGH + SLACK, "inet1 back after the fix")


def test_strict_rp_filter_alone_does_not_drop_a_bidirectional_probe(lab):
    """The probe's source is the customer side of the tunnel's /31: the reverse path is the tunnel.
    The simulator's link model says the same (cnilab.sim.magic.simulate.blocks)."""
    from cnilab.sim.magic import faults
    from cnilab.sim.magic.simulate import blocks

    assert blocks("rp-filter", "reply", legacy=False) is False
    _wait(lab, lambda s: _tun(s, "inet1").state != "down", 30, "inet1 up")
    faults.apply(lab, "inet1", "rp-filter")
    try:
        assert lab.run("cust", ["sysctl", "-n", "net.ipv4.conf.gre-inet1.rp_filter"]).stdout.strip() == "1"
        before = _tun(_status(lab), "inet1").returned
        _wait(lab, lambda s: _tun(s, "inet1").returned >= before + 4, 4 * HIGH + SLACK, "probes keep returning")
        assert _tun(_status(lab), "inet1").state != "down"
    finally:
        faults.apply(lab, "inet1", "rp-filter", on=False)


def test_a_dead_daemon_is_reported_not_its_last_states(lab, monkeypatch):
    """Runs last: stops the edge's health-check daemon; its frozen 'healthy' must not pass for current."""
    from cnilab.sim.cli.main import app
    from cnilab.sim.magic.lab import STALE_S, StaleStatus, read_status
    from typer.testing import CliRunner

    assert read_status(lab) is not None
    rec = next(p for p in lab.refresh().processes if p.name == "magic-hcd")
    rec.stop()
    time.sleep(STALE_S + 1)
    with pytest.raises(StaleStatus, match="stopped reporting"):
        read_status(lab)
    res = CliRunner().invoke(app, ["tunnels", "--lab", lab.name])
    assert res.exit_code == 1 and "stopped reporting" in res.output
