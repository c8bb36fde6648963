"""Google Cloud Interconnect on the emulator: a Cloud Router whose BGP routes Cloudflare ignores,
Magic WAN static routes, legacy bidirectional health checks (real probes sourced from
172.64.240.253), and a VLAN attachment MTU mismatch caught by the MTU probe with cause and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cnilab.sim.magic.rehearse import rehearse_magic

pytestmark = [pytest.mark.root, pytest.mark.daemons, pytest.mark.slow]

TOPO = Path(__file__).resolve().parent.parent / "topologies" / "gcp-cloud-interconnect.yml"


def test_gcp_rehearsal_passes_when_the_mtu_matches(short_state, lab_name):
    rep = rehearse_magic(TOPO, lab_name=lab_name)
    assert rep.passed, rep.model_dump_json(indent=1)
    steps = {s.id: s for s in rep.steps}
    assert steps["bgp"].measured["announced"] == 2 and "2 prefixes received and accepted" in steps["bgp"].detail
    assert steps["ignored"].measured == {"203.0.113.0/24": "ignored"}
    assert "reply/legacy-bidirectional" in steps["probes"].detail
    assert steps["mtu"].measured == {"cf_to_customer": 1500, "customer_to_cf": 1500}


def test_vlan_attachment_mtu_mismatch_fails_with_cause_and_fix(short_state, lab_name):
    def edit(t):
        t.magic.vlan_attachment_mtu = 1460
        return t

    rep = rehearse_magic(TOPO, lab_name=lab_name, edit=edit)
    failed = next(s for s in rep.steps if s.status == "fail")
    assert failed.id == "mtu", rep.model_dump_json(indent=1)
    assert failed.measured["customer_to_cf"] == 1460 and failed.measured["cf_to_customer"] < 1500
    assert "VLAN attachment" in failed.cause and any("--mtu 1500" in f for f in failed.fix)


def test_legacy_probe_needs_the_route_back_under_strict_rp_filter(tmp_path_factory):
    from cnilab.sim.magic import faults
    from cnilab.sim.magic.lab import wait_status
    from cnilab.sim.magic.rehearse import diagnose
    from cnilab.sim.magic.simulate import blocks

    from tests.labs import running_lab

    assert blocks("rp-filter", "reply", legacy=True) is True
    with running_lab(tmp_path_factory.mktemp("gc"), "gcp-cloud-interconnect.yml", wait_prefixes=False) as lab:
        st = wait_status(lab, lambda s: s.tunnels[0].state != "down", 15)
        assert st is not None and st.tunnels[0].state != "down", st
        faults.apply(lab, "gcp1", "rp-filter")
        st = wait_status(lab, lambda s: s.tunnels[0].state == "down", 1.0 + 0.9 + 5)
        assert st is not None and st.tunnels[0].state == "down"
        cause, fix = diagnose(lab, "gcp1")
        assert "rp_filter=1" in cause and "172.64.240.253" in cause and "172.64.240.252/30" in fix[0]
        faults.apply(lab, "gcp1", "rp-filter", on=False)
        st = wait_status(lab, lambda s: s.tunnels[0].state == "degraded", 1.0 + 5)
        assert st is not None and st.tunnels[0].state == "degraded"
