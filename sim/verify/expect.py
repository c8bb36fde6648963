"""The ``--expect`` file: the differences a change is meant to make, as the sentences verify prints.

Two forms, both UTF-8::

    # plain text: one declared difference per line, '#' comments
    198.51.100.0/24 to ewr1 gains prepend 65010 65010

    # or YAML
    changes:
      - 198.51.100.0/24 to ewr1 gains prepend 65010 65010
      - "customer installs 8.8.8.0/* (new)"     # shell-style wildcards are allowed

Matching ignores case and runs of whitespace. A declared line that matches no observed difference
is reported as "declared but not observed", which also fails: the change must be exactly the intent.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import yaml
from cnilab.sim.topology.load import ConfigError, read_config_text
from cnilab.sim.verify.model import Difference


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip()).lower()


def load_expect(path: Path) -> list[str]:
    """Declared sentences from ``path``; bad input raises ConfigError naming the file and entry."""
    text = read_config_text(path, "the --expect file")
    if not re.search(r"^changes\s*:", text, re.M):  # plain text (sentences may contain ': ')
        return [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    if isinstance(data, dict):
        if set(data) - {"changes"}:
            raise ConfigError(path, [f"unknown key(s) {sorted(set(data) - {'changes'})}: the file has one key, "
                                     "changes (a list of sentences)"])
        data = data.get("changes") or []
    if isinstance(data, list):
        lines = []
        for i, item in enumerate(data):
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(path, [f"changes[{i}] = {item!r}: each change is one sentence (a string) as "
                                         "`cnilab verify` prints it"])
            lines.append(item)
        return lines
    raise ConfigError(path, ["changes: must be a list of sentences"])


def match(diffs: list[Difference], declared: list[str]) -> tuple[list[Difference], list[str]]:
    """Mark declared differences; return (all diffs, declared sentences that matched nothing)."""
    patterns = [(d, _norm(d)) for d in declared]
    used: set[str] = set()
    out = []
    for d in diffs:
        t = _norm(d.text)
        hit = next((raw for raw, pat in patterns if t == pat or fnmatch.fnmatchcase(t, pat)), None)
        if hit is not None:
            used.add(hit)
        out.append(d.model_copy(update={"declared": hit is not None}))
    return out, [raw for raw, _ in patterns if raw not in used]
