"""The Magic Transit over CNI rehearsal on the emulator: passes with a correct customer config
(probes returned, up-pref without loss, MSS 1332, DSR egress, rollback) and stops with the cause
and the fix when the customer's router does not return Cloudflare's health checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from cnilab.sim.magic.rehearse import MAX_LOSS, rehearse_magic

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]

TOPO = Path(__file__).resolve().parent.parent / "topologies" / "magic-transit.yml"


def _edit(**customer):
    def edit(t):
        t.magic.intervals = {"high": 0.5}
        for k, v in customer.items():
            setattr(t.magic.customer, k, v)
        return t
    return edit


def test_rehearsal_passes_with_a_correct_customer(short_state, lab_name):
    rep = rehearse_magic(TOPO, lab_name=lab_name, edit=_edit())
    steps = {s.id: s for s in rep.steps}
    assert rep.passed, rep.model_dump_json(indent=1)
    up, back = steps["up-pref"].measured, steps["rollback"].measured
    assert up["before"] == "inet1" and back["before"] == "cni-ewr1"
    for m in (up, back):
        assert m["moved_after_ms"] >= 0 and m["lost"] <= MAX_LOSS * m["sent"]
    mss = steps["mss"].measured
    assert (mss["inet->origin"], mss["origin->inet"]) == (1332, 1332)
    # ingress: FOU/IPv6 backhaul + tunnel; egress: DSR through the customer's transit (a 1500 path)
    assert (mss["mtu cf_to_customer"], mss["mtu customer_to_cf"]) == (1372, 1500)
    assert steps["dsr"].measured["egress"] == "transit"


@pytest.mark.parametrize(("customer", "cause", "fix"), [
    ({"accept_local": False}, "martian", "accept_local=1"),
    ({"firewall_drop_icmp": True}, "firewall drops", "icmp type"),
])
def test_rehearsal_fails_with_cause_and_fix_when_probes_are_not_returned(short_state, lab_name, customer, cause, fix):
    rep = rehearse_magic(TOPO, lab_name=lab_name, edit=_edit(**customer))
    assert not rep.passed
    failed = next(s for s in rep.steps if s.status == "fail")
    assert failed.id == "probes" and "down" in failed.detail
    assert cause in failed.cause and any(fix in f for f in failed.fix), failed
    assert all(s.status == "not-run" for s in rep.steps[rep.steps.index(failed) + 1:])


def test_rehearse_cli_with_the_customers_own_frr_config(short_state, lab_name, tmp_path, monkeypatch):
    """`cnilab tunnels rehearse --customer-config`: the customer's FRR file (here the template's own
    output, written out) runs as is and, with the customer's MSS clamp declared, the whole Magic
    rehearsal passes; exit 0. Without the clamp it stops at the MSS step with the cause."""
    import json

    from cnilab.sim.cli.main import app
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology
    from typer.testing import CliRunner

    conf = tmp_path / "frr.conf"
    conf.write_text(render_frr(build_plan(load_topology(TOPO), lab_name)))
    topo = tmp_path / "mt.yml"
    # A customer bringing its own config clamps MSS itself (the lab's "auto" clamp is the template's):
    # here it declares 1332, as seed 001 requires.
    topo.write_text(TOPO.read_text().replace("intervals: {low: 4.0, mid: 2.0, high: 1.0}",
                                             "intervals: {low: 4.0, mid: 2.0, high: 0.5}")
                    .replace("router: {kind: frr}", "router: {kind: frr, mss_clamp: 1332}"))
    res = CliRunner().invoke(app, ["tunnels", "rehearse", str(topo), "--name", lab_name,
                                   "--customer-config", str(conf), "--json"])
    rep = json.loads(res.stdout)
    assert res.exit_code == 0 and rep["passed"], res.output
    assert [s["status"] for s in rep["steps"]] == ["pass"] * 8


def test_rehearse_cli_own_config_without_a_clamp_fails_at_mss(short_state, lab_name, tmp_path):
    import json

    from cnilab.sim.cli.main import app
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology
    from typer.testing import CliRunner

    conf = tmp_path / "frr.conf"
    conf.write_text(render_frr(build_plan(load_topology(TOPO), lab_name)))
    topo = tmp_path / "mt.yml"
    topo.write_text(TOPO.read_text().replace("intervals: {low: 4.0, mid: 2.0, high: 1.0}",
                                             "intervals: {low: 4.0, mid: 2.0, high: 0.5}"))
    res = CliRunner().invoke(app, ["tunnels", "rehearse", str(topo), "--name", lab_name,
                                   "--customer-config", str(conf), "--json"])
    rep = json.loads(res.stdout)
    failed = next(s for s in rep["steps"] if s["status"] == "fail")
    assert res.exit_code == 1 and failed["id"] == "mss"
    assert "1332" in failed["cause"] and any("1332" in f for f in failed["fix"])
