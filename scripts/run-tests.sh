#!/usr/bin/env bash
# Run the whole suite, then make sure nothing the tests started is left behind, even on failure.
#
# The suite runs on CNILAB_TEST_WORKERS pytest-xdist workers (default 2: most of its time is spent
# waiting on protocol timers, not on the CPU), one test module per worker at a time: a module-scoped
# lab is built once, and a module's tests run in file order as they do serially (the modules that
# use the container engine take turns through a lock, see tests/conftest.py). The temporary root is
# short and private to this run: FRR's and BIRD's unix socket paths under a test's tmp_path must
# stay under 108 bytes, and a colleague's run on the same machine has its own.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
basetemp=$(mktemp -d /tmp/cnt-XXXXXX)
cleanup() {
  .venv/bin/cnilab down --all --quiet >/dev/null 2>&1 || true
  rm -rf "$basetemp"
}
trap cleanup EXIT
.venv/bin/ruff check sim mock_api tests bench || exit 1
workers=${CNILAB_TEST_WORKERS:-2}
.venv/bin/python -m pytest -p no:cacheprovider -n "$workers" --dist loadfile --basetemp "$basetemp" \
  --junitxml=artifacts/junit.xml "$@"
