#!/usr/bin/env python3
"""Rewrite references to the top-level modules ``sim`` and ``mock_api`` to ``cnilab.sim`` and
``cnilab.mock_api``, the names the distribution installs them under (see setup.py).

Idempotent: run it after merging a branch that still imports ``sim.*``; a second run changes nothing.

    python scripts/namespace_imports.py            # rewrite in place, list the files changed
    python scripts/namespace_imports.py --check    # exit 1 and list the files that need it

What it rewrites:
- Python import statements: ``from sim.x import y``, ``import sim.x as z``, ``import sim.x``,
  ``import sim`` (-> ``from cnilab import sim``, so ``sim.__version__`` still reads the same);
- in Python strings and comments, and in data, config and shell files: dotted module paths such
  as ``"sim.edge.driver"`` (``python -m``, mock.patch targets, lazy imports, loggers, entry points,
  ``module: sim.routers.frr`` in YAML). Only a path whose first part under ``sim``/``mock_api`` is
  a real module or package is touched, so ``"sim"`` (the CLI command) or ``report-sim.json`` stay;
- in Markdown: only code (``python -m sim.x``, ``from sim.x import``, ``import sim.x``); prose keeps
  the short names the docs use for layers.
Then ``ruff check --select I --fix`` re-sorts the imports of the Python files it changed.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "cnilab"
TOP = ("sim", "mock_api")

PY_DIRS = ("sim", "mock_api", "tests", "bench", "scripts", "examples", "cnilab")
TEXT_GLOBS = ("sim/data/*.yaml", "mock_api/*.yaml", "topologies/**/*.yml", "containerlab/**/*.conf",
              "containerlab/**/*.sh", "containerlab/**/Dockerfile", "scripts/*.sh", "Makefile", "pyproject.toml",
              "sim/**/*.j2", "sim/**/templates/*")
MD_GLOBS = ("README.md", "docs/**/*.md", "*/README.md", "containerlab/**/*.md", "examples/**/*.md")
SHORT_NAMES = {"tests/test_layers.py"}
"""Files whose strings are short module names on purpose (the layer table reads ``sim.runtime`` for
``cnilab.sim.runtime``); their import statements are still rewritten."""


def children(top: str) -> set[str]:
    """Modules and packages directly under ``top`` (what ``top.<name>`` can import)."""
    d = ROOT / top
    out = {p.stem for p in d.glob("*.py") if p.stem != "__init__"}
    out |= {p.name for p in d.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    return out


KNOWN = {top: children(top) for top in TOP if (ROOT / top).is_dir()}
DOTTED = re.compile(r"(?<![\w.{/\\-])(sim|mock_api)((?:\.[A-Za-z_]\w*)+)")
MD_CODE = re.compile(r"(?<![\w.])((?:-m|from|import)\s+)(sim|mock_api)((?:\.[A-Za-z_]\w*)+|(?=\s+import\b))")
IMPORT = re.compile(r"^(\s*)import\s+(sim|mock_api)((?:\.\w+)*)(\s+as\s+\w+)?(\s*(?:#.*)?)$")
FROM = re.compile(r"^(\s*)from\s+(sim|mock_api)((?:\.\w+)*)(\s+import\b)")


def _dotted(m: re.Match[str]) -> str:
    top, rest = m.group(1), m.group(2)
    first = rest[1:].split(".", 1)[0]
    return f"{NAMESPACE}.{top}{rest}" if first in KNOWN.get(top, ()) else m.group(0)


def rewrite_text(text: str) -> str:
    return DOTTED.sub(_dotted, text)


def rewrite_markdown(text: str) -> str:
    def sub(m: re.Match[str]) -> str:
        lead, top, rest = m.group(1), m.group(2), m.group(3)
        if rest and rest[1:].split(".", 1)[0] not in KNOWN.get(top, ()):
            return m.group(0)
        return f"{lead}{NAMESPACE}.{top}{rest}"
    return MD_CODE.sub(sub, text)


def _strings_and_comments(text: str) -> str:
    """Apply :func:`rewrite_text` inside string and comment tokens only (never to code names, where
    ``sim`` may be a local variable or the module bound by ``from cnilab import sim``)."""
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, int, str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT):
            new = rewrite_text(tok.string)
            if new != tok.string:
                edits.append((*tok.start, *tok.end, new))
    for (sr, sc, er, ec, new) in reversed(edits):
        head = lines[sr - 1][:sc]
        tail = lines[er - 1][ec:]
        lines[sr - 1:er] = [head + new + tail]
    return "".join(lines)


def _import_line(line: str) -> str:
    body = line.rstrip("\n")
    nl = line[len(body):]
    if m := FROM.match(body):
        indent, top, rest, imp = m.groups()
        return f"{indent}from {NAMESPACE}.{top}{rest}{imp}{body[m.end():]}{nl}"
    if m := IMPORT.match(body):
        indent, top, rest, alias, tail = m.groups()
        if alias:
            return f"{indent}import {NAMESPACE}.{top}{rest}{alias}{tail}{nl}"
        if not rest:
            return f"{indent}from {NAMESPACE} import {top}{tail}{nl}"
        # ``import sim.x`` binds ``sim``: keep that name bound, and import the submodule
        return f"{indent}import {NAMESPACE}.{top}{rest}{tail}{nl}{indent}from {NAMESPACE} import {top}{nl}"
    return line


def rewrite_python(text: str, strings: bool = True) -> str:
    if strings:
        text = _strings_and_comments(text)
    return "".join(_import_line(ln) for ln in text.splitlines(keepends=True))


def targets() -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for d in PY_DIRS:
        if (ROOT / d).is_dir():
            out += [(p, "py") for p in sorted((ROOT / d).rglob("*.py"))]
    out += [(p, "py") for p in sorted(ROOT.glob("*.py"))]
    for pattern in TEXT_GLOBS:
        out += [(p, "text") for p in sorted(ROOT.glob(pattern)) if p.is_file()]
    for pattern in MD_GLOBS:
        out += [(p, "md") for p in sorted(ROOT.glob(pattern)) if p.is_file()]
    seen: set[Path] = set()
    unique = []
    for p, kind in out:
        if p not in seen and ".venv" not in p.parts and p.resolve() != Path(__file__).resolve():
            seen.add(p)
            unique.append((p, kind))
    return unique


def rewrite(path: Path, kind: str) -> str:
    text = path.read_text(encoding="utf-8")
    if kind == "py":
        return rewrite_python(text, strings=str(path.relative_to(ROOT)) not in SHORT_NAMES)
    if kind == "md":
        return rewrite_markdown(text)
    return rewrite_text(text)


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.is_file() else shutil.which("ruff")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file needs rewriting")
    args = ap.parse_args(argv)
    changed: list[Path] = []
    for path, kind in targets():
        old = path.read_text(encoding="utf-8")
        new = rewrite(path, kind)
        if new != old:
            changed.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    for p in changed:
        print(p.relative_to(ROOT))
    if args.check:
        return 1 if changed else 0
    py = [str(p) for p in changed if p.suffix == ".py"]
    ruff = _ruff()
    if py and ruff:
        subprocess.run([ruff, "check", "--quiet", "--select", "I", "--fix", *py], cwd=ROOT, check=False)
    elif py:
        print("ruff not found: imports may need sorting (ruff check --select I --fix)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
