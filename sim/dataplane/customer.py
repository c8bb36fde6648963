"""Realise the customer's declared dataplane in the ``cust`` node, and say who built what.

The tunnels themselves are built by the lab (:meth:`cnilab.sim.lab.lab.Lab._build_tunnels`, kernel GRE or
the userspace endpoint with exactly the declared parameters); this module runs the rest of the
declaration (routes, netfilter, sysctl) as argument vectors, never through a shell, and answers
the question every report must answer: did this piece of configuration come from the user, or
did cnilab install it on their behalf?
"""

from __future__ import annotations

from typing import Literal

from cnilab.sim.backends.base import BackendError
from cnilab.sim.dataplane.declared import CustomerDataplane, DeclaredClamp
from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import CUSTOMER, LabPlan
from pydantic import BaseModel


class DataplaneError(BackendError):
    """A declared line failed on the customer node as it would on a real router (file:line + error).
    A BackendError, so ``cnilab up`` prints it as one line and removes what was built."""


def run_declared_commands(lab: LabHandle, dp: CustomerDataplane) -> None:
    """Run the declaration's non-tunnel lines in order; the first failure stops, naming its line."""
    for cmd in dp.commands:
        r = lab.run(CUSTOMER, cmd.argv, check=False)
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise DataplaneError(f"{cmd.where}: `{' '.join(cmd.argv)}` failed on the customer router: "
                                 f"{msg[-1] if msg else f'exit {r.returncode}'}")


Origin = Literal["user", "cnilab", "none"]


class Provenance(BaseModel):
    """Where the configuration a check exercised came from (shown in text, JSON and JUnit reports)."""

    origin: Origin
    text: str


def tunnel_provenance(plan: LabPlan) -> Provenance | None:
    """Who built the customer's end of the GRE tunnel(s); None when the plan has no tunnel."""
    if not plan.tunnels:
        return None
    dp = plan.customer_dataplane
    if dp is None:
        return Provenance(origin="cnilab", text="customer GRE tunnel built by cnilab from the plan, not by your "
                                                "config (declare it in customer.router.dataplane)")
    where = ", ".join(f"{t.declared.name} ({t.declared.where})" for t in plan.tunnels if t.declared)
    return Provenance(origin="user", text=f"customer GRE tunnel as you declared it: {where or 'none declared'}")


def declared_clamps(plan: LabPlan, family: int = 4) -> list[DeclaredClamp]:
    dp = plan.customer_dataplane
    return dp.clamp_for(family) if dp is not None else []  # type: ignore[arg-type]


def clamp_provenance(plan: LabPlan, installed: int | None) -> Provenance:
    """Who put the MSS clamp (or its absence) in place; ``installed`` is what cnilab itself installed."""
    clamps = declared_clamps(plan, 4)
    if installed is not None:
        return Provenance(origin="cnilab", text=f"clamp {installed} installed by cnilab "
                                                f"(customer.router.mss_clamp), not by your config")
    if clamps:
        c = clamps[0]
        return Provenance(origin="user", text=f"clamp {c.value} from your {c.tool} line ({c.where})")
        # (tool "topology": the mss_clamp of your customer.router.dataplane block)
    if plan.customer_router.config is not None or plan.customer_dataplane is not None:
        return Provenance(origin="none", text="no clamp: your config declares none and cnilab installs none for it")
    return Provenance(origin="none", text="no clamp: customer.router.mss_clamp is null")


def clamp_diagnosis(plan: LabPlan, required: int) -> list[str]:
    """Name what is wrong with the customer's own clamp (or its absence), in the terms of the call."""
    from cnilab.sim.facts import load_facts

    facts = load_facts()
    v6 = required - (facts.headers["ipv6"].bytes - facts.headers["ipv4"].bytes)
    byo = plan.customer_router.config is not None or plan.customer_dataplane is not None
    clamps = declared_clamps(plan, 4)
    installed_by_cnilab = plan.customer_router.mss_clamp not in ("auto", None)
    if not clamps:
        if byo and not installed_by_cnilab:
            src = plan.customer_dataplane.source if plan.customer_dataplane else "customer.router.dataplane"
            return [f"missing MSS clamp: your config declares none ({src}); this path needs TCP MSS clamped to "
                    f"{required} (IPv6 {v6}) on SYNs through the interfaces toward Cloudflare"]
        return []
    out = []
    toward_cf = {t.declared.name if t.declared else t.cust_ifname for t in plan.tunnels} | \
        {s.cust_iface for s in plan.sessions}
    for c in clamps:
        if c.value == "pmtu":
            out.append(f"your clamp follows the route MTU ({c.tool} --clamp-mss-to-pmtu / `rt mtu`, {c.where}): it "
                       f"only sees your own interfaces, not Cloudflare's path; set it to {required} explicitly")
            continue
        mistake = next((m for m in facts.mss_mistakes if m.value == c.value), None)
        if mistake is not None:
            out.append(f"you clamp to {c.value} ({c.where}): the classic mistake: {mistake.why}; "
                       f"use {required}")
        elif c.value > required:
            out.append(f"you clamp to {c.value} ({c.where}), above the {required} this path needs")
        plain_in = {s.cust_iface for s in plan.sessions if s.cust_nexthop_via == "link"} if plan.tunnels else set()
        if c.interfaces and plain_in and not set(c.interfaces) & plain_in:
            out.append(f"your clamp ({c.where}) only matches {', '.join(c.interfaces)}: on this dataplane "
                       f"Cloudflare delivers to you outside the tunnel ({', '.join(sorted(plain_in))}) while your "
                       "replies enter it, so SYNs arriving there must be clamped too (or clamp every forwarded SYN)")
        if c.interfaces and not set(c.interfaces) & toward_cf:
            out.append(f"your clamp ({c.where}) matches {', '.join(c.interfaces)}, none of which leads to "
                       f"Cloudflare ({', '.join(sorted(toward_cf))})")
    return out
