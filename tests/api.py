"""The mock API for tests: one served instance on a private database, an HTTP client carrying the
development token, and the request nearly every API test starts with (an interconnect on a slot)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.lab_bridge import LabBridge
from cnilab.mock_api.testing import serve

H = {"Authorization": f"Bearer {DEV_TOKEN}"}
BASE = f"/client/v4/accounts/{DEV_ACCOUNT}/cni"
EWR_V1 = next(s for s in slots() if s.site == "ewr01" and s.dataplane == "v1" and s.speed == "10G")


@contextlib.contextmanager
def api_client(db: Path, bridge: LabBridge | None = None, **settings: Any) -> Iterator[httpx.Client]:
    """Serve the mock API on ``db`` (``settings`` as ``load_settings`` takes them; ``bridge`` to a lab)
    and yield an HTTP client for it with the development token; both stop at the end."""
    with serve(load_settings(db=db, **settings), bridge) as url, httpx.Client(base_url=url, headers=H) as c:
        yield c


def new_interconnect(c: httpx.Client, slot_id: str = EWR_V1.id) -> str:
    """Order a direct interconnect on ``slot_id``; its name."""
    r = c.post(BASE + "/interconnects", json={"account": DEV_ACCOUNT, "type": "direct", "slot_id": slot_id})
    assert r.status_code == 200, r.text
    return r.json()["name"]
