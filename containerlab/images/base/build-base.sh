#!/usr/bin/env bash
# Build localhost/cnilab-base:bookworm from the Debian mirror with debootstrap, for machines that
# reach a Debian mirror but no container registry (no docker.io, no quay.io). The edge and FRR
# Dockerfiles take `--build-arg BASE=localhost/cnilab-base:bookworm` and then build offline-from-
# registries exactly as they build FROM python:3.11-slim-bookworm / debian:bookworm-slim elsewhere.
#
# Idempotent: the image carries a label with the hash of this script, and an image whose label
# matches is kept. Needs root (debootstrap) and podman (or docker: set ENGINE=docker).
#
#   containerlab/images/base/build-base.sh            # build if missing or stale
#   FORCE=1 containerlab/images/base/build-base.sh    # rebuild
set -euo pipefail

ENGINE=${ENGINE:-podman}
IMAGE=${IMAGE:-localhost/cnilab-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# python3 + iproute2 are what the lab needs; pip/venv install cnilab in the edge image; ping,
# procps, iptables/nftables serve probes and faults inside containers.
PACKAGES=python3,python3-venv,python3-pip,iproute2,iputils-ping,procps,ca-certificates,nftables,iptables,tcpdump

want=$( (cat "$0"; echo "$IMAGE $MIRROR $PACKAGES") | sha256sum | cut -c1-16)
have=$($ENGINE image inspect --format '{{ index .Labels "cnilab.base.hash" }}' "$IMAGE" 2>/dev/null || true)
if [ "$have" = "$want" ] && [ -z "${FORCE:-}" ]; then
  echo "build-base: $IMAGE is up to date ($want)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-base: debootstrap needs root" >&2
  exit 1
fi

root=$(mktemp -d /var/tmp/cnilab-base.XXXXXX)
cleanup() { rm -rf --one-file-system "$root"; }
trap cleanup EXIT

echo "build-base: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || {
  tail -30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Slim the tree the way the official debian:*-slim images do, and point apt at the same mirror.
echo "deb $MIRROR $SUITE main" > "$root/etc/apt/sources.list"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*.log

quiet=""; [ "$ENGINE" = podman ] && quiet=--quiet  # docker import has no --quiet
tar -C "$root" --numeric-owner -c . | $ENGINE import $quiet \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL cnilab.base.hash=$want" \
  --change 'ENV LANG=C.UTF-8' \
  - "$IMAGE" >/dev/null
echo "build-base: built $IMAGE ($want)"
