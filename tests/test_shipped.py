"""Shipped files are package data: found through importlib.resources from any directory, and the
facts cite sources that ship with them. No module finds them by climbing from its own file."""

from __future__ import annotations

import ast
import json
import re
from importlib import resources
from pathlib import Path

import pytest
import yaml
from cnilab.sim.cli.main import app
from cnilab.sim.runtime import shipped
from cnilab.sim.scenario.loader import load_scenario
from cnilab.sim.topology.paths import resolve_scenario, resolve_topology
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SOURCES = resources.files("cnilab.sim.data") / "sources"
CITING = ("cni.yaml", "magic.yaml")


def _seeds() -> dict[str, str]:
    return {p.name[:3]: p.read_text(encoding="utf-8") for p in (SOURCES / "seeds").iterdir() if p.name.endswith(".txt")}


def _plain(text: str) -> str:
    """Markdown reduced to its words: a citation quotes what the page says, not how it is marked up."""
    text = re.sub(r"\]\([^)]*\)", "", text)
    return re.sub(r"\s+", " ", re.sub(r"[*_`>|\[\]]", "", text)).strip()


def _sources(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "source" and isinstance(v, str)] + \
               [s for v in node.values() for s in _sources(v)]
    if isinstance(node, list):
        return [s for v in node for s in _sources(v)]
    return []


def _citations() -> list[tuple[str, str]]:
    return [(name, s) for name in CITING
            for s in _sources(yaml.safe_load(resources.files("cnilab.sim.data").joinpath(name).read_text()))]


def test_the_seeds_and_the_facts_reference_ship_with_the_data() -> None:
    assert sorted(_seeds()) == ["000", "001", "002", "003", "004"]
    assert json.loads((SOURCES / "cloudflare-cni-facts.json").read_text())["dataplane"]


def _quoted_seeds(source: str) -> list[tuple[str, list[str]]]:
    """Each quote in a source with the seeds cited right before it (``seed:001 / seed:002 'text'``);
    a quote after another kind of citation (``docs:...``) is not a seed's."""
    out, start = [], 0
    for m in re.finditer(r"'([^']+)'", source):
        before = source[start:m.start()]
        tail = re.split(r"\b(?:docs|facts|sdk|model):", before)[-1]
        if seeds := re.findall(r"seed:(\d{3})", tail):
            out.append((m.group(1), seeds))
        start = m.end()
    return out


@pytest.mark.parametrize(("name", "source"), [c for c in _citations() if "seed:" in c[1]],
                         ids=lambda v: v if v in CITING else None)
def test_a_seed_citation_quotes_a_shipped_seed(name: str, source: str) -> None:
    seeds = _seeds()
    cited = re.findall(r"seed:(\d{3})", source)
    assert cited and all(n in seeds for n in cited), f"{name}: {source!r} cites a seed that is not shipped"
    for quote, nums in _quoted_seeds(source):
        texts = [_plain(seeds[n]) for n in nums]
        for part in (_plain(p) for p in quote.split("...")):
            assert any(part in t for t in texts), f"{name}: {part!r} is not in seed {'/'.join(nums)}"


def test_quotes_are_checked_against_the_seeds_cited_before_them() -> None:
    assert _quoted_seeds("seed:001 / seed:002 'a' / docs:x 'b'; seed:003 GCP 'c'") == [
        ("a", ["001", "002"]), ("c", ["003"])]


def test_a_facts_citation_names_a_section_of_the_shipped_reference() -> None:
    sections = {k.split(" ", 1)[0] for k in json.loads((SOURCES / "cloudflare-cni-facts.json").read_text())}
    cited = {m for _, s in _citations() for m in re.findall(r"facts:(\w+)", s)}
    assert cited and cited <= sections, f"cited sections not in the reference: {cited - sections}"


def test_bare_names_resolve_to_package_data_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNILAB_TOPOLOGIES", raising=False)
    assert resolve_topology("v1-gre") == shipped.topologies_dir() / "v1-gre.yml"
    assert resolve_scenario("ha-failover-bfd") == shipped.topologies_dir() / "scenarios" / "ha-failover-bfd.yml"
    assert load_scenario("ha-failover-bfd").plan.lab
    assert resolve_topology("no-such-topology") == Path("no-such-topology")
    res = CliRunner().invoke(app, ["validate", "v1-gre"])
    assert res.exit_code == 0, res.output


def test_a_path_beats_a_shipped_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v1-gre").write_text("not the shipped one")
    assert resolve_topology("v1-gre") == Path("v1-gre")


def test_the_schemas_and_the_containerlab_schema_are_package_data() -> None:
    for name in ("topology", "scenario"):
        assert json.loads(shipped.schema_path(name).read_text())["$schema"]
    assert json.loads((shipped.containerlab_dir() / "clab.schema.json").read_text())


def _findings(path: Path) -> list[str]:
    """Code (not docstrings) that locates files relative to a checkout rather than through the package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        why = None
        if isinstance(node, ast.Subscript | ast.Attribute):
            text = ast.unparse(node)
            if "__file__" in text and ("parents[" in text or "parent.parent" in text):
                why = "climbs from its own file to a repository"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text == "shared" or "../shared" in text:
                why = "reads the workspace beside a checkout"
        elif isinstance(node, ast.Name):
            text = node.id
            if text in ("REPO", "REPO_ROOT", "ROOT"):
                why = "names a repository root"
        if why:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]} ({why})")
    return out


def test_no_module_locates_files_by_the_repository_root() -> None:
    found = [f for d in ("sim", "mock_api", "cnilab") for p in sorted((ROOT / d).rglob("*.py")) for f in _findings(p)]
    assert not found, "read shipped files through cnilab.sim.runtime.shipped (importlib.resources):\n" + "\n".join(
        dict.fromkeys(found))
