"""What a customer may announce to a third party, and the filter that fixes what it must not.

Valley-free routing (Gao-Rexford; RFC 7908 names the leak types): a customer announces to its
transit and peers only its own prefixes (and its customers'). Three things are leaks here:

* a route with AS13335 in its path: Cloudflare's routes re-advertised (RFC 7908 type 1/4);
* a default route (0.0.0.0/0, ::/0);
* any other prefix that is not the customer's own (not inside ``customer.prefixes``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

from cnilab.sim.facts import load_facts
from pydantic import BaseModel

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LeakKind = Literal["cloudflare-route", "default-route", "not-own"]


class Leak(BaseModel):
    party: str
    prefix: str
    as_path: list[int]
    kind: LeakKind
    reason: str


def classify(party: str, routes: dict[str, list[int]], own: Iterable[Network]) -> list[Leak]:
    """Every route in ``routes`` (prefix -> AS path as the party received it) the customer must not send."""
    own = list(own)
    cf = load_facts().cloudflare_asn
    out = []
    for prefix, path in sorted(routes.items()):
        net = ipaddress.ip_network(prefix, strict=False)
        if cf in path:
            out.append(Leak(party=party, prefix=prefix, as_path=path, kind="cloudflare-route",
                            reason=f"{prefix} was learnt from Cloudflare (AS path {' '.join(map(str, path))}): "
                                   f"re-advertising it to your {party} is a route leak (valley-free violation)"))
        elif net.prefixlen == 0:
            out.append(Leak(party=party, prefix=prefix, as_path=path, kind="default-route",
                            reason=f"{prefix} is a default route: never announce one to your {party}"))
        elif not any(net.version == o.version and net.subnet_of(o) for o in own):  # type: ignore[arg-type]
            out.append(Leak(party=party, prefix=prefix, as_path=path, kind="not-own",
                            reason=f"{prefix} is not one of your prefixes "
                                   f"({', '.join(str(o) for o in own)}): a third party's route re-advertised"))
    return out


def fix_lines(party: str, neighbor: str, own: Iterable[Network], asn: int) -> dict[str, str]:
    """The outbound filter that leaves only the customer's own prefixes, per daemon."""
    own = [o for o in own if o.version == 4]
    name = f"TO-{party.upper()}"
    frr = [f"ip prefix-list {name} seq {5 * (i + 1)} permit {p}" for i, p in enumerate(own)]
    frr += ["bgp as-path access-list ORIGINATED permit ^$",
            f"router bgp {asn}", " address-family ipv4 unicast",
            f"  neighbor {neighbor} prefix-list {name} out",
            f"  neighbor {neighbor} filter-list ORIGINATED out"]
    nets = ", ".join(str(p) for p in own)
    bird = (f"filter to_{party} {{ if net ~ [ {nets} ] then accept; reject; }}  "
            f"# and in the protocol: ipv4 {{ export filter to_{party}; }};")
    return {"frr": "\n".join(frr), "bird": bird}
