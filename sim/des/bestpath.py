"""Best-path choice, reduced to what a CNI decides on.

Cloudflare picks among equal customer routes by the interconnect priority (a lab-side fact in the
plan); the customer router by local-pref. Both then prefer the shorter AS path, then the lower
interconnect index (standing in for "oldest route / lowest router-id", which the lab cannot vary).
Written here because sim/bgp/bestpath.py did not exist when the simulator was built.
"""

from __future__ import annotations

from typing import NamedTuple


class Candidate(NamedTuple):
    path: str
    local_pref: int
    as_path_len: int
    index: int


def best(candidates: list[Candidate]) -> Candidate | None:
    """Highest local-pref, then shortest AS path, then lowest index; None if there is no route."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-c.local_pref, c.as_path_len, c.index))
