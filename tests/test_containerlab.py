"""containerlab export: schema-valid, identical to the committed exports, and faithful to the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cnilab.sim.cli.main import app
from cnilab.sim.export.containerlab import (
    SCHEMA_CANDIDATES,
    ExportError,
    interface_map,
    render_export,
    validate_clab,
    write_export,
)
from cnilab.sim.topology.load import load_topology
from cnilab.sim.topology.plan import build_plan
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "topologies").glob("*.yml"))
COMMITTED = REPO / "containerlab"
REGENERATE = "regenerate with: .venv/bin/cnilab export containerlab --all -o containerlab/"


def _schema() -> dict:
    path = next(p for p in SCHEMA_CANDIDATES if p.is_file())
    return json.loads(path.read_text())


def _export(topo: Path) -> dict[str, str]:
    return render_export(build_plan(load_topology(topo)), source=topo.name)


def test_every_shipped_topology_is_exported() -> None:
    assert SHIPPED, "no shipped topologies found"
    for topo in SHIPPED:
        assert (COMMITTED / topo.stem / f"{topo.stem}.clab.yml").is_file(), f"{topo.stem} not exported; {REGENERATE}"


@pytest.mark.parametrize("topo", SHIPPED, ids=lambda p: p.stem)
def test_export_validates_against_containerlab_schema(topo: Path) -> None:
    files = _export(topo)
    doc = yaml.safe_load(files[f"{topo.stem}.clab.yml"])
    errors = list(Draft202012Validator(_schema()).iter_errors(doc))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("topo", SHIPPED, ids=lambda p: p.stem)
def test_committed_export_matches_exporter(topo: Path) -> None:
    want = _export(topo)
    lab_dir = COMMITTED / topo.stem
    have = {str(p.relative_to(lab_dir)): p.read_text() for p in lab_dir.rglob("*") if p.is_file()}
    assert sorted(have) == sorted(want), f"file list differs; {REGENERATE}"
    for rel, content in want.items():
        assert have[rel] == content, f"containerlab/{topo.stem}/{rel} is stale; {REGENERATE}"


@pytest.mark.parametrize("topo", SHIPPED, ids=lambda p: p.stem)
def test_links_carry_plan_mtu_and_eth_names(topo: Path) -> None:
    plan = build_plan(load_topology(topo))
    doc = yaml.safe_load(_export(topo)[f"{topo.stem}.clab.yml"])
    ifmap = interface_map(plan)
    assert len(doc["topology"]["links"]) == len(plan.links)
    for link, lk in zip(doc["topology"]["links"], plan.links, strict=True):
        # containerlab's default MTU is 9500: the export must always say the plan's
        assert link["mtu"] == lk.mtu
        assert link["endpoints"] == [f"{lk.a.node}:{ifmap[lk.a.node][lk.a.iface]}",
                                     f"{lk.b.node}:{ifmap[lk.b.node][lk.b.iface]}"]
    for node, m in ifmap.items():
        assert sorted(m.values()) == [f"eth{i}" for i in range(1, len(m) + 1)], node


def test_v1_export_builds_vlan_gre_and_renamed_router_config() -> None:
    topo = REPO / "topologies" / "v1-gre.yml"
    files = _export(topo)
    doc = yaml.safe_load(files["v1-gre.clab.yml"])
    cf, cust = doc["topology"]["nodes"]["cf"], doc["topology"]["nodes"]["cust"]
    # interconnect ewr1 is the second interface on both routers (after inet0 / lan0)
    assert "ip link add link eth2 name eth2.100 type vlan id 100" in cf["exec"]
    assert "ip -4 addr add 192.0.2.11/31 dev eth2.100" in cust["exec"]
    assert "ip link set gre-ewr1 mtu 1476 up" in cust["exec"]
    assert cust["image"].startswith("quay.io/frrouting/frr:8.4")
    assert cf["image"].startswith("cnilab/edge:")
    assert cf["sysctls"]["net.ipv4.ip_forward"] == 1
    assert doc["topology"]["nodes"]["inet"]["exec"][-1] == "ip -6 route add ::/0 via 2606:4700:10::1"
    assert yaml.safe_load(files["interfaces.yml"])["cust"] == {"eth1": "lan0", "eth2": "ewr1"}
    if "cust/frr.conf" in files:  # the router templates render from the renamed plan
        assert "192.0.2.10 remote-as 13335" in files["cust/frr.conf"]
        assert "ewr1" not in files["cust/frr.conf"].replace("ewr1 IPv", "").replace("-EWR1-", "")
    if "cf/edge.json" in files:
        spec = json.loads(files["cf/edge.json"])
        assert {s["cf_iface"] for s in spec["sessions"]} == {"eth2.100"}


def test_schema_validation_rejects_a_broken_document() -> None:
    plan = build_plan(load_topology(REPO / "topologies" / "v2-direct.yml"))
    doc = yaml.safe_load(render_export(plan)["v2-direct.clab.yml"])
    doc["topology"]["links"][0]["mtu"] = "jumbo"
    doc["topology"]["nodes"]["cf"]["kind"] = "not-a-kind"
    with pytest.raises(ExportError) as err:
        validate_clab(doc, "broken.clab.yml")
    msg = str(err.value)
    assert "broken.clab.yml" in msg
    assert "topology.links.0.mtu: 'jumbo'" in msg and "topology.nodes.cf.kind: 'not-a-kind'" in msg


def test_write_export_replaces_previous_export(tmp_path: Path) -> None:
    plan = build_plan(load_topology(REPO / "topologies" / "v2-direct.yml"))
    (tmp_path / "v2-direct").mkdir()
    (tmp_path / "v2-direct" / "stale.txt").write_text("old")
    res = write_export(plan, tmp_path)
    assert not (tmp_path / "v2-direct" / "stale.txt").exists()
    assert (tmp_path / "v2-direct" / "v2-direct.clab.yml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v2-direct"]  # no temp dirs left
    assert "cf/plan.json" in res.files


def test_cli_exports_and_refuses_bad_input_without_writing(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    ok = runner.invoke(app, ["export", "containerlab", str(REPO / "topologies" / "v2-direct.yml"), "-o", str(out),
                             "--lab", "mylab", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["lab"] == "mylab"
    assert yaml.safe_load((out / "mylab" / "mylab.clab.yml").read_text())["name"] == "mylab"

    bad = tmp_path / "bad.yml"
    bad.write_text((REPO / "topologies" / "v2-direct.yml").read_text().replace("hold_time: 9", "hold_time: 2"))
    out2 = tmp_path / "out2"
    res = runner.invoke(app, ["export", "containerlab", str(bad), "-o", str(out2)])
    assert res.exit_code != 0
    assert "bad.yml" in res.output and "hold_time" in res.output and "2" in res.output
    assert not out2.exists()
