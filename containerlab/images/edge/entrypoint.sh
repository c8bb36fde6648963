#!/bin/sh
# Edge container entrypoint. containerlab starts the container first and wires its links
# (eth1..) afterwards, so wait for every interface the export lists before starting the edge,
# otherwise ExaBGP/BFD would bind to addresses that do not exist yet.
#
#   /etc/cnilab   config dir written by `cnilab export containerlab` (edge.json, exabgp.conf, ...)
#   /run/cnilab   writable run dir, bind-mounted from the host (/run/cnilab/containerlab/LAB/cf):
#                 the driver's control socket lives there, so `cnilab bgp|bfd|fault --backend
#                 containerlab --lab NAME` attaches from the host by name
# With arguments, run them instead (the docker backend starts daemons itself).
set -eu
if [ "$#" -gt 0 ]; then exec "$@"; fi

conf=${CNILAB_CONFIG_DIR:-/etc/cnilab}
run=${CNILAB_CONTROL_DIR:-/run/cnilab}
mkdir -p "$run"
if [ -f "$conf/interfaces" ]; then
  for ifname in $(cat "$conf/interfaces"); do
    i=0
    until [ -e "/sys/class/net/$ifname" ]; do
      i=$((i + 1)); [ "$i" -gt 600 ] && { echo "edge: $ifname never appeared" >&2; exit 1; }
      sleep 0.1
    done
  done
fi
for f in edge.json exabgp.conf; do
  [ -f "$conf/$f" ] || { echo "edge: $conf/$f missing (re-run cnilab export containerlab)" >&2; exit 1; }
  cp "$conf/$f" "$run/$f"
done
# ExaBGP runs the lab driver (sim.edge.driver) as its API process; the driver serves control.sock.
exec env $(cat "$conf/exabgp.env") /opt/cnilab/bin/exabgp server "$run/exabgp.conf"
