"""Incident packs (topologies/incidents/): each loads, names a registered kind and states what a
correct config does; where the simulator can model the event its scenario passes; on real labs the
template behaves correctly and a broken config fails with the cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from cnilab.sim.cli.main import app
from cnilab.sim.incidents.kinds import KINDS
from cnilab.sim.incidents.runner import load_incident
from cnilab.sim.topology.load import ConfigError
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
INCIDENTS = REPO / "topologies" / "incidents"
PACKS = sorted(INCIDENTS.glob("*.yml"))
LEAK_EDIT = ("  neighbor 203.0.113.0 prefix-list CNILAB-ANNOUNCE-V4 out",
             "  neighbor 203.0.113.0 route-map ALLOW-ALL out")
PEER_LEAK_EDIT = ("  neighbor 203.0.113.4 prefix-list CNILAB-ANNOUNCE-V4 out",
                  "  neighbor 203.0.113.4 route-map ALLOW-ALL out")
MAX_PREFIX_EDIT = ("  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out",
                   "  neighbor 192.0.2.10 prefix-list CNILAB-ANNOUNCE-V4 out\n  neighbor 192.0.2.10 maximum-prefix 100")
WEIGHT_EDIT = ("route-map CNILAB-FROM-CF-EWR1-V4 permit 5\n match community CNILAB-GSHUT\n set local-preference 0\n",
               "route-map CNILAB-FROM-CF-EWR1-V4 permit 5\n set weight 100\n")
"""EWR1 preferred with a weight on everything it sends: compared before local-pref, so bgpd's own
GRACEFUL_SHUTDOWN local-pref 0 loses (a weight only on the entry after the GSHUT match would not)."""
ROOMY_EDIT = (MAX_PREFIX_EDIT[0], MAX_PREFIX_EDIT[1].replace("maximum-prefix 100", "maximum-prefix 1000 90 restart 5"))


def test_the_four_packs_load_with_a_registered_kind() -> None:
    assert {p.stem for p in PACKS} == {"leak-to-transit", "pop-maintenance-withdrawal", "md5-rotation-one-side",
                                       "max-prefix-table-growth"}
    for p in PACKS:
        inc = load_incident(p)
        assert inc.kind in KINDS and inc.topology.is_file() and len(inc.correct) > 40
        assert inc.simulate is None or inc.simulate.is_file()


@pytest.mark.parametrize("pack", [p for p in PACKS if load_incident(p).simulate], ids=lambda p: p.stem)
def test_simulator_models_the_incident(pack: Path) -> None:
    from cnilab.sim.scenario.executor import open_sim
    from cnilab.sim.scenario.loader import load_scenario
    from cnilab.sim.scenario.runner import run_scenario

    inc = load_incident(pack)
    assert inc.simulate is not None
    loaded = load_scenario(inc.simulate)
    with open_sim(loaded, 1) as ex:
        rep = run_scenario(loaded, ex, 1)
    assert rep.passed, [(s.description, s.reason) for s in rep.steps if s.status == "fail"]


def _edits(topology: str, tmp: Path) -> dict[str, Path]:
    """Realistic mistakes on the shipped FRR template (the same edits the real-lab tests use)."""
    return {"leak": _render(topology, LEAK_EDIT, tmp / "leak"),
            "peerleak": _render(topology, PEER_LEAK_EDIT, tmp / "p"),
            "maxprefix": _render("v1-gre.yml", MAX_PREFIX_EDIT, tmp / "mp"),
            "roomy": _render("v1-gre.yml", ROOMY_EDIT, tmp / "roomy")}


def test_every_pack_has_a_simulator_model_and_the_template_passes() -> None:
    from cnilab.sim.incidents.simulate import SIM_KINDS, simulate_incident

    assert set(SIM_KINDS) == set(KINDS)
    for p in PACKS:
        res = simulate_incident(p)
        assert res.passed and res.cause is None, (p.stem, res.cause)
        assert res.lab == "(simulator)"


def test_simulator_names_the_leak_the_ignored_gshut_and_the_max_prefix_trip(tmp_path: Path) -> None:
    from cnilab.sim.incidents.simulate import simulate_incident

    cfg = _edits("v1-gre-transit.yml", tmp_path)
    leak = simulate_incident(INCIDENTS / "leak-to-transit.yml", cfg["leak"])
    assert not leak.passed and "104.16.0.0/13 (path 65010 13335)" in (leak.cause or "")
    assert "neighbor 203.0.113.0 prefix-list TO-TRANSIT out" in leak.fix["frr"]
    assert leak.measured["announced_to_peer"] == ["198.51.100.0/24"]  # the peer's filter still holds
    peer = simulate_incident(INCIDENTS / "leak-to-transit.yml", cfg["peerleak"])
    assert not peer.passed and "re-advertised to your peer" in (peer.cause or "")
    assert "8.8.8.0/24 (path 65010 64500 15169)" in (peer.cause or "")  # the transit's routes, to the peer
    mp = simulate_incident(INCIDENTS / "max-prefix-table-growth.yml", cfg["maxprefix"])
    assert not mp.passed
    assert "your maximum-prefix 100 fired when Cloudflare's table grew to 215 IPv4 routes" in (mp.cause or "")
    weight = _render("ha-three-site.yml", WEIGHT_EDIT, tmp_path / "w")
    pop = simulate_incident(INCIDENTS / "pop-maintenance-withdrawal.yml", weight)
    assert not pop.passed and "GRACEFUL_SHUTDOWN on ewr1 ignored" in (pop.cause or "")
    assert "set weight" in pop.fix["frr"]
    assert pop.measured["defeated_by"][0].startswith("route-map CNILAB-FROM-CF-EWR1-V4 5 sets weight 100 on ")
    roomy = simulate_incident(INCIDENTS / "max-prefix-table-growth.yml", cfg["roomy"])
    assert roomy.passed and not roomy.warnings and roomy.measured["limit"] == 1000


def test_simulator_refuses_what_it_cannot_model(tmp_path: Path) -> None:
    from cnilab.sim.bgp.customer_policy import Unsupported
    from cnilab.sim.incidents.simulate import simulate_incident

    cfg = _render("ha-three-site.yml", None, tmp_path)
    with pytest.raises(Unsupported, match="models the shipped template's behaviour"):
        simulate_incident(INCIDENTS / "md5-rotation-one-side.yml", cfg)
    bird = tmp_path / "bird.conf"
    bird.write_text("protocol bgp cf { local as 65010; neighbor 192.0.2.10 as 13335; }\n")
    with pytest.raises(Unsupported, match="FRR config"):
        simulate_incident(INCIDENTS / "leak-to-transit.yml", bird)
    redis = cfg.read_text().replace(" address-family ipv4 unicast\n", " address-family ipv4 unicast\n"
                                    "  redistribute static\n", 1)
    (tmp_path / "r.conf").write_text(redis)
    with pytest.raises(Unsupported, match="redistribution is not modelled"):
        simulate_incident(INCIDENTS / "leak-to-transit.yml", tmp_path / "r.conf")
    res = CliRunner().invoke(app, ["incident", str(INCIDENTS / "leak-to-transit.yml"), "--sim",
                                   "--customer-config", str(bird)])
    assert res.exit_code == 2 and "the simulator cannot judge this" in res.stderr


def test_unknown_kind_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("topology: x.yml\nkind: meteor-strike\ncorrect: nothing\n")
    with pytest.raises(ConfigError, match="kind = 'meteor-strike': unknown incident kind"):
        load_incident(bad)
    res = CliRunner().invoke(app, ["incident", str(bad)])
    assert res.exit_code == 2


def _render(topology: str, edit: tuple[str, str] | None, tmp: Path) -> Path:
    from cnilab.sim.routers.frr import render_frr
    from cnilab.sim.topology import build_plan, load_topology

    text = render_frr(build_plan(load_topology(REPO / "topologies" / topology), "x"))
    if edit:
        assert edit[0] in text
        text = text.replace(edit[0], edit[1]).replace("!\nrouter bgp", "route-map ALLOW-ALL permit 10\nexit\n!\n"
                                                                          "router bgp", 1)
    tmp.mkdir(parents=True, exist_ok=True)
    f = tmp / "frr.conf"
    f.write_text(text)
    return f


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
@pytest.mark.parametrize("pack, topology, edit, want", [
    ("leak-to-transit", "v1-gre-transit.yml", LEAK_EDIT, "104.16.0.0/13 (path 65010 13335)"),
    ("max-prefix-table-growth", "v1-gre.yml", MAX_PREFIX_EDIT,
     "your maximum-prefix 100 fired when Cloudflare's table grew to 215 IPv4 routes"),
    ("md5-rotation-one-side", "ha-three-site.yml", None, None),
    ("pop-maintenance-withdrawal", "ha-three-site.yml", None, None),
    ("pop-maintenance-withdrawal", "ha-three-site.yml", WEIGHT_EDIT, "GRACEFUL_SHUTDOWN on ewr1 ignored"),
], ids=["leak-fails", "max-prefix-fails", "md5-template-passes", "pop-maintenance-template-passes",
        "pop-maintenance-weight-fails"])
def test_incident_on_a_real_lab(pack: str, topology: str, edit: tuple[str, str] | None, want: str | None,
                                tmp_path: Path, short_state: Path) -> None:
    from cnilab.sim.incidents.runner import run_incident

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
    # the simulator gives the same verdict and the same cause (for the template: on its own scenario)
    from cnilab.sim.incidents.simulate import simulate_incident

    sim = simulate_incident(REPO / "topologies" / "incidents" / f"{pack}.yml", cfg if edit else None)
    if pack == "pop-maintenance-withdrawal":  # the loss figures are each executor's own measurement
        assert (sim.passed, _shape(sim.cause)) == (res.passed, _shape(res.cause)), (sim.cause, res.cause)
    else:
        assert (sim.passed, sim.cause) == (res.passed, res.cause)
    assert sim.fix == res.fix and sim.warnings == res.warnings


def _shape(cause: str | None) -> str:
    import re

    return re.sub(r"\d+", "N", cause or "")
