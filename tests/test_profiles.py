"""Profiles: the MTU/MSS the lab derives from the encapsulation stacks equal the documented figures."""

from __future__ import annotations

import pytest
from cnilab.sim.facts import DIRECTIONS, load_facts


@pytest.mark.parametrize("profile", sorted(load_facts().profiles))
def test_derived_mtu_equals_documented(profile: str) -> None:
    facts = load_facts()
    for d in DIRECTIONS:
        assert facts.path_mtu(profile, d) == facts.profiles[profile].documented_mtu[d], (profile, d)


def test_v1_figures() -> None:
    f = load_facts()
    assert (f.path_mtu("v1", "cf_to_customer"), f.path_mtu("v1", "customer_to_cf")) == (1500, 1476)
    assert f.required_mss("v1") == 1436
    assert f.default_profile() == "v1"


def test_v2_figures() -> None:
    f = load_facts()
    assert (f.path_mtu("v2", "cf_to_customer"), f.path_mtu("v2", "customer_to_cf")) == (1500, 1500)
    assert f.required_mss("v2") == 1460


def test_gre_mss_is_1436_not_the_tunnel_mtu() -> None:
    f = load_facts()
    tunnel_mtu = int(f.physical_mtu.value) - f.overhead(["gre", "ipv4"])
    assert tunnel_mtu == 1476
    assert f.mss_for_mtu(tunnel_mtu) == 1436
    assert f.services["magic-transit-gre"].documented_mss_clamp == f.required_mss("v1", "magic-transit-gre") == 1436
    assert {m.value for m in f.mss_mistakes} == {1476, 1460}


def test_magic_transit_cni_mss_1332() -> None:
    f = load_facts()
    svc = f.services["magic-transit"]
    assert f.required_mss("v1", "magic-transit") == svc.documented_mss_clamp == 1332


def test_ipv6_mss() -> None:
    assert load_facts().mss_for_mtu(1500, family=6) == 1440


def test_capabilities_by_profile() -> None:
    p = load_facts().profiles
    assert p["v1"].gre and p["v1"].bfd and p["v1"].vlan == "single"
    assert not p["v2"].gre and not p["v2"].bfd and p["v2"].vlan == "none" and p["v2"].ecmp
