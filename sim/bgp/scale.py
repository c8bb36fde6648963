"""A deterministic table of N more-specifics of Cloudflare's ranges, for scale tests.

Real AS13335 announces far more than the 22 published ranges; a customer router must cope with
thousands of routes over a CNI. These are carved as IPv4 /24s (the longest Cloudflare accepts, so
they would survive a customer's mirror-image filter) and, once those run out, IPv6 /48s. The same N
always gives the same prefixes, so benchmarks are comparable between runs.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator, Sequence

from cnilab.sim.facts import cloudflare_ranges, load_facts

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _carve(ranges: Sequence[Network], version: int, plen: int) -> Iterator[Network]:
    for net in sorted((r for r in ranges if r.version == version), key=lambda r: (r.prefixlen, r)):
        if net.prefixlen < plen:
            yield from net.subnets(new_prefix=plen)


def more_specifics(n: int, ranges: Sequence[Network] | None = None) -> list[Network]:
    """``n`` more-specifics (IPv4 first, then IPv6); raises ValueError if the ranges cannot hold n."""
    if n < 0:
        raise ValueError(f"scale_routes {n} is negative")
    ranges = list(ranges) if ranges is not None else list(cloudflare_ranges())
    facts = load_facts()
    gen = itertools.chain(_carve(ranges, 4, facts.max_prefixlen(4)), _carve(ranges, 6, facts.max_prefixlen(6)))
    out = list(itertools.islice(gen, n))
    if len(out) < n:
        raise ValueError(f"scale_routes {n}: Cloudflare's ranges hold only {len(out)} more-specifics")
    return out
