"""The Magic objects of a bound lab: seeded from the lab's running health-check config, and every
change written back to it (the edge daemon reloads it), so a route priority or a health-check rate
changed through the API changes the running lab.

Only objects that name one of the lab's tunnels drive it (a tunnel by ``name``, a route by a
``nexthop`` that is the customer side of a lab tunnel's interface address); others live in the
API only - the lab's tunnels themselves come from its topology.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

NS = uuid.UUID("6f1c3c1e-6d2a-4d0e-9a57-8c1a3b5a0c17")


class LabDirs:
    """Just enough of a Lab for cnilab.sim.magic.lab (node_dir), from the lab's name: no attach needed."""

    def __init__(self, lab: str) -> None:
        from cnilab.sim.runtime.paths import lab_dir

        self.name = lab
        self.dir = lab_dir(lab)

    def node_dir(self, node: str) -> Path:
        return self.dir / "nodes" / node


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def lab_config(lab: str) -> Any | None:
    from cnilab.sim.magic.config import load_config
    from cnilab.sim.magic.lab import config_path

    path = config_path(LabDirs(lab))
    return load_config(path) if path.is_file() else None


def hc_body(hc: Any, target_saved: str = "") -> dict[str, Any]:
    return {"enabled": hc.enabled, "rate": hc.rate, "type": hc.type,
            "direction": hc.direction, "target": target_saved}


def _colos(lab: str) -> dict[str, str]:
    """Magic tunnel name -> the interconnect (lab name for the colo) it rides."""
    from cnilab.sim.state import LabNotFound, LabState

    try:
        magic = LabState.load(lab).plan.magic
    except (LabNotFound, OSError, ValueError):
        return {}
    return {t.name: t.interconnect for t in (magic.tunnels if magic else []) if t.interconnect}


def seed(lab: str) -> dict[str, list[dict[str, Any]]]:
    """API objects for the lab's tunnels and routes (ids stable per lab and name)."""
    cfg = lab_config(lab)
    out: dict[str, list[dict[str, Any]]] = {"cf_interconnect": [], "gre_tunnel": [], "route": []}
    if cfg is None:
        return out
    ts = now_iso()
    colo = _colos(lab)
    by_name = {t.name: t for t in cfg.tunnels}
    for t in cfg.tunnels:
        common = {"id": uuid.uuid5(NS, f"{lab}/{t.name}").hex, "name": t.name,
                  "description": f"lab {lab} tunnel {t.ifname}", "interface_address": f"{t.cf_inner}/31",
                  "mtu": t.mtu, "health_check": hc_body(t.health_check, str(t.health_check.target or "")),
                  "automatic_return_routing": False, "created_on": ts, "modified_on": ts}
        if t.kind == "cni":
            out["cf_interconnect"].append({**common, "colo_name": colo.get(t.name), "gre": {"cloudflare_endpoint":
                                           str(t.cf_outer)}, "version": "1.0"})
        else:
            out["gre_tunnel"].append({**common, "cloudflare_gre_endpoint": str(t.cf_outer),
                                      "customer_gre_endpoint": str(t.cust_outer), "ttl": 64})
    for r in cfg.routes:
        t = by_name.get(r.nexthop)
        if t is None:
            continue
        out["route"].append({"id": uuid.uuid5(NS, f"{lab}/route/{r.id}").hex, "prefix": str(r.prefix),
                             "nexthop": str(t.cust_inner), "priority": r.priority, "weight": r.weight,
                             "description": f"lab route via {t.name}", "created_on": ts, "modified_on": ts})
    return out


def push(lab: str, tunnels: list[dict[str, Any]], routes: list[dict[str, Any]]) -> bool:
    """Write the API's view into the lab's config; False when the lab has no Magic config."""
    import ipaddress

    from cnilab.sim.magic.config import HcConfig
    from cnilab.sim.magic.lab import update_config
    from cnilab.sim.magic.steering import MagicRoute

    if lab_config(lab) is None:
        return False

    def edit(cfg: HcConfig) -> HcConfig:
        api = {t["name"]: t for t in tunnels}
        for t in cfg.tunnels:
            hc = api.get(t.name, {}).get("health_check")
            if hc:
                tgt = hc.get("target")
                saved = (tgt.get("saved") if isinstance(tgt, dict) else tgt) or None
                t.health_check = t.health_check.model_copy(update={
                    "enabled": hc.get("enabled", True), "rate": hc.get("rate", "mid"),
                    "type": hc.get("type", "reply"), "direction": hc.get("direction", t.health_check.direction),
                    "target": ipaddress.IPv4Address(saved) if saved else None})
        by_nexthop = {str(t.cust_inner): t.name for t in cfg.tunnels}
        cfg.routes = [MagicRoute(prefix=r["prefix"], nexthop=by_nexthop[r["nexthop"]], priority=r["priority"],
                                 weight=r.get("weight"), id=r["id"])
                      for r in routes if r["nexthop"] in by_nexthop]
        return cfg

    update_config(LabDirs(lab), edit)
    return True
