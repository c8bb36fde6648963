"""Bring-up time of the same topology on the netns and docker backends, as a ratio.

What it answers: how much a container-based lab costs over namespaces before any daemon starts
(nodes, veths, addresses, routes, GRE) and, with ``--daemons``, until BGP is ready. Images are
built (or found in the cache) before timing starts; each run uses a unique lab name and a private
state dir, and every lab is torn down before the next one.

    .venv/bin/python bench/bench_backends.py [--topology topologies/v1-gre.yml] [--runs 5] [--daemons]

Prints a table and appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cnilab.sim.backends.docker import DockerBackend, PodmanService, connect  # noqa: E402
from cnilab.sim.export.images import ensure_local_images  # noqa: E402
from cnilab.sim.lab import lab as labmod  # noqa: E402
from cnilab.sim.topology.load import load_topology  # noqa: E402
from cnilab.sim.topology.plan import build_plan  # noqa: E402


def bring_up(topology: Path, backend: str, daemons: bool, make_docker) -> tuple[float, float]:
    """Seconds to bring the lab up, and to tear it down."""
    plan = build_plan(load_topology(topology), f"b-{uuid.uuid4().hex[:6]}")
    orig = labmod.make_backend
    if backend == "docker":
        labmod.make_backend = lambda kind, lab, workdir: make_docker(lab, workdir)
    try:
        t0 = time.perf_counter()
        cm = labmod.Lab.create(plan, backend, daemons=daemons, ready_timeout=60)
        lab = cm.__enter__()
        up = time.perf_counter() - t0
        t1 = time.perf_counter()
        cm.__exit__(None, None, None)
        down = time.perf_counter() - t1
    finally:
        labmod.make_backend = orig
    del lab
    return up, down


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", type=Path, default=REPO / "topologies" / "v1-gre.yml")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--daemons", action="store_true", help="also start FRR + edge and wait for BGP")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()

    client = connect()  # may start podman's service; stopped again below, as the last lab of any state root does
    engine = "podman" if "podman" in str(client.version().get("Components", "")).lower() else "docker"
    state = Path(tempfile.mkdtemp(prefix="cnb-", dir="/tmp"))
    prior_state = os.environ.get("CNILAB_STATE_DIR")  # where connect() recorded a service it started
    results: dict[str, list[tuple[float, float]]] = {"netns": [], "docker": []}
    try:
        images = ensure_local_images(client, engine=engine)
        os.environ["CNILAB_STATE_DIR"] = str(state)
        for _ in range(args.runs):  # interleaved, so machine load hits both alike
            for backend in results:
                results[backend].append(bring_up(
                    args.topology, backend, args.daemons,
                    lambda lab, workdir: DockerBackend(lab, workdir, images=images, client=client)))
    finally:
        shutil.rmtree(state, ignore_errors=True)
        if prior_state is None:
            os.environ.pop("CNILAB_STATE_DIR", None)
        else:
            os.environ["CNILAB_STATE_DIR"] = prior_state
        # only a service connect() started has a pid file, and it stays while any cnilab container runs
        PodmanService.stop_if_unused(client)
        client.close()

    med = {b: (statistics.median(u for u, _ in r), statistics.median(d for _, d in r)) for b, r in results.items()}
    what = "up incl. daemons + BGP ready" if args.daemons else "up (nodes, links, addresses, routes, GRE)"
    lines = [
        f"### Backend bring-up: {args.topology.name}, {what}",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, engine {engine}, "
        f"median of {args.runs} runs (interleaved), images prebuilt.",
        "",
        "| backend | bring-up s | teardown s |",
        "|---|---|---|",
        *(f"| {b} | {u:.2f} | {d:.2f} |" for b, (u, d) in med.items()),
        "",
        f"docker/netns bring-up ratio: **{med['docker'][0] / med['netns'][0]:.1f}x**, "
        f"teardown ratio: {med['docker'][1] / med['netns'][1]:.1f}x",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with open(REPO / "bench" / "RESULTS.md", "a") as fh:
            fh.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
