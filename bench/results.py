"""bench/RESULTS.md is shared by every benchmark: each owns one ``## `` section and replaces only it."""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(header: str, lines: list[str], path: Path = RESULTS) -> None:
    """Replace the section that starts with ``header`` (or append it) with ``lines``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = header + "\n\n" + "\n".join(lines) + "\n"
    if header in text:
        before, rest = text.split(header, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1:] if nxt >= 0 else ""
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def run_args(doc: str, runs: int) -> argparse.Namespace:
    """The options every repeated-run benchmark takes: ``--runs`` and ``--no-write`` (print only)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    return ap.parse_args()


def host_line() -> str:
    """Date, host and kernel: the figures in a section are only comparable with these alongside."""
    return f"{time.strftime('%Y-%m-%d')}, {platform.node()}, kernel {platform.release()}"
