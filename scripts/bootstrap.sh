#!/usr/bin/env bash
# Install everything cnilab needs on a fresh Debian 12 machine (as root): the Debian packages in
# packages.apt, a venv in .venv with cnilab and its dev extras, podman's runtime settings for this
# kind of host, and the compiled userspace dataplane helper. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bootstrap: run as root (the lab creates network namespaces and installs Debian packages)" >&2
  exit 1
fi

stamp=.venv/.bootstrap-stamp
want=$(cat packages.apt pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -z "${CNILAB_FORCE_BOOTSTRAP:-}" ]; then
  exit 0
fi

pkgs=$(grep -v '^#' packages.apt | xargs)
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null | grep -v 'install ok installed' | cut -d' ' -f1 || true)
for p in $pkgs; do dpkg-query -W "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$(echo $missing)" ]; then
  echo "bootstrap: apt-get install$(printf " %s" $missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

# FRR and BIRD are started per lab namespace by cnilab, never as system services.
for svc in frr bird; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true; systemctl disable "$svc" >/dev/null 2>&1 || true
  fi
done

# podman on these hosts: crun fails on hybrid cgroups, and default ulimits cannot be applied.
mkdir -p /etc/containers
if ! grep -q 'cnilab' /etc/containers/containers.conf 2>/dev/null; then
  cat >> /etc/containers/containers.conf <<'CONF'
# cnilab: runc, not crun (hybrid cgroups); no default ulimits (not permitted here)
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'
echo "$want" > "$stamp"
echo "bootstrap: ready ($(.venv/bin/python --version), cnilab $(.venv/bin/python -c 'import cnilab; print(cnilab.__version__)'))"
