"""Cloudflare's import policy for routes a customer announces over a CNI.

Pure functions over facts from :mod:`cnilab.sim.facts`, so the live edge (``cnilab.sim.edge.driver``), the
simulator and the API's pre-flight checks all refuse the same prefixes for the same reason. Every
decision carries a reason an engineer can act on without reading this file: it names the prefix,
the limit and what Cloudflare accepts instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

from cnilab.sim.facts import bogons, cloudflare_ranges, load_facts
from pydantic import BaseModel, ConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

Rule = Literal[
    "default-route", "cloudflare-route", "connected-link", "max-prefix-length", "bogon", "allow-list", "as-path",
    "accept", "documentation-range", "rpki-invalid",
]

LEAK_RULES: frozenset[str] = frozenset({"default-route", "cloudflare-route", "connected-link"})
"""Rules that mean the customer's router has no (or a leaky) outbound policy toward Cloudflare: it
sends routes that are not its own to announce, whatever the allow-list says."""

DOCUMENTATION_RANGES: tuple[Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
"""RFC 5737 / RFC 3849 documentation space: bogons on the internet, but what labs are built from."""


class PolicyDecision(BaseModel):
    """One prefix, accepted or not, and why (``rule`` is stable for tests and dashboards)."""

    model_config = ConfigDict(frozen=True)

    prefix: Network
    accepted: bool
    reason: str
    rule: Rule


def _within(prefix: Network, nets: Iterable[Network]) -> Network | None:
    """The first of ``nets`` that contains ``prefix`` (same family), or None."""
    for net in nets:
        if net.version == prefix.version and prefix.subnet_of(net):  # type: ignore[arg-type]
            return net
    return None


def _overlapping(prefix: Network, nets: Iterable[Network]) -> Network | None:
    for net in nets:
        if net.version == prefix.version and prefix.overlaps(net):  # type: ignore[arg-type]
            return net
    return None


def evaluate(
    prefix: Network | str,
    allow_list: Sequence[Network | str],
    *,
    as_path: Sequence[int] | None = None,
    peer_asn: int | None = None,
    link_nets: Sequence[Network] = (),
) -> PolicyDecision:
    """Decide whether Cloudflare accepts ``prefix`` from a customer whose allow-list is ``allow_list``.

    Order matters for the reason shown: the most fundamental problem wins (a default route is
    refused as such even though it is also not on the allow-list). ``as_path``/``peer_asn`` are
    optional so the same function serves pre-flight checks that have no UPDATE yet. ``link_nets``
    are the interconnects' own /31 (/127) and tunnel nets: a customer announcing them redistributes
    its connected routes, which is a leak even when the prefix happens to be allowed elsewhere.
    """
    net = ipaddress.ip_network(prefix, strict=False) if isinstance(prefix, str) else prefix
    allowed = [ipaddress.ip_network(p, strict=False) if isinstance(p, str) else p for p in allow_list]
    facts = load_facts()
    fam = "IPv4" if net.version == 4 else "IPv6"

    def no(rule: Rule, reason: str) -> PolicyDecision:
        return PolicyDecision(prefix=net, accepted=False, reason=reason, rule=rule)

    if net.prefixlen == 0 and facts.prefix_rules.get("reject_default_route", True):
        return no("default-route",
                  f"{net} is a default route: Cloudflare never accepts a default route from a customer")
    cf_asn = facts.cloudflare_asn
    if as_path is not None and cf_asn in as_path:
        return no("cloudflare-route",
                  f"{net} has AS{cf_asn} in its AS path {list(as_path)}: your router re-advertises a route it "
                  "learned from Cloudflare back to Cloudflare (a route leak; Cloudflare drops it as a loop)")
    cf_range = _within(net, cloudflare_ranges())
    if cf_range is not None:
        return no("cloudflare-route",
                  f"{net} is inside Cloudflare's own range {cf_range}: a customer never announces Cloudflare's "
                  "prefixes back (a route leak)")
    link = _overlapping(net, link_nets)
    if link is not None and _within(net, allowed) is None:
        return no("connected-link",
                  f"{net} is the interconnect link net {link}: your router announces its connected routes "
                  "(redistribute connected / a direct protocol exported to BGP)")
    max_len = facts.max_prefixlen(net.version)
    if net.prefixlen > max_len:
        return no("max-prefix-length",
                  f"{net} is longer than /{max_len}: Cloudflare accepts {fam} /{max_len} or shorter")
    if as_path and peer_asn is not None and as_path[0] != peer_asn:
        return no("as-path", f"{net} has AS path {list(as_path)}: the first AS must be the customer's AS{peer_asn}")
    doc = _within(net, DOCUMENTATION_RANGES)
    if doc is None:
        bogon = _overlapping(net, bogons())
        if bogon is not None:
            return no("bogon", f"{net} is bogon space ({bogon} is reserved/unallocated): it is never routed "
                               "on the internet")
    on_list = _within(net, allowed)
    if on_list is None:
        listed = ", ".join(str(p) for p in allowed if p.version == net.version) or f"no {fam} prefixes"
        return no("allow-list", f"{net} is not on the customer's allow-list ({listed}): ask Cloudflare to add "
                                "it (LOA/IRR) or stop announcing it")
    if doc is not None:
        return PolicyDecision(prefix=net, accepted=True, rule="documentation-range",
                              reason=f"{net} is on the allow-list ({on_list}); documentation range, allowed in the lab "
                                     f"({doc} is RFC 5737/3849 space, never routed on the internet)")
    return PolicyDecision(prefix=net, accepted=True, rule="accept",
                          reason=f"{net} is on the allow-list ({on_list}) and /{max_len} or shorter")


def evaluate_all(prefixes: Iterable[Network | str], allow_list: Sequence[Network | str]) -> list[PolicyDecision]:
    """Pre-flight a whole announcement list (what the API and `cnilab test` show before a lab runs)."""
    return [evaluate(p, allow_list) for p in prefixes]
