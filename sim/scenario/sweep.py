"""Parameter sweeps: the same scenario under many timer settings, each a full simulation.

``interconnects.ewr1.bfd.tx_ms=50:1000:50`` (or the shorthand ``ewr1.bfd.tx_ms=...``; ``ewr1+ewr2``
sets both) names an override field and its values: ``a,b,c`` or an inclusive ``start:stop:step``.
Several specs form a cartesian product. Each variant goes through the same validation as a file
(a BFD timer out of range is an error naming the field), so a sweep cannot run an impossible lab.
"""

from __future__ import annotations

import itertools
from typing import Any

from cnilab.sim.scenario.executor import open_sim
from cnilab.sim.scenario.loader import LoadedScenario, with_overrides
from cnilab.sim.scenario.model import FaultStep
from cnilab.sim.scenario.runner import run_scenario
from pydantic import BaseModel

SECTIONS = ("interconnects", "router", "internet_backup")


class SweepRow(BaseModel):
    params: dict[str, Any]
    passed: bool
    failover_s: float | None = None
    loss_window_s: float | None = None
    lost: int | None = None
    failures: list[str] = []


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text.strip()


def _values(text: str) -> list[Any]:
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"range {text!r}: write start:stop:step")
        start, stop, step = (_value(p) for p in parts)
        if not all(isinstance(v, int | float) for v in (start, stop, step)) or step <= 0:
            raise ValueError(f"range {text!r}: start, stop and a positive step must be numbers")
        out, v = [], start
        while v <= stop + 1e-9:
            out.append(round(v, 9))
            v += step
        return out
    return [_value(v) for v in text.split(",") if v.strip()]


def parse_sweep(specs: list[str], interconnects: list[str]) -> list[tuple[str, list[Any]]]:
    """``PATH=VALUES`` strings -> (dotted path, values); the path is checked by validation later."""
    out = []
    for spec in specs:
        path, sep, vals = spec.partition("=")
        if not sep or not path or not vals:
            raise ValueError(f"--sweep {spec!r}: write FIELD=VALUES, e.g. ewr1.bfd.tx_ms=50:1000:50")
        head = path.split(".")[0]
        if head not in SECTIONS:
            names = head.split("+")
            unknown = [n for n in names if n not in interconnects]
            if unknown:
                raise ValueError(f"--sweep {spec!r}: {unknown[0]!r} is not an interconnect "
                                 f"({', '.join(interconnects)}) nor one of {', '.join(SECTIONS)}")
            path = "interconnects." + path
        values = _values(vals)
        if not values:
            raise ValueError(f"--sweep {spec!r}: no values")
        out.append((path, values))
    return out


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    if parts[0] == "interconnects" and len(parts) > 2 and "+" in parts[1]:
        for name in parts[1].split("+"):
            _set(tree, ".".join(["interconnects", name, *parts[2:]]), value)
        return
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def variants(axes: list[tuple[str, list[Any]]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Cartesian product -> [(params shown to the user, overrides tree)]."""
    out = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        params = {path: v for (path, _), v in zip(axes, combo, strict=True)}
        tree: dict[str, Any] = {}
        for path, v in params.items():
            _set(tree, path, v)
        out.append((params, tree))
    return out


def run_variant(loaded: LoadedScenario, params: dict[str, Any], tree: dict[str, Any], seed: int) -> SweepRow:
    variant = with_overrides(loaded, tree)
    with open_sim(variant, seed) as ex:
        rep = run_scenario(variant, ex, seed)
        traffic = ex.traffic()
    failover = None
    after_fault = False
    for step, res in zip(variant.scenario.timeline, rep.steps, strict=True):
        if isinstance(step, FaultStep):
            after_fault = True
        elif after_fault and res.do == "expect" and getattr(step, "what", "") == "traffic_on":
            failover = res.measured
            break
    return SweepRow(params=params, passed=rep.passed, failover_s=failover,
                    loss_window_s=traffic.loss_window_s if traffic.src else None,
                    lost=traffic.lost if traffic.src else None,
                    failures=[f"#{s.index} {s.description}: {s.reason}" for s in rep.failures])


def sweep(loaded: LoadedScenario, specs: list[str], seed: int) -> list[SweepRow]:
    """Run every combination of ``specs`` (see module doc) on the simulator, in order."""
    names = [ic.name for ic in loaded.base_topology.interconnects]
    return [run_variant(loaded, params, tree, seed) for params, tree in variants(parse_sweep(specs, names))]
