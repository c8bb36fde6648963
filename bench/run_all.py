"""Run every benchmark in turn (``make bench``); each updates its own section of bench/RESULTS.md.

Benchmarks are slow and machine-dependent, so they are never part of ``make test``. Each runs as a
module of the checkout (``python -m bench.bench_x``), so its ``bench.`` helpers import however the
checkout is installed. Stopping this runner (SIGTERM, Ctrl-C) interrupts the running benchmark with
SIGINT, whose KeyboardInterrupt unwinds its ``finally`` blocks: the labs, namespaces and tunnel
endpoints it made are removed, not orphaned, and the benchmarks after it do not run. (A benchmark
cannot turn SIGTERM into an exception itself: pyroute2's forked helpers would inherit the handler.
And a job started in the background of a non-interactive shell inherits SIGINT *ignored*, so each
benchmark starts with SIGINT back to its default.)
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    ["bench_lab"], ["bench_cli"], ["bench_gre"], ["bench_bgp", "--record"], ["bench_bfd"],
    ["bench_failover"], ["bench_api"], ["bench_des", "--append"], ["bench_backends"],
    ["bench_magic"], ["bench_verify"],
]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Runner:
    """Runs one benchmark at a time; SIGTERM interrupts the running one (SIGINT) and stops the rest."""

    def __init__(self) -> None:
        self.stopping = False
        self._child: subprocess.Popen[bytes] | None = None

    def run(self, argv: list[str]) -> int:
        self._child = subprocess.Popen([sys.executable, "-m", f"bench.{argv[0]}", *argv[1:]], cwd=HERE.parent,
                                       preexec_fn=_default_sigint)
        try:
            return self._child.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the benchmark too (same process group): let it unwind
            self.stopping = True
            return self._child.wait()
        finally:
            self._child = None

    def stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        if self._child is not None:
            self._child.send_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=[a[0] for a in ORDER],
                    help="run only these benchmarks (module names, e.g. bench_lab)")
    args = ap.parse_args(argv)
    runner = _Runner()
    signal.signal(signal.SIGTERM, runner.stop)
    failed = []
    for bench in ORDER:
        if args.only and bench[0] not in args.only:
            continue
        print(f"== {' '.join(bench)}", flush=True)
        if runner.run(bench):
            failed.append(bench[0])
        if runner.stopping:
            print("stopped: the running benchmark was interrupted and cleaned up; the rest did not run")
            return 1
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
