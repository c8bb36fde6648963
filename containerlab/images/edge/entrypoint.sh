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
# The interfaces exist before containerlab's `exec` lines give them their VLANs and addresses;
# ExaBGP would fail to listen on a session address that is not there yet (and exit, stopping the
# container), so wait for every session's local address as well.
if [ -f "$conf/edge.json" ]; then
  /opt/cnilab/bin/python - "$conf/edge.json" <<'PY' || exit 1
import ipaddress, json, subprocess, sys, time
want = {ipaddress.ip_address(s["cf_addr"]) for s in json.load(open(sys.argv[1])).get("sessions", [])}
deadline = time.monotonic() + 60
while True:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout or "[]"
    have = {ipaddress.ip_address(a["local"]) for i in json.loads(out) for a in i.get("addr_info", [])
            if "local" in a}
    missing = sorted(map(str, want - have))
    if not missing:
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit(f"edge: session addresses never configured: {', '.join(missing)}")
    time.sleep(0.1)
PY
fi
for f in edge.json exabgp.conf; do
  [ -f "$conf/$f" ] || { echo "edge: $conf/$f missing (re-run cnilab export containerlab)" >&2; exit 1; }
  cp "$conf/$f" "$run/$f"
done
# ExaBGP runs the lab driver (cnilab.sim.edge.driver) as its API process; the driver serves control.sock.
exec env $(cat "$conf/exabgp.env") /opt/cnilab/bin/exabgp server "$run/exabgp.conf"
