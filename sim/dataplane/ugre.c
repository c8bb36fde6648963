/*
 * ugre.c - a userspace RFC 2784 GRE endpoint for cnilab.
 *
 * Why this exists: the lab needs a GRE tunnel between the Cloudflare edge node and the customer
 * router, but some kernels (including the one cnilab is developed on) have no ip_gre module. This
 * program does what `ip link add type gre` would: it creates a TUN device inside the node's network
 * namespace and carries every packet the kernel routes into it as IPv4/GRE to the peer, and every
 * GRE packet from the peer back into the TUN. The kernel still does all the routing, ICMP and PMTU
 * work on the TUN device (its MTU of 1476 makes the kernel itself answer oversized DF packets with
 * ICMP frag-needed), so the tunnel behaves like a kernel GRE device to FRR, BIRD and ExaBGP.
 *
 * Usage:
 *   ugre --netns PATH --ifname NAME --local A.B.C.D --remote A.B.C.D [--key N] [--ttl N] [--no-offload]
 *
 *   --netns        network namespace to enter first (/run/netns/X or /proc/PID/ns/net)
 *   --ifname       TUN device to create (non-persistent: it disappears when this process exits)
 *   --local        outer source address (must be configured in the namespace)
 *   --remote       outer address of the peer; GRE packets from any other source are dropped
 *   --key          RFC 2890 key: sent on every packet, required (and equal) on every received one
 *   --ttl          outer TTL (default 64)
 *   --no-offload   plain TUN, one packet per read/write (the kernel segments TCP before the TUN)
 *
 * The customer declares its own tunnel (sim/dataplane/declared.py), so a wrong --local or --remote
 * must behave as on a kernel GRE device, not fail to start: --local need not be configured
 * (IP_FREEBIND: packets leave with that source, and the peer drops them), and a --remote with no
 * route leaves the tunnel up with every send failing (counted as tx_errors).
 *
 * Wire format: 4-byte GRE header, no checksum/key/sequence on transmit, protocol type 0x0800
 * (IPv4) or 0x86DD (IPv6) picked from the inner packet's version nibble. On receive, the checksum
 * and sequence fields are skipped if present; keyed packets are dropped (this tunnel has no key,
 * exactly as a kernel GRE device without `key` drops them), as are version != 0 and routing.
 *
 * Design: two threads, one per direction, each blocking in its own syscall, so the two directions
 * use both CPUs. The TUN runs with virtio-net headers and TSO/checksum offload (IFF_VNET_HDR +
 * TUNSETOFFLOAD), as a VM's virtio NIC does: TUN->GRE reads one TCP super-packet of up to 64 KB,
 * cuts it into wire packets of at most the TUN MTU exactly as the kernel's GSO would, and sends
 * them with one sendmmsg(2). GRE->TUN reads in batches with recvmmsg(2) and merges in-order TCP
 * segments of one flow into one GSO packet per write, as GRO does on a NIC. Nothing on the wire
 * changes: every GRE packet still carries one inner packet of at most the MTU, with its checksums.
 * --no-offload keeps one packet per syscall (for comparison). The raw socket is connect()ed to the
 * peer, which makes the kernel itself discard GRE from other sources and lets IP_MTU report the
 * outer path MTU. The main thread only waits for signals: SIGTERM/SIGINT/SIGHUP print counters and
 * exit (closing the TUN fd removes the device), SIGUSR1 prints counters.
 *
 * Only libc is used; cnilab compiles this file with gcc on first use (sim/dataplane/ugre_build.py).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if.h>
#include <linux/icmp.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define GRE_HLEN 4
#define GRE_HMAX 8             /* with the key field */
#define MAX_PKT 65536          /* an outer packet reassembled from fragments can be this big */
#define RX_BATCH 32            /* packets per recvmmsg(2) call */
#define SOCK_BUF (4 << 20)     /* socket buffers: absorb TCP bursts instead of dropping them */
#define VNET_HLEN ((int)sizeof(struct virtio_net_hdr))
#define TX_SEGS 64             /* GRE packets per sendmmsg(2) call when cutting a TSO super-packet */
#define L34_MAX 128            /* inner IP + TCP headers of one TSO segment (IPv6 extension headers: no) */
#define GRO_SEGS 64            /* most segments merged into one packet written to the TUN */

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80

#define GRE_F_CSUM 0x8000
#define GRE_F_ROUTING 0x4000
#define GRE_F_KEY 0x2000
#define GRE_F_SEQ 0x1000
#define GRE_VERSION 0x0007

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86DD

struct counters {
    atomic_ulong tx_packets, tx_bytes, tx_errors, tx_too_big, icmp_sent;
    atomic_ulong rx_packets, rx_bytes, rx_errors, rx_bad_source, rx_bad_header;
};

