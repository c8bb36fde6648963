#!/bin/bash
# Same tunnel, written the iproute2 + iptables way many runbooks still use.
ip link add name gre-cf type gre local 192.0.2.11 remote 192.0.2.10 ttl 255
ip addr add 10.212.0.1/31 dev gre-cf
ip -6 addr add fd00:cf:6e::1/127 dev gre-cf
ip link set dev gre-cf mtu 1476
ip link set dev gre-cf up
# SYNs both ways (v1 delivers Cloudflare->us outside the tunnel, our replies go inside it)
iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1437:65535 -j TCPMSS --set-mss 1436
ip6tables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -m tcpmss --mss 1417:65535 -j TCPMSS --set-mss 1416
