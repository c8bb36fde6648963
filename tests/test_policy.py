"""Import policy, best path and the scale table: pure functions, exhaustive cases, no root."""

from __future__ import annotations

import ipaddress

import pytest
from cnilab.sim.bgp import bestpath
from cnilab.sim.bgp.policy import DOCUMENTATION_RANGES, evaluate, evaluate_all
from cnilab.sim.bgp.scale import more_specifics
from cnilab.sim.facts import bogons, cloudflare_ranges, load_facts

ALLOW = ["198.51.100.0/24", "2001:db8:cafe::/48", "45.64.0.0/22", "2a0a:1000::/32"]


# rule -> (prefix, words the reason must contain); only these two rules accept a route
ACCEPTING = {"accept", "documentation-range"}
DECISIONS: dict[str, list[tuple[str, str]]] = {
    "accept": [
        ("45.64.0.0/22", "on the allow-list"), ("45.64.1.0/24", "on the allow-list (45.64.0.0/22)"),
        ("2a0a:1000::/32", "on the allow-list"), ("2a0a:1000:1::/48", "on the allow-list"),
    ],
    "documentation-range": [
        ("198.51.100.0/24", "documentation range, allowed in the lab"),
        ("2001:db8:cafe::/48", "documentation range, allowed in the lab"),
    ],
    "max-prefix-length": [
        ("198.51.100.128/25", "198.51.100.128/25 is longer than /24: Cloudflare accepts IPv4 /24 or shorter"),
        ("45.64.1.0/25", "Cloudflare accepts IPv4 /24 or shorter"), ("45.64.1.1/32", "longer than /24"),
        ("2001:db8:cafe::/56", "Cloudflare accepts IPv6 /48 or shorter"), ("2a0a:1000:1:1::/64", "longer than /48"),
    ],
    "default-route": [("0.0.0.0/0", "default route"), ("::/0", "default route")],
    "bogon": [("10.1.0.0/24", "10.0.0.0/8"), ("192.168.1.0/24", "bogon"), ("fc00:1::/48", "fc00::/7")],
    "allow-list": [
        ("8.8.8.0/24", "not on the customer's allow-list (198.51.100.0/24, 45.64.0.0/22)"),
        ("45.64.0.0/21", "not on the customer's allow-list"),  # supernet of the entry
        ("2001:db8:beef::/48", "2001:db8:cafe::/48, 2a0a:1000::/32"),
        ("203.0.113.0/24", "not on the customer's allow-list"),  # doc, not listed
    ],
}


@pytest.mark.parametrize(
    ("prefix", "accepted", "rule", "words"),
    [(prefix, rule in ACCEPTING, rule, words) for rule, rows in DECISIONS.items() for prefix, words in rows],
)
def test_decisions(prefix: str, accepted: bool, rule: str, words: str) -> None:
    d = evaluate(prefix, ALLOW)
    assert (d.accepted, d.rule) == (accepted, rule), d.reason
    assert words in d.reason
    assert str(d.prefix) in d.reason  # every reason names the prefix it is about


def test_limits_come_from_the_facts() -> None:
    facts = load_facts()
    for fam, allow in ((4, "45.64.0.0/16"), (6, "2a0a:1000::/32")):
        net = ipaddress.ip_network(allow)
        limit = facts.max_prefixlen(fam)
        at = next(net.subnets(new_prefix=limit))
        over = next(net.subnets(new_prefix=limit + 1))
        assert evaluate(at, [allow]).accepted
        assert evaluate(over, [allow]).rule == "max-prefix-length"


def test_every_bogon_outside_documentation_space_is_refused_even_if_listed() -> None:
    for b in bogons():
        if any(b.subnet_of(d) for d in DOCUMENTATION_RANGES if d.version == b.version):
            continue
        limit = load_facts().max_prefixlen(b.version)
        if b.prefixlen > limit:  # e.g. 100::/64: probe with the /48 that covers it
            probe = b.supernet(new_prefix=limit)
        else:
            probe = next(b.subnets(new_prefix=limit)) if b.prefixlen < limit else b
        d = evaluate(probe, [str(probe)])
        assert not d.accepted and d.rule == "bogon", (probe, d)


