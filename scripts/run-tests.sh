#!/usr/bin/env bash
# Run the whole suite, then make sure nothing the tests started is left behind, even on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p artifacts
cleanup() { .venv/bin/cnilab down --all --quiet >/dev/null 2>&1 || true; }
trap cleanup EXIT
.venv/bin/ruff check sim mock_api tests bench || exit 1
.venv/bin/python -m pytest -p no:cacheprovider --junitxml=artifacts/junit.xml "$@"
