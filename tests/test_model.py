"""Topology validation: every bad input is refused with the file, the field and the value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from cnilab.sim.topology.load import ConfigError, load_topology

GOOD: dict[str, Any] = {
    "name": "unit",
    "customer": {"asn": 65010, "prefixes": ["198.51.100.0/24"]},
    "interconnects": [{
        "name": "ewr1", "site": "EWR1", "dataplane": "v1", "vlan": 100,
        "ipv4": {"cloudflare": "192.0.2.10/31", "customer": "192.0.2.11/31"},
        "bgp": {"md5": "k", "hold_time": 9},
    }],
}

V2_IC = {"name": "lax1", "site": "LAX1", "dataplane": "v2",
         "ipv4": {"cloudflare": "192.0.2.20/31", "customer": "192.0.2.21/31"}}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    p = tmp_path / "topo.yml"
    p.write_text(yaml.safe_dump(data))
    return p


def _load_bad(tmp_path: Path, data: dict[str, Any]) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    return msg


def test_good_topology_loads(tmp_path: Path) -> None:
    topo = load_topology(_write(tmp_path, GOOD))
    assert topo.interconnects[0].site == "EWR1"
    assert topo.interconnects[0].bgp.keepalive_s == 3


def test_shipped_topologies_load() -> None:
    for path in sorted((Path(__file__).resolve().parents[1] / "topologies").glob("*.yml")):
        assert load_topology(path).name == path.stem


def test_unknown_field(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["colour"] = "blue"
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0].colour" in msg and "unknown field" in msg


def test_unknown_top_level_field(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconects"] = []
    assert "interconects: unknown field" in _load_bad(tmp_path, data)


@pytest.mark.parametrize("addr", ["192.0.2.10/30", "192.0.2.10/24", "192.0.2.10/32"])
def test_non_31(tmp_path: Path, addr: str) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["ipv4"]["cloudflare"] = addr
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0].ipv4" in msg and addr in msg and "/31" in msg


def test_ipv6_must_be_127(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["ipv6"] = {"cloudflare": "2001:db8::a/64", "customer": "2001:db8::b/64"}
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0].ipv6" in msg and "2001:db8::a/64" in msg and "/127" in msg


def test_31_not_same_subnet(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["ipv4"]["customer"] = "192.0.2.13/31"
    msg = _load_bad(tmp_path, data)
    assert "192.0.2.10/31" in msg and "192.0.2.13/31" in msg and "same /31" in msg


def test_vlan_on_v2(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"] = [{**V2_IC, "vlan": 200}]
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0]" in msg and "vlan 200" in msg and "v2" in msg


def test_bfd_on_v2(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"] = [{**V2_IC, "bfd": {"enabled": True}}]
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0]" in msg and "bfd" in msg and "v2" in msg


def test_gre_on_v2(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"] = [{**V2_IC, "gre": {"cloudflare": "10.9.0.0/31", "customer": "10.9.0.1/31"}}]
    assert "gre on dataplane v2" in _load_bad(tmp_path, data)


def test_overlapping_addresses(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    second = copy.deepcopy(data["interconnects"][0])
    second["name"] = "ewr2"
    second["site"] = "EWR2"
    data["interconnects"].append(second)
    msg = _load_bad(tmp_path, data)
    assert "interconnects[1].ipv4" in msg and "192.0.2.10/31" in msg and "overlaps" in msg


def test_host_overlapping_interconnect(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["hosts"] = {"internet": {"ipv4": "192.0.2.0/24"}}
    msg = _load_bad(tmp_path, data)
    assert "hosts.internet.ipv4" in msg and "192.0.2.0/24" in msg and "overlaps" in msg


def test_duplicate_interconnect_name(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"].append({**V2_IC, "name": "ewr1"})
    msg = _load_bad(tmp_path, data)
    assert "interconnects[1].name" in msg and "'ewr1'" in msg and "twice" in msg


@pytest.mark.parametrize("asn", [0, 23456, 64496, 65535, 65551, 4294967295, 13335])
def test_reserved_asn(tmp_path: Path, asn: int) -> None:
    data = copy.deepcopy(GOOD)
    data["customer"]["asn"] = asn
    msg = _load_bad(tmp_path, data)
    assert "customer.asn" in msg and str(asn) in msg


@pytest.mark.parametrize("hold", [1, 2])
def test_hold_time_1_2(tmp_path: Path, hold: int) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["bgp"]["hold_time"] = hold
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0].bgp.hold_time" in msg and f"= {hold}" in msg and "RFC 4271" in msg


@pytest.mark.parametrize("hold", [0, 3, 90])
def test_hold_time_allowed(tmp_path: Path, hold: int) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["bgp"]["hold_time"] = hold
    assert load_topology(_write(tmp_path, data)).interconnects[0].bgp.hold_time == hold


def test_unknown_site_and_dataplane(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["interconnects"][0]["site"] = "XYZ9"
    data["interconnects"][0]["dataplane"] = "v3"
    msg = _load_bad(tmp_path, data)
    assert "interconnects[0].site = 'XYZ9'" in msg and "interconnects[0].dataplane = 'v3'" in msg


def test_missing_field_and_bad_yaml(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    del data["customer"]
    assert "customer: required field is missing" in _load_bad(tmp_path, data)
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_topology(bad)
    with pytest.raises(ConfigError, match="cannot read file"):
        load_topology(tmp_path / "absent.yml")


def test_router_config_missing(tmp_path: Path) -> None:
    data = copy.deepcopy(GOOD)
    data["customer"]["router"] = {"kind": "frr", "config": "frr.conf"}
    msg = _load_bad(tmp_path, data)
    assert "customer.router.config" in msg and "frr.conf" in msg and "not found" in msg