def test_every_documentation_range_is_accepted_only_when_listed() -> None:
    for doc in DOCUMENTATION_RANGES:
        plen = 24 if doc.version == 4 else 48
        p = next(doc.subnets(new_prefix=plen)) if doc.prefixlen < plen else doc
        assert evaluate(p, [str(doc)]).rule == "documentation-range"
        assert evaluate(p, []).rule == "allow-list"


def test_as_path_rules() -> None:
    assert evaluate("45.64.0.0/22", ALLOW, as_path=[65010], peer_asn=65010).accepted
    assert evaluate("45.64.0.0/22", ALLOW, as_path=[65010, 65010, 64999], peer_asn=65010).accepted
    loop = evaluate("45.64.0.0/22", ALLOW, as_path=[65010, 13335], peer_asn=65010)
    assert loop.rule == "cloudflare-route" and "AS13335" in loop.reason and "re-advertises" in loop.reason
    first = evaluate("45.64.0.0/22", ALLOW, as_path=[65099], peer_asn=65010)
    assert first.rule == "as-path" and "AS65010" in first.reason


def test_cloudflare_own_ranges_are_never_accepted_from_a_customer() -> None:
    for d in evaluate_all(cloudflare_ranges(), ALLOW):
        assert not d.accepted and d.rule == "cloudflare-route", d


def test_leaks_are_named_as_leaks() -> None:
    """Default route, Cloudflare's routes and the link nets are leaks (no outbound policy)."""
    links = [ipaddress.ip_network("192.0.2.10/31"), ipaddress.ip_network("10.212.0.0/31")]
    assert evaluate("0.0.0.0/0", ALLOW, as_path=[65010, 13335], link_nets=links).rule == "default-route"
    echoed = evaluate("104.16.0.0/13", ALLOW, as_path=[65010, 13335], peer_asn=65010, link_nets=links)
    assert echoed.rule == "cloudflare-route" and "back to Cloudflare" in echoed.reason
    for net in ("192.0.2.10/31", "10.212.0.0/31", "192.0.2.11/32"):
        d = evaluate(net, ALLOW, as_path=[65010], peer_asn=65010, link_nets=links)
        assert d.rule == "connected-link" and "connected routes" in d.reason, d
    # a link net inside the customer's own allow-listed block is the customer's to announce
    assert evaluate("198.51.100.0/24", ALLOW, link_nets=[ipaddress.ip_network("198.51.100.0/31")]).accepted


def test_bestpath_order() -> None:
    p = ipaddress.ip_network("198.51.100.0/24")
    nh = ipaddress.ip_address("192.0.2.11")
    a = bestpath.Candidate(session="ewr1/v4", prefix=p, nexthop=nh, as_path=(65010,), priority=200)
    b = bestpath.Candidate(session="ewr2/v4", prefix=p, nexthop=nh, as_path=(65010,), priority=150)
    c = bestpath.Candidate(session="lax1/v4", prefix=p, nexthop=nh, as_path=(65010, 65010), priority=300)
    d = bestpath.Candidate(session="sjc1/v4", prefix=p, nexthop=nh, as_path=(65010,), med=50, priority=999)
    assert [x.session for x in bestpath.rank([c, d, b, a])] == ["ewr1/v4", "ewr2/v4", "sjc1/v4", "lax1/v4"]
    assert bestpath.best([]) is None
    metrics = [m for _, m in bestpath.ranked_metrics([a, b, c])]
    assert metrics == sorted(metrics) and len(set(metrics)) == 3
    from cnilab.sim.topology.plan import BACKUP_METRIC

    assert max(metrics) < BACKUP_METRIC  # the internet backup route stays the last resort


def test_scale_table() -> None:
    t = more_specifics(5000)
    assert len(t) == len(set(t)) == 5000
    assert t == more_specifics(5000)  # deterministic
    ranges = cloudflare_ranges()
    for p in t:
        assert any(p.version == r.version and p.subnet_of(r) for r in ranges)
        assert p.prefixlen <= load_facts().max_prefixlen(p.version)
    with pytest.raises(ValueError, match="hold only"):
        more_specifics(5, ranges=[ipaddress.ip_network("104.16.0.0/22")])
