"""Imports point down the layers (docs/architecture.md): a lower layer never imports an upper one.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import is
still a dependency, and hiding one is how back edges crept in before.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("runtime", ("sim.runtime", "sim.testing")),
    ("facts", ("sim.facts", "sim.data")),
    ("model", ("sim.topology", "sim.bgp", "sim.report", "sim.faults", "sim.faults.kinds", "sim.faults.mechanisms",
               "sim.faults.place", "sim.faults.delayd", "sim.faults.flapd", "sim.faults.nfqueue",
               "sim.dataplane.declared", "sim.magic", "sim.magic.facts", "sim.magic.model", "sim.magic.steering",
               "sim.magic.health", "sim.magic.config", "sim.transit.table", "sim.transit.leaks")),
    ("state", ("sim.state", "sim.handle")),
    ("parts", ("sim.dataplane", "sim.backends", "sim.faults.apply", "sim.edge", "sim.routers", "sim.probes",
               "sim.des", "sim.export", "sim.checks", "sim.observe", "sim.magic.lab", "sim.magic.ops",
               "sim.magic.faults", "sim.magic.hcd", "sim.drills", "sim.transit")),
    ("lab", ("sim.lab",)),
    ("apps", ("sim.scenario", "sim.rehearse", "sim.dashboard", "mock_api", "sim.magic.emulate", "sim.magic.rehearse",
              "sim.magic.gcp", "sim.magic.scenario", "sim.magic.simulate", "sim.incidents", "sim.verify")),
    ("front", ("sim.cli", "sim.pytest_plugin")),
]
"""Bottom to top. A module belongs to the layer of its longest matching prefix."""

API_REACHES_LAB_ONLY_THROUGH = {"mock_api.lab_bridge", "mock_api.magic_lab"}
"""The mock API sees a lab only through its bridges (CNI and Magic Transit); every other mock_api
module stays at the model."""

DEFERRED_REEXPORTS = {("sim.faults", "sim.faults.apply")}
"""``from sim.faults import apply_fault`` still works for branches in flight, through a module
``__getattr__`` that imports on first use; remove once every branch imports sim.faults.apply."""


NAMESPACE = "cnilab."
"""The distribution installs ``sim`` as ``cnilab.sim`` (setup.py); the tables here use the short names
the docs use, and imports are compared by their short names."""


def _short(module: str) -> str:
    return module.removeprefix(NAMESPACE)


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (rank, len(p))
    return None if best is None else best[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from sim.lab import attach_clab`` imports sim.lab.attach_clab; a name that is not a
            # module resolves to its package's layer anyway
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(ln, _short(m)) for ln, m in out if _short(m).split(".")[0] in ("sim", "mock_api")]


def _sources() -> list[Path]:
    return sorted(p for d in ("sim", "mock_api") for p in (ROOT / d).rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [_module_name(p) for p in _sources() if _layer(_module_name(p)) is None and _module_name(p) != "sim"]
    assert not missing, f"add these modules to a layer in tests/test_layers.py: {missing}"


def test_no_import_points_up():
    names = {_module_name(p): LAYERS[_layer(_module_name(p)) or 0][0] for p in _sources()}
    back = []
    for path in _sources():
        me = _module_name(path)
        if me == "sim":
            continue
        mine = _layer(me)
        for line, target in _imports(path):
            theirs = _layer(target)
            if mine is None or theirs is None:
                continue
            if theirs > mine and (me, target) not in DEFERRED_REEXPORTS:
                back.append(f"{path.relative_to(ROOT)}:{line}: {names.get(me)} {me} imports "
                            f"{LAYERS[theirs][0]} {target}")
            elif (me.startswith("mock_api") and me not in API_REACHES_LAB_ONLY_THROUGH and target.startswith("sim")
                  and theirs > _layer("sim.topology")):  # type: ignore[operator]
                back.append(f"{path.relative_to(ROOT)}:{line}: {me} reaches the lab ({target}) around the bridge")
    assert not back, "imports that point up a layer:\n" + "\n".join(dict.fromkeys(back))


def test_the_checker_catches_a_back_edge(tmp_path):
    """The rule itself: runtime importing the lab orchestrator is a back edge."""
    assert _layer("sim.runtime.process") < _layer("sim.lab.lab")  # type: ignore[operator]
    assert _layer("sim.faults.kinds.carrier") < _layer("sim.faults.apply")  # type: ignore[operator]
    assert _layer("sim.state") < _layer("sim.lab")  # type: ignore[operator]


def test_sim_lab_holds_only_the_orchestrator():
    """Runtime helpers and the state file live below the lab; no re-export stays behind at the old paths."""
    assert {p.stem for p in (ROOT / "sim" / "lab").glob("*.py")} == {"__init__", "lab", "attach_clab"}


def test_parts_take_a_lab_handle_not_any():
    """A lab parameter is typed ``LabHandle`` (sim.handle): ``lab: Any`` hides what a part needs from the lab."""
    loose = [f"{p.relative_to(ROOT)}:{n}" for p in _sources()
             for n, line in enumerate(p.read_text().splitlines(), 1) if "lab: Any" in line]
    assert not loose, f"type these as LabHandle: {loose}"
