"""Incident packs (topologies/incidents/): each loads, names a registered kind and states what a
correct config does; where the simulator can model the event its scenario passes; on real labs the
template behaves correctly and a broken config fails with the cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sim.cli.main import app
from sim.incidents.kinds import KINDS
from sim.incidents.runner import load_incident
from sim.topology.load import ConfigError

REPO = Path(__file__).resolve().parent.parent
PACKS = sorted((REPO / "topologies" / "incidents").glob("*.yml"))


def test_the_four_packs_load_with_a_registered_kind() -> None:
    assert {p.stem for p in PACKS} == {"leak-to-transit", "pop-maintenance-withdrawal", "md5-rotation-one-side",
                                       "max-prefix-table-growth"}
    for p in PACKS:
        inc = load_incident(p)
        assert inc.kind in KINDS and inc.topology.is_file() and len(inc.correct) > 40
        assert inc.simulate is None or inc.simulate.is_file()


@pytest.mark.parametrize("pack", [p for p in PACKS if load_incident(p).simulate], ids=lambda p: p.stem)
def test_simulator_models_the_incident(pack: Path) -> None:
    from sim.scenario.executor import open_sim
    from sim.scenario.loader import load_scenario
    from sim.scenario.runner import run_scenario

    inc = load_incident(pack)
    assert inc.simulate is not None
    loaded = load_scenario(inc.simulate)
    with open_sim(loaded, 1) as ex:
        rep = run_scenario(loaded, ex, 1)
    assert rep.passed, [(s.description, s.reason) for s in rep.steps if s.status == "fail"]


def test_unknown_kind_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("topology: x.yml\nkind: meteor-strike\ncorrect: nothing\n")
    with pytest.raises(ConfigError, match="kind = 'meteor-strike': unknown incident kind"):
        load_incident(bad)
    res = CliRunner().invoke(app, ["incident", str(bad)])
    assert res.exit_code == 2


def _render(topology: str, edit: tuple[str, str] | None, tmp: Path) -> Path:
    from sim.routers.frr import render_frr
    from sim.topology import build_plan, load_topology

    text = render_frr(build_plan(load_topology(REPO / "topologies" / topology), "x"))
    if edit:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1]).replace("!\nrouter bgp", "route-map ALLOW-ALL permit 10\nexit\n!\n"
                                                                          "router bgp", 1)
    f = tmp / "frr.conf"
    f.write_text(text)
    return f


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("pack, topology, edit, want", [
    ("leak-to-transit", "v1-gre-transit.yml",
     ("  neighbor 203.0.113.0 prefix-list CNILAB-ANNOUNCE-V4 out", "  neighbor 203.0.113.0 route-map ALLOW-ALL out"),
     "104.16.0.0/13 (path 65010 13335)"),
    ("max-prefix-table-growth", "v1-gre.yml",
     ("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
      "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n  neighbor 192.0.2.10 maximum-prefix 100"),
     "your maximum-prefix 100 fired when Cloudflare's table grew to 215 IPv4 routes"),
    ("md5-rotation-one-side", "ha-three-site.yml", None, None),
    ("pop-maintenance-withdrawal", "ha-three-site.yml", None, None),
], ids=["leak-fails", "max-prefix-fails", "md5-template-passes", "pop-maintenance-template-passes"])
def test_incident_on_a_real_lab(pack: str, topology: str, edit: tuple[str, str] | None, want: str | None,
                                tmp_path: Path, short_state: Path) -> None:
    from sim.incidents.runner import run_incident

    cfg = _render(topology, edit, tmp_path)
    res = run_incident(REPO / "topologies" / "incidents" / f"{pack}.yml", cfg)
    if want is None:
        assert res.passed, res.cause
        if pack == "md5-rotation-one-side":
            m = res.measured
            assert "MD5" in m["diagnosis"] and m["path_after"] == "ewr2" and m["re_established"]
        else:
            assert res.measured["lost"] == 0 and res.measured["path_after_tag"] == "ewr2"
    else:
        assert not res.passed and want in (res.cause or ""), res.cause
        assert res.fix
