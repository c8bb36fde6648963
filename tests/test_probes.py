"""MTU and MSS probes against real labs (FRR customer, ExaBGP edge, userspace or kernel GRE)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cnilab.sim.probes.mss import probe_mss
from cnilab.sim.probes.mtu import probe_mtu
from cnilab.sim.routers.mss import apply_mss_clamp

from tests.labs import ROOT, lab_fixture

pytestmark = [pytest.mark.root, pytest.mark.daemons]


v1 = lab_fixture("v1-gre.yml")
v2 = lab_fixture("v2-direct.yml")


def test_mtu_v1_is_1500_in_1476_out(v1):
    r = probe_mtu(v1)
    by = {x.direction: x for x in r.results}
    assert by["cf_to_customer"].measured == 1500, by["cf_to_customer"]
    assert by["customer_to_cf"].measured == 1476, by["customer_to_cf"]
    # Above 1476 towards Cloudflare the customer router answers with ICMP fragmentation-needed.
    assert by["customer_to_cf"].pmtud == "works"
    assert by["customer_to_cf"].icmp_mtu == 1476
    assert r.ok


def test_mtu_over_one_interconnect_v1(v1):
    r = probe_mtu(v1, "ewr1")
    by = {x.direction: x for x in r.results}
    assert by["customer_to_cf"].measured == 1476  # through the GRE tunnel to the edge's inner address
    assert by["cf_to_customer"].measured == 1500
    assert r.ok


def test_mtu_names_a_wrong_customer_gre_mtu(v1):
    tun = v1.plan.tunnels[0]
    v1.run("cust", ["ip", "link", "set", "dev", tun.cust_ifname, "mtu", "1400"])
    try:
        r = probe_mtu(v1)
        out = next(x for x in r.results if x.direction == "customer_to_cf")
        assert out.measured == 1400
        assert not r.ok
        assert f"{tun.cust_ifname} has MTU 1400; set it to 1476" in out.diagnosis
    finally:
        v1.run("cust", ["ip", "link", "set", "dev", tun.cust_ifname, "mtu", str(tun.mtu)])


def test_mss_clamped_to_1436_passes(v1):
    r = probe_mss(v1)
    assert r.required == 1436 and r.required_v6 == 1416
    assert {x.family for x in r.results} == {4, 6}  # IPv6 handshakes too (IPv6 rides the tunnel)
    for x in r.results:
        want = 1436 if x.family == 4 else 1416
        assert x.syn_sent == (1460 if x.family == 4 else 1440)  # what the host offers on a 1500-byte link
        assert x.syn_arrived == want and x.synack_arrived == want, x
    assert r.ok and not r.fix
    assert r.provenance == "clamp 1436 installed by cnilab (customer.router.mss_clamp), not by your config"


def test_mss_clamped_to_1476_fails_and_teaches(v1):
    apply_mss_clamp(v1, mss=1476)
    try:
        r = probe_mss(v1)
        assert not r.ok
        # Clamps only ever lower the MSS, so a clamp at 1476 leaves the hosts' 1460 untouched.
        assert all(x.syn_arrived == 1460 for x in r.results if x.family == 4)
        assert "1476 (the GRE tunnel MTU, not an MSS)" in r.results[0].advice
        assert "1436" in r.fix["nftables"] and "1436" in r.fix["iptables"]
        env = {**os.environ, "CNILAB_STATE_DIR": str(v1.state.dir.parent.parent)}
        cli = subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", "probe", "mss", "--lab", v1.name],
                             capture_output=True, text=True, env=env, cwd=ROOT)
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert "--set-mss 1436" in cli.stdout.replace("\n", " ")
    finally:
        apply_mss_clamp(v1)
    assert probe_mss(v1).ok


def test_mss_without_clamp_fails(v1):
    apply_mss_clamp(v1, mss=None)
    try:
        r = probe_mss(v1)
        assert not r.ok and all(x.syn_arrived == 1460 for x in r.results if x.family == 4)
    finally:
        apply_mss_clamp(v1)


def test_mss_on_a_down_path_says_down_and_prints_no_fix(v1):
    from cnilab.sim.faults.apply import apply_fault, clear_faults

    apply_fault(v1, "ewr1", "blackhole")
    try:
        r = probe_mss(v1)
        env = {**os.environ, "CNILAB_STATE_DIR": str(v1.state.dir.parent.parent)}
        cli = subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", "probe", "mss", "--lab", v1.name],
                             capture_output=True, text=True, env=env, cwd=ROOT)
    finally:
        clear_faults(v1, "ewr1", kind="blackhole")
    assert not r.ok and all(x.path_down for x in r.results) and r.fix == {}
    assert all("the path is down" in x.advice for x in r.results)
    assert cli.returncode == 1 and "path is down" in cli.stdout and "--set-mss" not in cli.stdout, cli.stdout


def test_mtu_v2_is_1500_both_ways(v2):
    r = probe_mtu(v2)
    assert {x.measured for x in r.results} == {1500} and len(r.results) in (2, 4)
    assert r.ok


def test_mss_v2_needs_no_clamp_below_1460(v2):
    r = probe_mss(v2)
    assert r.required == 1460
    assert r.ok and all(x.syn_arrived == (1460 if x.family == 4 else 1440) for x in r.results)


mt = lab_fixture("magic-transit-cni.yml")


def test_magic_transit_backhaul_and_mss_1332(mt):
    r = probe_mtu(mt)
    # Ingress crosses the FOU + IPv6 backhaul (1372); egress leaves at the CNI colo (GRE, 1476).
    assert [(x.direction, x.measured) for x in r.results] == [("cf_to_customer", 1372),
                                                              ("customer_to_cf", 1476)] and r.ok, r
    assert r.results[0].pmtud == "works" and r.results[0].icmp_mtu == 1372  # the colo answers frag-needed
    link = probe_mtu(mt, "ewr1")
    assert [x.measured for x in link.results] == [1476, 1476] and link.ok  # GRE both ways on the CNI
    m = probe_mss(mt)
    assert m.required == 1332
    assert m.ok and all(x.syn_arrived == 1332 and x.synack_arrived == 1332 for x in m.results)
