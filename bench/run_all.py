"""Run every benchmark in turn (``make bench``); each updates its own section of bench/RESULTS.md.

Benchmarks are slow and machine-dependent, so they are never part of ``make test``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    ["bench_lab.py"], ["bench_cli.py"], ["bench_gre.py"], ["bench_bgp.py", "--record"], ["bench_bfd.py"],
    ["bench_failover.py"], ["bench_api.py"], ["bench_des.py", "--append"], ["bench_backends.py"],
    ["bench_magic.py"], ["bench_verify.py"],
]


def main() -> int:
    failed = []
    for argv in ORDER:
        print(f"== {' '.join(argv)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent).returncode:
            failed.append(argv[0])
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
