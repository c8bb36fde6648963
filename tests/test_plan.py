"""The lab plan: nodes, links, tunnels, sessions and MTUs built from the shipped topologies."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import build_plan
from cnilab.sim.topology.schema import SCHEMA_PATH, render, schema_is_current

TOPOS = Path(__file__).resolve().parents[1] / "topologies"


def plan_of(name: str, lab: str | None = None):
    return build_plan(load_topology(TOPOS / f"{name}.yml"), lab)


def test_v1_plan() -> None:
    p = plan_of("v1-gre", "x")
    assert p.lab == "x" and p.topology == "v1-gre"
    assert {n.name for n in p.nodes} == {"cf", "cust", "inet", "origin"}
    (tun,) = p.tunnels
    assert tun.mtu == 1476 and str(tun.cf_outer) == "192.0.2.10" and str(tun.cust_outer) == "192.0.2.11"
    assert tun.cf_inner.network == tun.cust_inner.network and tun.cf_inner.network.prefixlen == 31
    assert p.path_mtu["ewr1"] == {"cf_to_customer": 1500, "customer_to_cf": 1476}
    assert p.mss_required == 1436
    v4 = next(s for s in p.sessions if s.family == 4)
    assert v4.cf_nexthop == tun.cf_inner.ip and v4.cust_nexthop_via == "link"
    assert v4.cf_iface == "ewr1.100" and v4.bfd and v4.hold_time == 9 and v4.cf_asn == 13335
    assert p.node("cf").iface("ewr1").vlan == 100 and p.node("cf").forwarding
    assert not p.node("origin").forwarding


def test_v2_plan() -> None:
    p = plan_of("v2-direct")
    assert p.tunnels == []
    assert p.path_mtu["lax1"] == {"cf_to_customer": 1500, "customer_to_cf": 1500}
    assert p.mss_required == 1460
    assert all(s.cust_nexthop_via == "link" and s.cf_nexthop == s.cf_addr for s in p.sessions)
    assert {s.family for s in p.sessions} == {4, 6}


def test_magic_transit_plan() -> None:
    p = plan_of("magic-transit-cni")
    assert "colo" in {n.name for n in p.nodes}
    assert p.backhaul_mtu == 1500 - 4 - 20 - 8 - 40 - 56 == 1372
    # Only ingress is backhauled: the colo's routes toward the edge carry the locked 1372.
    assert {r.mtu for r in p.node("colo").routes} == {1372}
    assert p.link("backhaul").mtu == 1500
    assert p.mss_required == 1332
    assert p.path_mtu["ewr1"] == {"cf_to_customer": 1476, "customer_to_cf": 1476}  # GRE both ways on the CNI
    # The one Magic Transit figure (README, `cnilab status`, the MTU probe): 1372 in, 1476 out.
    assert (p.e2e_mtu("ewr1", "cf_to_customer"), p.e2e_mtu("ewr1", "customer_to_cf")) == (1372, 1476)
    assert next(s for s in p.sessions if s.family == 4).cust_nexthop_via == "gre"


def test_ha_plan() -> None:
    p = plan_of("ha-three-site")
    assert {t.interconnect for t in p.tunnels} == {"ewr1", "ewr2"}
    assert "transit" in {n.name for n in p.nodes}
    assert [s.priority for s in p.sessions] == [200, 150, 100]
    inner = [t.cf_inner.network for t in p.tunnels]
    assert len(set(inner)) == len(inner)
    backup = [r for r in p.node("cf").routes if r.metric]
    assert backup and all(r.metric > 0 for r in backup)


def test_plan_is_pure() -> None:
    a, b = plan_of("ha-three-site", "a"), plan_of("ha-three-site", "a")
    assert a.model_dump() == b.model_dump()


def test_plan_interface_names_fit_the_kernel() -> None:
    for path in TOPOS.glob("*.yml"):
        p = build_plan(load_topology(path))
        for n in p.nodes:
            for i in n.interfaces:
                assert len(i.name) <= 15 and len(i.l3_name) <= 15, (path, n.name, i.l3_name)


def test_schema_file_is_current() -> None:
    assert schema_is_current(), f"{SCHEMA_PATH} is stale: run `cnilab schema`"


@pytest.mark.parametrize("path", sorted(TOPOS.glob("*.yml")), ids=lambda p: p.stem)
def test_shipped_topologies_match_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(render()))


def test_schema_rejects_unknown_field() -> None:
    data = yaml.safe_load((TOPOS / "v2-direct.yml").read_text())
    data["interconnects"][0]["colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(render()))


def test_magic_transit_figure_is_the_same_in_readme_status_and_probe() -> None:
    """One pair, derived once (plan.e2e_mtu): the README's row, `cnilab status` and the MTU probe's
    expectation all read it; this pins the README to the derivation."""
    p = plan_of("magic-transit-cni")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| service `magic-transit`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert (int(cells[2]), int(cells[3])) == (p.e2e_mtu("ewr1", "cf_to_customer"), p.e2e_mtu("ewr1", "customer_to_cf"))
    assert "**1332**" in row and p.mss_required == 1332
