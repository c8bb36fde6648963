"""Apply and clear faults on a running lab through the fault-kind registry.

Every fault is recorded in the lab's state file with *how* it is implemented (mechanism: kernel,
nftables, userspace or none) and the exact steps that undo it, so ``cnilab fault clear`` works
from another shell, after a crash, and from the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnilab.sim.faults import mechanisms as mech
from cnilab.sim.faults.kinds import fault_kind, parse_fault
from cnilab.sim.faults.mechanisms import FaultError
from cnilab.sim.faults.place import resolve_target
from cnilab.sim.handle import LabHandle
from cnilab.sim.state import FaultRecord, LabState

__all__ = ["FaultError", "active_faults", "apply_fault", "clear_faults"]


@dataclass(frozen=True)
class _Site:
    """What the mechanisms see of the lab (cnilab.sim.faults.mechanisms.Site)."""

    handle: LabHandle

    @property
    def lab(self) -> str:
        return self.handle.name

    @property
    def state_dir(self) -> Path:
        return self.handle.state.dir

    def netns_path(self, node: str) -> str:
        return self.handle.netns_path(node)


def apply_fault(lab: LabHandle, target: str, kind: str, value: str | float | None = None) -> FaultRecord:
    """Inject a fault now; a fault of the same kind on the same target is replaced."""
    spec = parse_fault(kind, value)
    fk = fault_kind(kind)
    places = [p.model_copy(update={"iface": lab.ifname(p.node, p.iface),
                                   "peer_iface": lab.ifname(p.peer_node, p.peer_iface)})
              for p in resolve_target(lab.plan, target)]
    clear_faults(lab, target, kind=kind)
    site = _Site(lab)
    applied: list[mech.Applied] = []
    try:
        for place in places:
            applied.append(fk.apply(site, place, spec))
    except Exception:
        mech.undo([st for a in applied for st in a.undo])
        raise
    rec = FaultRecord(target=target, kind=kind, value=spec.value_text, mechanism="; ".join(a.text for a in applied),
                      mechanisms=sorted({a.mechanism for a in applied}),
                      undo={"steps": [st for a in applied for st in a.undo],
                            "interconnects": sorted({p.interconnect for p in places if p.interconnect}),
                            "carrier_up": spec.carrier_up, "light_dbm": spec.light_dbm})
    with lab.update() as st:
        st.faults.append(rec)
    return rec


def clear_faults(lab: LabHandle, target: str | None = None, kind: str | None = None) -> list[FaultRecord]:
    """Clear faults on ``target`` (all targets when None), optionally only of ``kind``."""
    with lab.update() as st:
        gone = [f for f in st.faults if (target is None or f.target == target) and (kind is None or f.kind == kind)]
        st.faults = [f for f in st.faults if f not in gone]
    for rec in reversed(gone):
        mech.undo(rec.undo.get("steps", []))
    return gone


def active_faults(lab_name: str) -> list[FaultRecord]:
    return LabState.load(lab_name).faults
