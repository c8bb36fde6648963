"""The customer's FRR config as the simulator's policy model (cnilab.sim.bgp.customer_policy): each construct
judged as bgpd judges it, and what it cannot judge refused rather than guessed."""

from __future__ import annotations

import ipaddress

import pytest
from cnilab.sim.bgp.customer_policy import Unsupported, parse_frr

N = ipaddress.ip_network
HEAD = "frr defaults traditional\n!\n"


def _bgp(neighbor_lines: str, extra: str = "", top: str = "") -> str:
    return (HEAD + extra + "router bgp 65010\n" + top + " neighbor 203.0.113.0 remote-as 64500\n"
            " address-family ipv4 unicast\n  network 198.51.100.0/24\n" + neighbor_lines + " exit-address-family\n"
            "exit\n")


def test_no_outbound_policy_sends_nothing_unless_ebgp_requires_policy_is_off() -> None:
    pol = parse_frr(_bgp(""))
    assert pol.requires_policy and pol.export("203.0.113.0", N("104.16.0.0/13"), [13335]) is None
    pol = parse_frr(_bgp("", top=" no bgp ebgp-requires-policy\n"))
    assert pol.export("203.0.113.0", N("104.16.0.0/13"), [13335]) == [65010, 13335]
    assert not parse_frr("frr defaults datacenter\nrouter bgp 65010\n").requires_policy


def test_prefix_list_ge_le_and_implicit_deny() -> None:
    pol = parse_frr(_bgp("  neighbor 203.0.113.0 prefix-list OUT out\n",
                         "ip prefix-list OUT seq 5 deny 198.51.100.128/25\n"
                         "ip prefix-list OUT seq 10 permit 198.51.100.0/24 le 25\n"))
    assert pol.export("203.0.113.0", N("198.51.100.0/24"), []) == [65010]
    assert pol.export("203.0.113.0", N("198.51.100.0/25"), []) == [65010]
    assert pol.export("203.0.113.0", N("198.51.100.128/25"), []) is None
    assert pol.export("203.0.113.0", N("104.16.0.0/13"), [13335]) is None


def test_as_path_filter_with_frr_underscore_and_route_map_prepend() -> None:
    pol = parse_frr(_bgp("  neighbor 203.0.113.0 filter-list MINE out\n  neighbor 203.0.113.0 route-map PRE out\n",
                         "bgp as-path access-list MINE seq 5 deny _13335_\n"
                         "bgp as-path access-list MINE seq 10 permit .*\n"
                         "route-map PRE deny 5\n match ip address prefix-list LONG\nexit\n"
                         "route-map PRE permit 10\n set as-path prepend 65010 65010\nexit\n"
                         "ip prefix-list LONG seq 5 permit 0.0.0.0/0 ge 25\n"))
    assert pol.export("203.0.113.0", N("198.51.100.0/24"), []) == [65010, 65010, 65010]
    assert pol.export("203.0.113.0", N("104.16.0.0/13"), [13335]) is None  # _13335_ matches a lone 13335
    assert pol.export("203.0.113.0", N("8.8.8.0/24"), [64500, 15169]) == [65010, 65010, 65010, 64500, 15169]
    assert pol.export("203.0.113.0", N("198.51.100.0/25"), []) is None  # route-map deny 5


def test_max_prefix_and_default_originate_are_read() -> None:
    pol = parse_frr(_bgp("  neighbor 203.0.113.0 maximum-prefix 100 90 restart 5\n"
                         "  neighbor 203.0.113.0 default-originate\n"))
    nb = pol.neighbors["203.0.113.0"]
    assert (nb.max_prefix, nb.max_prefix_restart, nb.max_prefix_warning_only, nb.default_originate) == \
        (100, 5, False, True)
    assert pol.networks == [N("198.51.100.0/24")]


def test_what_is_not_modelled_is_refused() -> None:
    pol = parse_frr(_bgp("  neighbor 203.0.113.0 route-map COMM out\n",
                         "route-map COMM permit 10\n match community CUST\nexit\n"))
    with pytest.raises(Unsupported, match="matches communities outbound"):
        pol.export("203.0.113.0", N("198.51.100.0/24"), [])
    with pytest.raises(Unsupported, match="redistribution"):
        parse_frr(_bgp("  redistribute connected\n"))
    with pytest.raises(Unsupported, match="no `router bgp"):
        parse_frr("protocol bgp x { }\n")


def test_peer_group_settings_are_inherited_and_shutdown_sends_nothing() -> None:
    text = (HEAD + "route-map ALL permit 10\nexit\nrouter bgp 65010\n neighbor UP peer-group\n"
            " neighbor UP remote-as 64500\n neighbor 203.0.113.0 peer-group UP\n neighbor 203.0.113.4 remote-as 64501\n"
            " neighbor 203.0.113.4 shutdown\n address-family ipv4 unicast\n  neighbor UP route-map ALL out\n"
            "  neighbor 203.0.113.4 route-map ALL out\n exit-address-family\nexit\n")
    pol = parse_frr(text)
    nb = pol.neighbor("203.0.113.0")
    assert nb is not None and (nb.remote_as, nb.route_map_out) == (64500, "ALL")
    assert pol.export("203.0.113.0", N("104.16.0.0/13"), [13335]) == [65010, 13335]  # the group leaks
    assert pol.export("203.0.113.4", N("104.16.0.0/13"), [13335]) is None


def test_graceful_shutdown_is_defeated_only_by_a_weight_on_the_entry_the_route_meets_first() -> None:
    cf = [N("104.16.0.0/13")]
    gshut_first = (HEAD + "bgp community-list standard GS seq 5 permit graceful-shutdown\n"
                   "route-map IN permit 5\n match community GS\n set local-preference 0\nexit\n"
                   "route-map IN permit 10\n set weight 100\nexit\nrouter bgp 65010\n"
                   " neighbor 192.0.2.10 remote-as 13335\n address-family ipv4 unicast\n"
                   "  neighbor 192.0.2.10 route-map IN in\n exit-address-family\nexit\n")
    assert parse_frr(gshut_first).gshut_defeated("192.0.2.10", cf, [13335]) is None
    weight_all = gshut_first.replace("route-map IN permit 5\n match community GS\n set local-preference 0\n",
                                     "route-map IN permit 5\n set weight 100\n")
    why = parse_frr(weight_all).gshut_defeated("192.0.2.10", cf, [13335])
    assert why is not None and "route-map IN 5 sets weight 100" in why
