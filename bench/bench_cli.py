"""Benchmark: CLI start and ``cnilab down``, each against its anchor measured in the same run.

Why: ``down``, ``status`` and ``--help`` are typed by hand many times a day; issue 16 set
``cnilab --help`` <= 0.2 s and ``cnilab down`` (a v1-gre lab, CLI start included) <= 0.4 s.
Anchors: ``python -c pass`` with the same interpreter (what any Python CLI pays) and a plain
teardown of the same number of namespaces with ``ip netns del`` (what removing the lab's kernel
state costs). Run as root: ``.venv/bin/python bench/bench_cli.py [--runs 5] [--no-write]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "## CLI start and down (bench/bench_cli.py)"
CNILAB = str(Path(sys.executable).with_name("cnilab"))
sys.path.insert(0, str(ROOT))

from bench.results import run_args, write_section  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def up_lab(env: dict[str, str]) -> str:
    name = f"bc-{uuid.uuid4().hex[:6]}"
    subprocess.run([CNILAB, "up", str(ROOT / "topologies" / "v1-gre.yml"), "--name", name], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return name


BARE_TYPER = """
import typer
app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)
@app.command()
def up(topology: str) -> None:
    \"\"\"Bring a lab up.\"\"\"
@app.command()
def down() -> None:
    \"\"\"Remove it.\"\"\"
app()
"""


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    """user+sys CPU seconds of one run: hardly depends on how busy the shared machine is."""
    before = os.times()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def plain_netns_teardown(n: int) -> float:
    names = [f"bcn-{uuid.uuid4().hex[:6]}-{i}" for i in range(n)]
    for ns in names:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    t0 = time.monotonic()
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    return time.monotonic() - t0


def main() -> None:
    args = run_args(__doc__, 5)
    med = statistics.median
    with tempfile.TemporaryDirectory(prefix="cnilab-bcli-") as state:
        env = {**os.environ, "CNILAB_STATE_DIR": state, "PYTHONPATH": str(ROOT)}
        py, bare, helps, downs, plain = [], [], [], [], []
        cpu: dict[str, list[float]] = {"bare": [], "help": [], "down": []}
        for _ in range(args.runs):  # interleaved: each pair sees the same load
            py.append(timed([sys.executable, "-c", "pass"], env))
            bare.append(timed([sys.executable, "-c", BARE_TYPER, "--help"], env))
            helps.append(timed([CNILAB, "--help"], env))
            cpu["bare"].append(cpu_of([sys.executable, "-c", BARE_TYPER, "--help"], env))
            cpu["help"].append(cpu_of([CNILAB, "--help"], env))
            name = up_lab(env)
            t0 = time.monotonic()
            cpu["down"].append(cpu_of([CNILAB, "down", "--lab", name], env))
            downs.append(time.monotonic() - t0)
            plain.append(plain_netns_teardown(4))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    def runs(xs: list[float]) -> str:
        return ", ".join(f"{x:.2f}" for x in xs)

    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, load average {load} (shared machine), "
        f"median of {args.runs} interleaved runs.", "",
        "| what | cnilab (s) | anchor (s) | anchor | goal |", "|---|---|---|---|---|",
        f"| `cnilab --help` | {med(helps):.2f} ({runs(helps)}); CPU {med(cpu['help']):.2f} | {med(py):.2f} | "
        "`python -c pass` | <= 0.2 s |",
        f"| `cnilab --help` vs the floor of any typer CLI | {med(helps):.2f} | {med(bare):.2f} ({runs(bare)}); "
        f"CPU {med(cpu['bare']):.2f} | a bare typer app with two commands, `--help` | - |",
        f"| `cnilab down` v1-gre (4 namespaces, 7 daemons) | {med(downs):.2f} ({runs(downs)}); CPU "
        f"{med(cpu['down']):.2f} | {med(plain):.2f} | `ip netns del` x4 | <= 0.4 s |",
    ]
    print("\n".join(lines), flush=True)
    if not args.no_write:
        write_section(HEADER, lines)


if __name__ == "__main__":
    main()
