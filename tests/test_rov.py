"""Route origin validation at the edge (RFC 6811) against the customer's ROAs (inline or RFC 8416 SLURM)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from cnilab.sim.bgp.policy import evaluate
from cnilab.sim.bgp.rov import Roa, Rpki, apply, validate
from cnilab.sim.topology.load import ConfigError, load_topology

REPO = Path(__file__).resolve().parent.parent
NET = ipaddress.ip_network("198.51.100.0/24")
ROA = Roa(prefix=NET, max_length=24, origin=65010)


def test_rfc6811_states() -> None:
    assert validate(NET, [65010], [ROA])[0] == "valid"
    assert validate(ipaddress.ip_network("203.0.113.0/24"), [65010], [ROA])[0] == "not-found"
    state, why = validate(NET, [65011], [ROA])
    assert state == "invalid"
    assert why == "ROA for 198.51.100.0/24 allows max length 24, origin AS65010; you announced /24 from AS65011"
    short = Roa(prefix=ipaddress.ip_network("198.51.100.0/23"), origin=65010)  # max length = 23
    assert validate(NET, [65010], [short])[0] == "invalid"
    assert validate(NET, [65010], [short, ROA])[0] == "valid"  # any matching ROA makes it valid
    assert validate(NET, [65010], [Roa(prefix=NET, origin=0)])[0] == "invalid"  # AS0: nobody may


def test_invalid_is_refused_only_when_otherwise_accepted() -> None:
    dec = evaluate(NET, [NET], as_path=[65011], peer_asn=65011)
    assert dec.accepted
    out = apply(dec, [65011], [ROA])
    assert not out.accepted and out.rule == "rpki-invalid" and "origin AS65010" in out.reason
    assert apply(dec, [65011], None) == dec  # no ROAs given: no ROV


def test_slurm_file_and_bad_roas(tmp_path: Path) -> None:
    slurm = tmp_path / "roas.slurm.json"
    slurm.write_text(json.dumps({"slurmVersion": 1,
                                 "validationOutputFilters": {"prefixFilters": [], "bgpsecFilters": []},
                                 "locallyAddedAssertions": {"prefixAssertions": [
                                     {"asn": 65010, "prefix": "198.51.100.0/24", "maxPrefixLength": 24}],
                                     "bgpsecAssertions": []}}))
    topo = (REPO / "topologies" / "v1-gre.yml").read_text() + "rpki: {slurm: roas.slurm.json}\n"
    (tmp_path / "t.yml").write_text(topo)
    t = load_topology(tmp_path / "t.yml")
    assert t.rpki is not None and t.rpki.roas == [ROA]
    (tmp_path / "t.yml").write_text(topo.replace("roas.slurm.json", "nope.json"))
    with pytest.raises(ConfigError, match=r"rpki.*: slurm file .*nope.json: No such file"):
        load_topology(tmp_path / "t.yml")
    with pytest.raises(ValueError, match="max_length 16"):
        Rpki(roas=[{"prefix": "198.51.100.0/24", "max_length": 16, "origin": 65010}])


@pytest.mark.root
@pytest.mark.daemons
def test_edge_refuses_an_roa_invalid_announcement_with_the_reason(tmp_path: Path) -> None:
    from cnilab.sim.edge.control import EdgeClient
    from cnilab.sim.testing import wait_for

    from tests.labs import running_lab

    def wrong_roa(t):
        return t.model_copy(update={"rpki": Rpki(roas=[Roa(prefix=NET, max_length=24, origin=65011)])})

    with running_lab(tmp_path, "v1-gre.yml", wrong_roa, wait_prefixes=False) as lab:
        edge = EdgeClient(lab.state.control["edge"])  # type: ignore[attr-defined]
        want = {"198.51.100.0/24", "2001:db8:cafe::/48"}

        def both():
            rx = {r.prefix: r for r in edge.routes().received if r.prefix in want}
            return rx if set(rx) == want else None

        got = wait_for(both, 90, what="both customer prefixes at the edge")
        v4, v6 = got["198.51.100.0/24"], got["2001:db8:cafe::/48"]
        assert not v4.accepted and v4.rule == "rpki-invalid" and v4.rov == "invalid"
        assert v4.reason == ("198.51.100.0/24 is RPKI invalid: ROA for 198.51.100.0/24 allows max length 24, "
                             "origin AS65011; you announced /24 from AS65010")
        assert v6.accepted and v6.rov == "not-found"
        assert "198.51.100.0/24" not in {r.prefix for r in edge.routes().installed}
        s = edge.session("ewr1/v4")
        assert [r.prefix for r in s.rejected] == ["198.51.100.0/24"]
