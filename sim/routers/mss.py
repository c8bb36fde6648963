"""TCP MSS clamping on the customer router, with nftables.

A GRE (v1) or Magic Transit path is narrower than the 1500-byte LAN behind the router, and the
classic CNI outage is a router that forgets to lower the MSS of SYNs crossing it: small packets
work, full-size TCP segments vanish. FRR and BIRD have no MSS clamp on Linux (Cisco's
``ip tcp adjust-mss`` is an interface feature); a Linux router does it in netfilter, so that is
what the lab does, in the ``cust`` namespace, on SYNs in both directions through the interconnect
and tunnel interfaces. The rule only ever lowers an MSS (``size > N``), like ``adjust-mss``.

``router.mss_clamp``: ``"auto"`` clamps to ``plan.mss_required`` for a *template* router, an int
clamps to that value, ``null`` applies nothing (to rehearse the mistake). With the user's own
router config (or a declared ``customer.router.dataplane``), ``"auto"`` installs nothing: the clamp
is part of what is under test, so it must come from the user's declaration
(:mod:`cnilab.sim.dataplane.declared`), and a check that passed on a clamp cnilab installed would be a
false PASS. An explicit int still installs it, and every report says cnilab did.
"""

from __future__ import annotations

from cnilab.sim.facts import load_facts
from cnilab.sim.routers.common import RouterLab
from cnilab.sim.topology.plan import CUSTOMER, LabPlan

TABLE = "cnilab_mss"


def resolve_clamp(plan: LabPlan) -> int | None:
    """The IPv4 MSS the customer router clamps to under ``plan``, or None for no clamp."""
    want = plan.customer_router.mss_clamp
    if want == "auto":
        byo = plan.customer_router.config is not None or plan.customer_dataplane is not None
        return None if byo else plan.mss_required
    return want


def clamp_interfaces(plan: LabPlan) -> list[str]:
    """Customer-side interfaces toward Cloudflare: each interconnect's L3 interface and GRE tunnel."""
    names = [s.cust_iface for s in plan.sessions] + [t.cust_ifname for t in plan.tunnels]
    return list(dict.fromkeys(names))


def ipv6_mss(mss4: int) -> int:
    """The IPv6 MSS that fills the same packet size as IPv4 MSS ``mss4`` (longer IP header)."""
    h = load_facts().headers
    return mss4 - (h["ipv6"].bytes - h["ipv4"].bytes)


def render_nft(mss: int, ifaces: list[str]) -> str:
    """An nft script that (re)creates ``table inet cnilab_mss`` atomically (idempotent)."""
    names = ", ".join(f'"{i}"' for i in ifaces)
    rules = []
    for direction in ("iifname", "oifname"):
        for fam, value in (("ipv4", mss), ("ipv6", ipv6_mss(mss))):
            rules.append(f"    {direction} {{ {names} }} meta nfproto {fam} tcp flags syn "
                         f"tcp option maxseg size > {value} tcp option maxseg size set {value}")
    return (f"table inet {TABLE}\n"
            f"delete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority mangle; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")


def apply_mss_clamp(lab: RouterLab, node: str = CUSTOMER, mss: int | str | None = "plan") -> int | None:
    """Install (or, for None, remove) the clamp in ``node``; returns the IPv4 MSS applied.

    ``mss="plan"`` takes the value from the topology (:func:`resolve_clamp`).
    """
    value = resolve_clamp(lab.plan) if mss == "plan" else mss
    if value is None:
        remove_mss_clamp(lab, node)
        return None
    if not isinstance(value, int) or value < 536 or value > 65495:
        raise ValueError(f"customer.router.mss_clamp = {value!r}: an MSS is an integer from 536 to 65495")
    # A plan name such as ewr1.100 is an alias of ewr1 where the kernel has no 802.1Q: ask the lab.
    ifaces = sorted({lab.ifname(node, i) for i in clamp_interfaces(lab.plan)})
    if not ifaces:
        return None
    path = lab.node_dir(node) / "mss.nft"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_nft(value, ifaces))
    r = lab.run(node, ["nft", "-f", str(path)], check=False)
    if r.returncode != 0:
        raise RuntimeError(f"nft refused the MSS clamp in node {node} ({path}): {r.stderr.strip()}")
    return value


def remove_mss_clamp(lab: RouterLab, node: str = CUSTOMER) -> None:
    """Delete the clamp table if present (idempotent: the lab may already be gone)."""
    lab.run(node, ["nft", "delete", "table", "inet", TABLE], check=False)


def mss_fix_hint(required: int) -> dict[str, str]:
    """The exact lines that set the clamp on common routers; probes print these on an MSS failure.

    ``IF`` stands for the interface toward Cloudflare (the GRE tunnel on dataplane v1).
    """
    v6 = ipv6_mss(required)
    return {
        "nftables": (f"nft add table inet {TABLE}; nft add chain inet {TABLE} forward "
                     "'{ type filter hook forward priority mangle; }'; "
                     f"nft add rule inet {TABLE} forward oifname IF tcp flags syn "
                     f"tcp option maxseg size > {required} tcp option maxseg size set {required}"),
        "iptables": (f"iptables -t mangle -A FORWARD -o IF -p tcp --tcp-flags SYN,RST SYN "
                     f"-m tcpmss --mss {required + 1}:65535 -j TCPMSS --set-mss {required}"),
        "ip6tables": (f"ip6tables -t mangle -A FORWARD -o IF -p tcp --tcp-flags SYN,RST SYN "
                      f"-m tcpmss --mss {v6 + 1}:65535 -j TCPMSS --set-mss {v6}"),
        "cisco": f"interface IF\n ip tcp adjust-mss {required}\n ipv6 tcp adjust-mss {v6}",
        "junos": (f"set interfaces IF unit 0 family inet tcp-mss {required}\n"
                  f"set interfaces IF unit 0 family inet6 tcp-mss {v6}"),
    }