/* Process-wide state shared by the two forwarding threads; set once in main before they start. */
static int tun_fd = -1, gre_fd = -1, icmp_fd = -1, icmp6_fd = -1;
static struct in_addr local_addr, remote_addr;
static int have_key, connected;
static int offload; /* the TUN speaks virtio_net_hdr and hands out TSO super-packets (TUNSETOFFLOAD) */
static uint32_t gre_key;
static struct counters ctr;
static const char *ifname_arg;

/* Header length this tunnel sends: 4 bytes (RFC 2784), 8 with a key (RFC 2890). */
static size_t tx_hlen(void) { return have_key ? GRE_HMAX : GRE_HLEN; }

static void die(const char *what) {
    fprintf(stderr, "ugre: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void print_counters(const char *why) {
    printf("ugre: %s if=%s tx_packets=%lu tx_bytes=%lu tx_errors=%lu tx_too_big=%lu icmp_sent=%lu "
           "rx_packets=%lu rx_bytes=%lu rx_errors=%lu rx_bad_source=%lu rx_bad_header=%lu\n",
           why, ifname_arg, atomic_load(&ctr.tx_packets), atomic_load(&ctr.tx_bytes),
           atomic_load(&ctr.tx_errors), atomic_load(&ctr.tx_too_big), atomic_load(&ctr.icmp_sent),
           atomic_load(&ctr.rx_packets), atomic_load(&ctr.rx_bytes), atomic_load(&ctr.rx_errors),
           atomic_load(&ctr.rx_bad_source), atomic_load(&ctr.rx_bad_header));
    fflush(stdout);
}

/*
 * Errors a socket reports asynchronously are one-shot and must not kill the tunnel: an ICMP from
 * the path (protocol unreachable while the peer endpoint is not up yet -> ENOPROTOOPT, host
 * unreachable, ...) is stored on the connected socket and returned by the next send or recv.
 * Only errors that mean this program itself is broken are fatal.
 */
static int transient(int err) {
    return err != EBADF && err != EFAULT && err != EINVAL && err != ENOTSOCK && err != EOPNOTSUPP;
}

static uint16_t inet_csum(const uint8_t *p, size_t len) {
    uint32_t sum = 0;
    for (; len > 1; p += 2, len -= 2) sum += (uint32_t)p[0] << 8 | p[1];
    if (len) sum += (uint32_t)p[0] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/*
 * The outer path got smaller than the tunnel MTU (IP_MTU of the connected socket dropped, e.g. a
 * fault lowered the link MTU or a router sent frag-needed for the outer packet). A kernel GRE device
 * answers an inner DF packet with ICMP frag-needed carrying the tunnel's new MTU; do the same.
 * The ICMP is sent from a raw ICMP socket, i.e. by this node's own stack (as the kernel's
 * icmp_send would): the source address is the node's, picked by routing, and a local sender gets it
 * through loopback. (Writing it into the TUN would not work: a packet arriving with one of the
 * node's own addresses as source is dropped as martian.)
 */
static int outer_room(void) {
    int mtu = 0;
    socklen_t sl = sizeof mtu;
    if (getsockopt(gre_fd, IPPROTO_IP, IP_MTU, &mtu, &sl) < 0) return -1;
    return mtu - 20 - (int)tx_hlen();
}

/* IPv6: ICMPv6 Packet Too Big (RFC 4443 3.2) to the inner source, as a kernel GRE device sends it
 * (ip_tunnel's tnl_update_pmtu); IPv6 has no DF bit, every packet is "DF". The kernel fills in the
 * checksum of a raw ICMPv6 socket. Never about an ICMPv6 error (next header 58, type < 128). */
static void send_packet_too_big(const uint8_t *inner, size_t len) {
    if (len < 40 || icmp6_fd < 0) return;
    if (inner[6] == IPPROTO_ICMPV6 && len > 40 && inner[40] < 128) return;
    int mtu = outer_room();
    if (mtu < 0) return;
    if (mtu < 1280) mtu = 1280;
    size_t quote = len < 1280 - 40 - 8 ? len : 1280 - 40 - 8;
    uint8_t msg[8 + 1280];
    memset(msg, 0, 8);
    msg[0] = 2; /* packet too big */
    msg[4] = (uint8_t)(mtu >> 24);
    msg[5] = (uint8_t)(mtu >> 16);
    msg[6] = (uint8_t)(mtu >> 8);
    msg[7] = (uint8_t)mtu;
    memcpy(msg + 8, inner, quote);
    struct sockaddr_in6 to = {.sin6_family = AF_INET6};
    memcpy(&to.sin6_addr, inner + 8, 16);
    if (sendto(icmp6_fd, msg, 8 + quote, 0, (struct sockaddr *)&to, sizeof to) > 0)
        atomic_fetch_add(&ctr.icmp_sent, 1);
}

static void send_frag_needed(const uint8_t *inner, size_t len) {
    if (len >= 40 && (inner[0] >> 4) == 6) {
        send_packet_too_big(inner, len);
        return;
    }
    if (len < 20 || (inner[0] >> 4) != 4) return;
    size_t ihl = (size_t)(inner[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl || !(inner[6] & 0x40)) return; /* only DF packets get frag-needed */
    if (inner[9] == IPPROTO_ICMP && len > ihl) { /* never an ICMP error about an ICMP error (RFC 1122) */
        uint8_t t = inner[ihl];
        if (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) return;
    }
    int mtu = 0;
    socklen_t sl = sizeof mtu;
    if (getsockopt(gre_fd, IPPROTO_IP, IP_MTU, &mtu, &sl) < 0) return;
    mtu -= 20 + (int)tx_hlen();
    if (mtu < 68) mtu = 68;
    size_t quote = ihl + 8 < len ? ihl + 8 : len;
    uint8_t icmp[8 + 60 + 8];
    memset(icmp, 0, sizeof icmp);
    icmp[0] = 3; /* destination unreachable */
    icmp[1] = 4; /* fragmentation needed and DF set */
    icmp[6] = (uint8_t)(mtu >> 8);
    icmp[7] = (uint8_t)mtu;
    memcpy(icmp + 8, inner, quote);
    uint16_t c = inet_csum(icmp, 8 + quote);
    icmp[2] = (uint8_t)(c >> 8);
    icmp[3] = (uint8_t)c;
    struct sockaddr_in to = {.sin_family = AF_INET};
    memcpy(&to.sin_addr, inner + 12, 4); /* back to the inner packet's source */
    if (sendto(icmp_fd, icmp, 8 + quote, 0, (struct sockaddr *)&to, sizeof to) > 0)
        atomic_fetch_add(&ctr.icmp_sent, 1);
}

/* Write the GRE header (C=S=0, K as configured, version 0) for the inner packet at p + tx_hlen(). */
static int put_gre_header(uint8_t *p) {
    size_t h = tx_hlen();
    unsigned version = p[h] >> 4;
    uint16_t proto = version == 4 ? ETH_P_IPV4 : version == 6 ? ETH_P_IPV6 : 0;
    if (!proto) return -1;
    p[0] = have_key ? 0x20 : 0; /* K bit */
    p[1] = 0;
    p[2] = (uint8_t)(proto >> 8);
    p[3] = (uint8_t)proto;
    if (have_key) {
        p[4] = (uint8_t)(gre_key >> 24);
        p[5] = (uint8_t)(gre_key >> 16);
        p[6] = (uint8_t)(gre_key >> 8);
        p[7] = (uint8_t)gre_key;
    }
    return 0;
}

/* send(2) on the connected socket, or sendto(2) when --remote had no route at start-up. */
static ssize_t gre_send(const uint8_t *p, size_t len) {
    if (connected) return send(gre_fd, p, len, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = remote_addr};
    return sendto(gre_fd, p, len, 0, (struct sockaddr *)&to, sizeof to);
}

/* A send failed for packet p (GRE header included): count it; answer EMSGSIZE like a kernel tunnel. */
static void send_failed(int err, uint8_t *p, size_t len) {
    if (err == EMSGSIZE) {
        atomic_fetch_add(&ctr.tx_too_big, 1);
        send_frag_needed(p + tx_hlen(), len - tx_hlen());
    } else if (transient(err)) {
        atomic_fetch_add(&ctr.tx_errors, 1);
    } else {
        errno = err;
        die("send gre");
    }
}

/*
 * Ones' complement sum (RFC 1071) in host byte order, 8 bytes a step: the folded result stored with
 * memcpy is the checksum in network order. Chained calls must start at even offsets.
 */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len) {
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        sum += (v & 0xffffffffu) + (v >> 32);
    }
    if (len >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        sum += v;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        sum += v;
        p += 2;
        len -= 2;
    }
    if (len) {
        uint16_t v = 0;
        memcpy(&v, p, 1);
        sum += v;
    }
    return sum;
}

static uint16_t csum_fold(uint64_t sum) {
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* TCP pseudo-header sum of an inner IPv4 or IPv6 packet for a TCP segment of tcp_len bytes. */
static uint64_t pseudo_sum(const uint8_t *ip, int v6, size_t tcp_len) {
    uint64_t sum = v6 ? csum_add(0, ip + 8, 32) : csum_add(0, ip + 12, 8);
    return sum + htons(IPPROTO_TCP) + htons((uint16_t)tcp_len);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

static void ipv4_header_csum(uint8_t *ip, size_t ihl) {
    ip[10] = ip[11] = 0;
    uint16_t c = (uint16_t)~csum_fold(csum_add(0, ip, ihl));
    memcpy(ip + 10, &c, 2);
}

/* Count and send a batch of GRE packets; a message the kernel refuses is answered like one send. */
static void send_batch(struct mmsghdr *msgs, int n) {
    const size_t h = tx_hlen();
    for (int done = 0; done < n;) {
        int r = sendmmsg(gre_fd, msgs + done, (unsigned)(n - done), 0);
        if (r < 0) {
            int err = errno;
            if (err == EINTR) continue;
            /* sendmmsg reports an error only for the first message of a call: flatten that one for
             * send_failed (it quotes the inner packet in frag-needed) and carry on after it. */
            static uint8_t flat[GRE_HMAX + MAX_PKT];
            struct msghdr *m = &msgs[done].msg_hdr;
            size_t len = 0;
            for (size_t i = 0; i < m->msg_iovlen; i++) {
                memcpy(flat + len, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len);
                len += m->msg_iov[i].iov_len;
            }
            send_failed(err, flat, len);
            done++;
            continue;
        }
        for (int i = done; i < done + r; i++) {
            atomic_fetch_add(&ctr.tx_packets, 1);
            atomic_fetch_add(&ctr.tx_bytes, (unsigned long)msgs[i].msg_len - h);
        }
        done += r;
    }
}

/*
 * A TSO super-packet from the TUN (one TCP segment of up to 64 KB, gso_size bytes of payload per
 * wire packet): cut it into the packets the kernel would have put on the wire, as the kernel's own
 * tcp_gso_segment does (sequence numbers advance, IPv4 ids count up, FIN/PSH only on the last,
 * CWR only on the first, checksums computed), and send them with one sendmmsg(2). Each inner packet
 * is at most the TUN MTU: TCP sized gso_size from it, so tunnel MTU semantics do not change.
 */
static void send_tso(const struct virtio_net_hdr *vh, uint8_t *pkt, size_t n) {
    static uint8_t hdrs[TX_SEGS][GRE_HMAX + L34_MAX];
    static struct iovec iov[TX_SEGS][2];
    static struct mmsghdr msgs[TX_SEGS];
    static struct sockaddr_in to;
    const size_t h = tx_hlen();
    int v6 = (pkt[0] >> 4) == 6;
    size_t l4 = vh->csum_start;
    size_t gso = vh->gso_size;
    uint8_t type = vh->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
    if ((type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6) ||
        (type == VIRTIO_NET_HDR_GSO_TCPV6) != v6 || (!v6 && (pkt[0] >> 4) != 4) || gso == 0 ||
        l4 != (v6 ? 40u : (size_t)(pkt[0] & 0x0f) * 4) || n < l4 + 20) {
        atomic_fetch_add(&ctr.tx_errors, 1);
        return;
    }
    size_t thl = (size_t)(pkt[l4 + 12] >> 4) * 4, hl = l4 + thl;
    if (thl < 20 || hl > L34_MAX || n <= hl) {
        atomic_fetch_add(&ctr.tx_errors, 1);
        return;
    }
    uint32_t seq = get32(pkt + l4 + 4);
    uint16_t id = get16(pkt + 4);
    uint8_t flags = pkt[l4 + 13];
    to.sin_family = AF_INET;
    to.sin_addr = remote_addr;
    int k = 0;
    for (size_t off = hl; off < n; off += gso) {
        size_t seg = n - off < gso ? n - off : gso;
        int last = off + seg >= n, first = off == hl;
        uint8_t *g = hdrs[k], *ip = g + h, *tcp = ip + l4;
        memcpy(ip, pkt, hl);
        put_gre_header(g);
        if (v6) {
            put16(ip + 4, (uint16_t)(hl - 40 + seg));
        } else {
            put16(ip + 2, (uint16_t)(hl + seg));
            put16(ip + 4, id++);
            ipv4_header_csum(ip, l4);
        }
        put32(tcp + 4, seq);
        seq += (uint32_t)seg;
        tcp[13] = (uint8_t)(flags & ~((last ? 0 : TCP_FIN | TCP_PSH) | (first ? 0 : TCP_CWR)));
        tcp[16] = tcp[17] = 0;
        uint64_t sum = pseudo_sum(ip, v6, thl + seg);
        sum = csum_add(sum, tcp, thl);
        sum = csum_add(sum, pkt + off, seg);
        uint16_t c = (uint16_t)~csum_fold(sum);
        memcpy(tcp + 16, &c, 2);
        iov[k][0] = (struct iovec){.iov_base = g, .iov_len = h + hl};
        iov[k][1] = (struct iovec){.iov_base = pkt + off, .iov_len = seg};
        msgs[k].msg_hdr = (struct msghdr){.msg_iov = iov[k], .msg_iovlen = 2};
        if (!connected) {
            msgs[k].msg_hdr.msg_name = &to;
            msgs[k].msg_hdr.msg_namelen = sizeof to;
        }
        if (++k == TX_SEGS || last) {
            send_batch(msgs, k);
            k = 0;
        }
    }
}

/* A packet the kernel left with a partial checksum (TUN_F_CSUM): finish it as skb_checksum_help would. */
static int finish_csum(const struct virtio_net_hdr *vh, uint8_t *pkt, size_t n) {
    size_t start = vh->csum_start, at = start + vh->csum_offset;
    if (at + 2 > n) return -1;
    uint16_t c = (uint16_t)~csum_fold(csum_add(0, pkt + start, n - start));
    if (c == 0) c = 0xffff;
    memcpy(pkt + at, &c, 2);
    return 0;
}

/*
 * Kernel -> peer: each read(2) on the TUN yields one inner IP packet, or with offloads one TSO
 * super-packet that send_tso() cuts into wire packets; prefix GRE and send.
 * A plain blocking read on purpose: a non-blocking drain + sendmmsg(2) batch of single packets was
 * measured slower here (the TCP sender produces packets at the rate they are consumed, so batches
 * stayed at 1-2 packets); TSO gives the batch for free instead.
 */
static void *tun_to_gre(void *unused) {
    (void)unused;
    static uint8_t buf[VNET_HLEN + GRE_HMAX + MAX_PKT]; /* only this thread uses it */
    const size_t h = tx_hlen();
    const size_t vlen = offload ? (size_t)VNET_HLEN : 0;
    uint8_t *pkt = buf + VNET_HLEN + GRE_HMAX; /* the GRE header fits in front of the packet */
    for (;;) {
        ssize_t n = read(tun_fd, pkt - vlen, MAX_PKT + vlen);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("read tun");
        }
        struct virtio_net_hdr vh = {0};
        if (vlen) memcpy(&vh, pkt - vlen, sizeof vh);
        n -= (ssize_t)vlen;
        if (n <= 0) {
            atomic_fetch_add(&ctr.tx_errors, 1);
            continue;
        }
        if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
            send_tso(&vh, pkt, (size_t)n);
            continue;
        }
        uint8_t *p = pkt - h;
        if (put_gre_header(p) < 0 ||
            ((vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && finish_csum(&vh, pkt, (size_t)n) < 0)) {
            atomic_fetch_add(&ctr.tx_errors, 1);
            continue;
        }
        if (gre_send(p, (size_t)n + h) < 0) {
            send_failed(errno, p, (size_t)n + h);
            continue;
        }
        atomic_fetch_add(&ctr.tx_packets, 1);
        atomic_fetch_add(&ctr.tx_bytes, (unsigned long)n);
    }
    return NULL;
}

/*
 * Validate one received outer packet (IPv4 header included, as raw sockets deliver it) and return
 * the offset of the inner packet, or -1 to drop it.
 */
static long parse_gre(const uint8_t *p, size_t len) {
    if (len < 20 || (p[0] >> 4) != 4) return -1;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl + GRE_HLEN || p[9] != IPPROTO_GRE) return -1;
    if (memcmp(p + 12, &remote_addr, 4) != 0) {
        atomic_fetch_add(&ctr.rx_bad_source, 1);
        return -1;
    }
    const uint8_t *g = p + ihl;
    uint16_t flags = (uint16_t)(g[0] << 8 | g[1]);
    uint16_t proto = (uint16_t)(g[2] << 8 | g[3]);
    /* A keyed tunnel takes only packets with its key; an unkeyed one only packets without a key,
     * exactly as the kernel's ip_gre matches tunnels (a key mismatch means "no such tunnel"). */
    if ((flags & (GRE_VERSION | GRE_F_ROUTING)) || (proto != ETH_P_IPV4 && proto != ETH_P_IPV6) ||
        (!(flags & GRE_F_KEY)) != !have_key) {
        atomic_fetch_add(&ctr.rx_bad_header, 1);
        return -1;
    }
    size_t koff = ihl + GRE_HLEN + ((flags & GRE_F_CSUM) ? 4 : 0);
    if (have_key) {
        if (len < koff + 4 || ((uint32_t)g[koff - ihl] << 24 | (uint32_t)g[koff - ihl + 1] << 16 |
                               (uint32_t)g[koff - ihl + 2] << 8 | g[koff - ihl + 3]) != gre_key) {
            atomic_fetch_add(&ctr.rx_bad_header, 1);
            return -1;
        }
    }
    size_t off = koff + ((flags & GRE_F_KEY) ? 4 : 0) + ((flags & GRE_F_SEQ) ? 4 : 0);
    if (off >= len) {
        atomic_fetch_add(&ctr.rx_bad_header, 1);
        return -1;
    }
    return (long)off;
}

/*
 * Receive-side coalescing (what the kernel's GRO does on a NIC): consecutive in-order TCP segments
 * of one flow from one recvmmsg(2) batch are written to the TUN as one GSO packet, so the node's
 * TCP stack handles (and acknowledges) them once. The rules are tcp_gro_receive's: identical
 * addresses, ports, ack, window, options, TTL/hop limit and TOS, IPv4 ids counting up, only ACK
 * (PSH ends the run), equal-size segments (a shorter one ends the run). Checksums are verified here
 * first, so a corrupted segment is never merged; it is written alone and the kernel drops it.
 */
struct tcp_seg {
    const uint8_t *ip;
    size_t len, l4, thl;
    int v6;
};

/* Is this inner packet a mergeable TCP data segment with good checksums? */
static int tcp_segment(const uint8_t *ip, size_t len, struct tcp_seg *t) {
    if (len < 40) return 0;
    if ((ip[0] >> 4) == 4) {
        if (ip[0] != 0x45 || get16(ip + 2) != len || (get16(ip + 6) & 0x3fff) || ip[9] != IPPROTO_TCP ||
            csum_fold(csum_add(0, ip, 20)) != 0xffff)
            return 0;
        t->l4 = 20;
        t->v6 = 0;
    } else if ((ip[0] >> 4) == 6) {
        if (len < 60 || get16(ip + 4) + 40u != len || ip[6] != IPPROTO_TCP) return 0;
        t->l4 = 40;
        t->v6 = 1;
    } else {
        return 0;
    }
    const uint8_t *tcp = ip + t->l4;
    t->thl = (size_t)(tcp[12] >> 4) * 4;
    if (t->thl < 20 || t->l4 + t->thl >= len || (tcp[13] & ~TCP_PSH) != TCP_ACK) return 0;
    t->ip = ip;
    t->len = len;
    return csum_fold(csum_add(pseudo_sum(ip, t->v6, len - t->l4), tcp, len - t->l4)) == 0xffff;
}

/* May segment t follow the run that starts with f and whose last segment is p? */
static int tcp_follows(const struct tcp_seg *f, const struct tcp_seg *p, const struct tcp_seg *t) {
    const uint8_t *a = f->ip, *b = t->ip, *ta = a + f->l4, *tb = b + t->l4;
    size_t gso = f->len - f->l4 - f->thl, seg = t->len - t->l4 - t->thl;
    if (t->v6 != f->v6 || t->thl != f->thl || seg > gso || (p->ip[p->l4 + 13] & TCP_PSH) ||
        p->len - p->l4 - p->thl != gso)
        return 0;
    if (f->v6 ? memcmp(a, b, 4) || a[7] != b[7] || memcmp(a + 8, b + 8, 32)
              : a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || memcmp(a + 12, b + 12, 8) ||
                    get16(b + 4) != (uint16_t)(get16(p->ip + 4) + 1))
        return 0;
    const uint8_t *tp = p->ip + p->l4;
    return !memcmp(ta, tb, 4) && get32(tb + 4) == get32(tp + 4) + (uint32_t)(p->len - p->l4 - p->thl) &&
           !memcmp(ta + 8, tb + 8, 5) && !memcmp(ta + 14, tb + 14, 2) && !memcmp(ta + 20, tb + 20, f->thl - 20);
}

/* Write one inner packet (room for the virtio header in front of it when offload is on). */
static void tun_write_one(uint8_t *inner, size_t len, int verified) {
    size_t vlen = offload ? (size_t)VNET_HLEN : 0;
    if (vlen) {
        struct virtio_net_hdr vh = {.flags = verified ? VIRTIO_NET_HDR_F_DATA_VALID : 0};
        memcpy(inner - vlen, &vh, sizeof vh);
    }
    if (write(tun_fd, inner - vlen, len + vlen) < 0) {
        atomic_fetch_add(&ctr.rx_errors, 1); /* e.g. TUN down: the kernel refuses it */
        return;
    }
    atomic_fetch_add(&ctr.rx_packets, 1);
    atomic_fetch_add(&ctr.rx_bytes, len);
}

/* Write a run of n merged segments as one GSO packet: the first one's headers, every payload. */
static void tun_write_run(struct tcp_seg *run, int n) {
    if (n == 1) {
        tun_write_one((uint8_t *)run[0].ip, run[0].len, 1);
        return;
    }
    const struct tcp_seg *f = &run[0];
    size_t hl = f->l4 + f->thl, total = hl;
    static uint8_t head[VNET_HLEN + L34_MAX];
    struct iovec iov[GRO_SEGS + 1];
    uint8_t *ip = head + VNET_HLEN, *tcp = ip + f->l4;
    memcpy(ip, f->ip, hl);
    iov[0] = (struct iovec){.iov_base = head, .iov_len = VNET_HLEN + hl};
    for (int i = 0; i < n; i++) {
        iov[i + 1] = (struct iovec){.iov_base = (uint8_t *)run[i].ip + hl, .iov_len = run[i].len - hl};
        total += run[i].len - hl;
    }
    tcp[13] |= run[n - 1].ip[f->l4 + 13] & TCP_PSH;
    if (f->v6) {
        put16(ip + 4, (uint16_t)(total - 40));
    } else {
        put16(ip + 2, (uint16_t)total);
        ipv4_header_csum(ip, 20);
    }
    uint16_t c = csum_fold(pseudo_sum(ip, f->v6, total - f->l4)); /* CHECKSUM_PARTIAL: pseudo-header only */
    memcpy(tcp + 16, &c, 2);
    struct virtio_net_hdr vh = {
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
        .gso_type = f->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4,
        .hdr_len = (uint16_t)hl,
        .gso_size = (uint16_t)(f->len - hl),
        .csum_start = (uint16_t)f->l4,
        .csum_offset = 16,
    };
    memcpy(head, &vh, sizeof vh);
    if (writev(tun_fd, iov, n + 1) < 0) {
        atomic_fetch_add(&ctr.rx_errors, (unsigned long)n);
        return;
    }
    atomic_fetch_add(&ctr.rx_packets, (unsigned long)n);
    for (int i = 0; i < n; i++) atomic_fetch_add(&ctr.rx_bytes, run[i].len);
}

/* Peer -> kernel: batch-receive GRE packets, check them, write the inner packets into the TUN. */
static void *gre_to_tun(void *unused) {
    (void)unused;
    uint8_t *bufs = malloc((size_t)RX_BATCH * MAX_PKT);
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct tcp_seg run[GRO_SEGS];
    if (!bufs) die("malloc");
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < RX_BATCH; i++) {
        iov[i].iov_base = bufs + (size_t)i * MAX_PKT;
        iov[i].iov_len = MAX_PKT;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    for (;;) {
        int n = recvmmsg(gre_fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (transient(errno)) continue;
            die("recvmmsg gre");
        }
        int nrun = 0;
        size_t run_bytes = 0;
        for (int i = 0; i < n; i++) {
            uint8_t *p = iov[i].iov_base;
            size_t len = msgs[i].msg_len;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                atomic_fetch_add(&ctr.rx_bad_header, 1);
                continue;
            }
            long off = parse_gre(p, len);
            if (off < 0) continue;
            /* parse_gre's offset is >= 24, so the virtio header fits in front of the inner packet */
            uint8_t *inner = p + off;
            size_t inner_len = len - (size_t)off;
            struct tcp_seg t;
            if (!offload || !tcp_segment(inner, inner_len, &t)) {
                if (nrun) tun_write_run(run, nrun);
                nrun = 0;
                tun_write_one(inner, inner_len, 0);
                continue;
            }
            if (nrun && (nrun == GRO_SEGS || run_bytes + t.len - t.l4 - t.thl > 65535 - L34_MAX ||
                         !tcp_follows(&run[0], &run[nrun - 1], &t))) {
                tun_write_run(run, nrun);
                nrun = 0;
            }
            if (!nrun) run_bytes = 0;
            run[nrun++] = t;
            run_bytes += t.len - t.l4 - t.thl;
        }
        if (nrun) tun_write_run(run, nrun);
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: ugre --netns PATH --ifname NAME --local ADDR --remote ADDR [--key N] [--ttl N] [--no-offload]\n");
    exit(2);
}

static void parse_addr(const char *opt, const char *s, struct in_addr *out) {
    if (inet_pton(AF_INET, s, out) != 1) {
        fprintf(stderr, "ugre: --%s: not an IPv4 address: %s\n", opt, s);
        exit(2);
    }
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"netns", required_argument, 0, 'n'}, {"ifname", required_argument, 0, 'i'},
        {"local", required_argument, 0, 'l'}, {"remote", required_argument, 0, 'r'},
        {"key", required_argument, 0, 'k'}, {"ttl", required_argument, 0, 't'},
        {"no-offload", no_argument, 0, 'o'},
        {0, 0, 0, 0},
    };
    const char *netns = NULL;
    int have_local = 0, have_remote = 0, c, ttl = 64, no_offload = 0;
    const char *offload_desc = "off";
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': netns = optarg; break;
        case 'i': ifname_arg = optarg; break;
        case 'l': parse_addr("local", optarg, &local_addr); have_local = 1; break;
        case 'r': parse_addr("remote", optarg, &remote_addr); have_remote = 1; break;
        case 'k': gre_key = (uint32_t)strtoul(optarg, &end, 0); have_key = 1; if (*end) usage(); break;
        case 'o': no_offload = 1; break;
        case 't': ttl = (int)strtol(optarg, &end, 0); if (*end || ttl < 0 || ttl > 255) usage(); break;
        default: usage();
        }
    }
    if (!netns || !ifname_arg || !have_local || !have_remote || optind != argc) usage();
    if (strlen(ifname_arg) >= IFNAMSIZ) {
        fprintf(stderr, "ugre: --ifname: longer than %d characters: %s\n", IFNAMSIZ - 1, ifname_arg);
        exit(2);
    }

    /* Signals are taken synchronously by the main thread only: block them before threads exist. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* Enter the node first: the TUN device and the raw socket belong to the netns they are made in. */
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) die(netns);
    if (setns(nsfd, CLONE_NEWNET) < 0) die("setns");
    close(nsfd);

    gre_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_GRE);
    if (gre_fd < 0) die("socket(AF_INET, SOCK_RAW, IPPROTO_GRE)");
    int v = SOCK_BUF;
    if (setsockopt(gre_fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
        setsockopt(gre_fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    if (setsockopt(gre_fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) < 0)
        setsockopt(gre_fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    /* Outer DF, like a kernel GRE device with pmtudisc (its default): never fragment the outer. */
    v = IP_PMTUDISC_DO;
    if (setsockopt(gre_fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, sizeof v) < 0) die("IP_MTU_DISCOVER");
    v = ttl ? ttl : 64; /* ttl 0 = inherit, which a raw socket cannot do: the kernel default */
    setsockopt(gre_fd, IPPROTO_IP, IP_TTL, &v, sizeof v);
    v = 1;
    setsockopt(gre_fd, IPPROTO_IP, IP_FREEBIND, &v, sizeof v);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = local_addr};
    if (bind(gre_fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind --local");
    sa.sin_addr = remote_addr;
    connected = connect(gre_fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (!connected) /* like a kernel tunnel toward an unroutable peer: up, and nothing gets through */
        fprintf(stderr, "ugre: warning: no route to --remote %s (%s): every packet will be dropped\n",
                inet_ntoa(remote_addr), strerror(errno));

    /* For send_frag_needed(); it never reads, so filter out every ICMP type it would receive. */
    icmp_fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (icmp_fd < 0) die("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)");
    icmp6_fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6); /* optional: IPv6 may be off */
    if (icmp6_fd >= 0) {
        struct { uint32_t data[8]; } block_all; /* ICMP6_FILTER: block every type (we never read) */
        memset(&block_all, 0xff, sizeof block_all);
        setsockopt(icmp6_fd, IPPROTO_ICMPV6, 1 /* ICMP6_FILTER */, &block_all, sizeof block_all);
    }
    struct icmp_filter all = {.data = ~0U};
    setsockopt(icmp_fd, SOL_RAW, ICMP_FILTER, &all, sizeof all);

    /* The TUN comes last: once the interface exists (what the Python wrapper waits for), the
     * sockets are known good, so a bad --local/--remote is reported before anything is configured. */
    tun_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun_fd < 0) die("/dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    /* not IFF_PERSIST: the device dies with this process */
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (no_offload ? 0 : IFF_VNET_HDR);
    strncpy(ifr.ifr_name, ifname_arg, IFNAMSIZ - 1);
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF (does the interface already exist?)");
    /* TSO/checksum offload: the kernel hands over whole TCP super-packets and lets this program cut
     * them (send_tso) instead of cutting them itself and waking us once per 1.4 KB. A kernel that
     * refuses keeps plain packets behind the virtio header. */
    if (!no_offload) {
        offload = 1;
        int hs = VNET_HLEN;
        if (ioctl(tun_fd, TUNSETVNETHDRSZ, &hs) < 0) die("TUNSETVNETHDRSZ");
        if (ioctl(tun_fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) == 0)
            offload_desc = "tso";
        else
            offload_desc = ioctl(tun_fd, TUNSETOFFLOAD, 0) == 0 ? "merge-only" : "none";
    }

    pthread_t t1, t2;
    if (pthread_create(&t1, NULL, tun_to_gre, NULL) || pthread_create(&t2, NULL, gre_to_tun, NULL))
        die("pthread_create");
    printf("ugre: ready if=%s netns=%s local=%s", ifname_arg, netns, inet_ntoa(local_addr));
    printf(" remote=%s offload=%s\n", inet_ntoa(remote_addr), offload_desc);
    fflush(stdout);

    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGUSR1) {
            print_counters("counters");
            continue;
        }
        print_counters("exit");
        _exit(0); /* closing the TUN fd removes the (non-persistent) device */
    }
}
