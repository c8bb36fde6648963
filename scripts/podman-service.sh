#!/usr/bin/env bash
# Serve podman's Docker-compatible API on unix:///run/podman/podman.sock, for the docker backend
# and the `docker` SDK on machines that have podman but no Docker Engine. Idempotent: if the socket
# already answers, nothing is started. Prints the PID it started (empty if it reused a running
# service), so a caller (the test fixture) can stop exactly what it started and nothing else.
#
#   scripts/podman-service.sh            # start if needed
#   scripts/podman-service.sh --stop PID # stop a service this script started
set -euo pipefail
SOCK=${CNILAB_PODMAN_SOCK:-/run/podman/podman.sock}

ping_sock() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

if [ "${1:-}" = "--stop" ]; then
  pid=${2:?usage: podman-service.sh --stop PID}
  # only a podman system service process, never a stranger that reused the PID
  if grep -qa "system" "/proc/$pid/cmdline" 2>/dev/null && grep -qa "podman" "/proc/$pid/cmdline"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  exit 0
fi

if ping_sock; then
  exit 0
fi
command -v podman >/dev/null || { echo "podman-service: podman is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$SOCK")"
rm -f "$SOCK"
log=${CNILAB_PODMAN_LOG:-/tmp/cnilab-podman-service.log}
setsid podman system service --time=0 "unix://$SOCK" >>"$log" 2>&1 < /dev/null &
pid=$!
for _ in $(seq 100); do
  if ping_sock; then echo "$pid"; exit 0; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "podman-service: podman system service did not answer on $SOCK (log: $log)" >&2
kill "$pid" 2>/dev/null || true
exit 1
