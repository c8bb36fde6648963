"""The slot inventory, seeded from sim/data/facilities.yaml.

Slot ids are UUIDv5 of site and port, so they are stable across restarts and machines: a test or a
Terraform config written against one server works against the next. Lab-only facts (dataplane,
port type) stay here and never appear in API bodies.
"""

from __future__ import annotations

import functools
import uuid

from cnilab.sim.facts import facilities, load_facts
from pydantic import BaseModel

SLOT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cnilab/slots")


class SlotDef(BaseModel):
    id: str
    site: str
    code: str
    port: str
    speed: str
    dataplane: str
    facility_name: str
    address: list[str]

    @property
    def ccr_device_name(self) -> str:
        return self.port.split()[0]

    @property
    def optic(self) -> str:
        return str(load_facts().optics["speeds"][self.speed])


@functools.cache
def slots() -> tuple[SlotDef, ...]:
    out = []
    for fac in facilities():
        for s in fac.slots:
            out.append(SlotDef(id=str(uuid.uuid5(SLOT_NAMESPACE, f"{fac.site}/{s.port}")), site=fac.site,
                               code=fac.code, port=s.port, speed=s.speed, dataplane=s.dataplane,
                               facility_name=fac.name, address=list(fac.address)))
    return tuple(out)


def slot_by_id(slot_id: str) -> SlotDef | None:
    return next((s for s in slots() if s.id == slot_id), None)
