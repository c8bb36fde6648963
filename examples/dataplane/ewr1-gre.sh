#!/bin/sh
# edge-rtr-02 (Linux, FRR/BIRD): our end of the Cloudflare CNI GRE tunnel at EWR1 (dataplane v1).
# Values from Cloudflare's onboarding sheet: CNI /31 192.0.2.10 (CF) / 192.0.2.11 (us),
# tunnel inner 10.212.0.0/31 (CF .0, us .1) and fd00:cf:6e::/127 (CF ::0, us ::1).
# cnilab runs these lines as written (no shell): `cnilab test --dataplane examples/dataplane/ewr1-gre.sh`
set -e
modprobe ip_gre
ip tunnel add cf-ewr1 mode gre local 192.0.2.11 remote 192.0.2.10 ttl 255
ip link set cf-ewr1 mtu 1476 up
ip addr add 10.212.0.1/31 dev cf-ewr1
ip -6 addr add fd00:cf:6e::1/127 dev cf-ewr1
sysctl -w net.ipv4.ip_forward=1
sysctl -w net.ipv6.conf.all.forwarding=1

# TCP MSS: 1476 (tunnel MTU) - 20 (IPv4) - 20 (TCP) = 1436; IPv6 has a 40-byte header: 1416.
# Every forwarded SYN, both ways: Cloudflare delivers to us on ewr1.100 (plain IP, v1) while our
# replies leave through cf-ewr1, so the MSS our LAN hosts learn must already fit the tunnel.
nft add table inet mssfix
nft add chain inet mssfix forward '{ type filter hook forward priority mangle; policy accept; }'
nft add rule inet mssfix forward meta nfproto ipv4 tcp flags syn tcp option maxseg size '>' 1436 tcp option maxseg size set 1436
nft add rule inet mssfix forward meta nfproto ipv6 tcp flags syn tcp option maxseg size '>' 1416 tcp option maxseg size set 1416
