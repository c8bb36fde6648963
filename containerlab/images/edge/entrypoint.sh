#!/bin/sh
# Edge container entrypoint. containerlab starts the container first and wires its links
# (eth1..) afterwards, so wait for every interface the export lists before starting the edge,
# otherwise ExaBGP/BFD would bind to addresses that do not exist yet.
#
#   /etc/cnilab   config dir written by `cnilab export containerlab` (plan.json, exabgp.conf, ...)
#   /run/cnilab   control-socket dir, bind-mounted from the host so that
#                 `cnilab bgp|bfd|fault --backend containerlab --lab NAME` attaches by name
# With arguments, run them instead (the docker backend starts daemons itself: `sleep infinity`).
set -eu
if [ "$#" -gt 0 ]; then exec "$@"; fi

conf=${CNILAB_CONFIG_DIR:-/etc/cnilab}
ctl=${CNILAB_CONTROL_DIR:-/run/cnilab}
mkdir -p "$ctl"
if [ -f "$conf/interfaces" ]; then
  for ifname in $(cat "$conf/interfaces"); do
    i=0
    until [ -e "/sys/class/net/$ifname" ]; do
      i=$((i + 1)); [ "$i" -gt 600 ] && { echo "edge: $ifname never appeared" >&2; exit 1; }
      sleep 0.1
    done
  done
fi
# The edge runner (sim.edge) renders and runs ExaBGP + BFD + GRE from the exported plan.
exec python3 -m sim.edge --config-dir "$conf" --control-dir "$ctl"
