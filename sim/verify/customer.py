"""What the customer's own daemon says, raw (kept as evidence) and the few facts verify needs from it:
max-prefix limits per session and the advertisement interval toward the transit (it bounds how long a
leak can take to show, so it sets the hold window of the negative checks)."""

from __future__ import annotations

import json
import re

from cnilab.sim.handle import LabHandle
from cnilab.sim.topology.plan import CUSTOMER
from pydantic import BaseModel, Field

_BIRD_LIMIT = re.compile(r"^\s*(Receive|Import) limit:\s+(\d+)", re.M)


class CustomerView(BaseModel):
    kind: str
    raw: dict[str, str] = Field(default_factory=dict, description="command -> output")
    max_prefix: dict[str, int | None] = Field(default_factory=dict, description="neighbor address -> limit")
    mrai_s: dict[str, float] = Field(default_factory=dict, description="neighbor address -> advertisement interval")
    timers: dict[str, tuple[int, int]] = Field(default_factory=dict, description="neighbor address -> negotiated "
                                                                                "(hold, keepalive) seconds")


def _run(lab: LabHandle, argv: list[str]) -> str:
    from cnilab.sim.routers import cli_argv

    r = lab.run(CUSTOMER, cli_argv(lab, CUSTOMER, argv), check=False)
    return (r.stdout or "") + (r.stderr or "")


def read_customer(lab: LabHandle) -> CustomerView:
    """Query the daemon in ``cust``; an external router gives an empty view (nothing to ask)."""
    kind = lab.plan.customer_router.kind
    view = CustomerView(kind=kind)
    if kind == "frr":
        cmd = "show bgp neighbors json"
        out = _run(lab, ["vtysh", "-c", cmd])
        view.raw[f"vtysh -c '{cmd}'"] = out
        try:
            data = json.loads(out or "{}")
        except ValueError:
            data = {}
        for peer, d in data.items():
            if not isinstance(d, dict):
                continue
            afs = [af for af in (d.get("addressFamilyInfo") or {}).values() if isinstance(af, dict)]
            limits = [af["prefixAllowedMax"] for af in afs if "prefixAllowedMax" in af]
            view.max_prefix[peer] = min(limits) if limits else None
            if "bgpTimerHoldTimeMsecs" in d and d.get("bgpState") == "Established":
                view.timers[peer] = (int(d["bgpTimerHoldTimeMsecs"]) // 1000,
                                     int(d.get("bgpTimerKeepAliveIntervalMsecs", 0)) // 1000)
            if "minBtwnAdvertisementRunsTimerMsecs" in d:
                view.mrai_s[peer] = float(d["minBtwnAdvertisementRunsTimerMsecs"]) / 1000
        for cmd in ("show ip bgp", "show ipv6 route"):
            view.raw[f"vtysh -c '{cmd}'"] = _run(lab, ["vtysh", "-c", cmd])
    elif kind == "bird":
        cmd = "show protocols all"
        out = _run(lab, ["birdc", cmd])
        view.raw[f"birdc {cmd}"] = out
        for block in re.split(r"\n(?=\S)", out):
            m = re.search(r"Neighbor address:\s+(\S+)", block)
            if not m:
                continue
            peer = m.group(1).split("%")[0]
            limits = [int(x) for _k, x in _BIRD_LIMIT.findall(block)]
            view.max_prefix[peer] = min(limits) if limits else None
            view.mrai_s[peer] = 0.0  # BIRD sends updates at once unless told otherwise
            hold = re.search(r"Hold timer:\s+[\d.]+/(\d+)", block)
            ka = re.search(r"Keepalive timer:\s+[\d.]+/(\d+)", block)
            if hold and ka:
                view.timers[peer] = (int(hold.group(1)), int(ka.group(1)))
        view.raw["birdc show route"] = _run(lab, ["birdc", "show route"])
    return view
