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
 *   ugre --netns PATH --ifname NAME --local A.B.C.D --remote A.B.C.D [--key N] [--ttl N]
 *
 *   --netns        network namespace to enter first (/run/netns/X or /proc/PID/ns/net)
 *   --ifname       TUN device to create (non-persistent: it disappears when this process exits)
 *   --local        outer source address (must be configured in the namespace)
 *   --remote       outer address of the peer; GRE packets from any other source are dropped
 *   --key          RFC 2890 key: sent on every packet, required (and equal) on every received one
 *   --ttl          outer TTL (default 64)
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
 * use both CPUs. GRE->TUN reads in batches with recvmmsg(2). The raw socket is connect()ed to the
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
#include <unistd.h>

#define GRE_HLEN 4
#define GRE_HMAX 8             /* with the key field */
#define MAX_PKT 65536          /* an outer packet reassembled from fragments can be this big */
#define RX_BATCH 32            /* packets per recvmmsg(2) call */
#define SOCK_BUF (4 << 20)     /* socket buffers: absorb TCP bursts instead of dropping them */

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
 * Kernel -> peer: each read(2) on the TUN yields one inner IP packet; prefix GRE and send it.
 * Plain blocking calls on purpose: a non-blocking drain + sendmmsg(2) batch was measured slower
 * here (the TCP sender produces packets at the rate they are consumed, so batches stay at 1-2
 * packets and the extra EAGAIN read + poll per batch cost more than the batching saves).
 */
static void *tun_to_gre(void *unused) {
    (void)unused;
    static uint8_t buf[GRE_HMAX + MAX_PKT]; /* only this thread uses it */
    const size_t h = tx_hlen();
    for (;;) {
        ssize_t n = read(tun_fd, buf + h, MAX_PKT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("read tun");
        }
        if (n == 0 || put_gre_header(buf) < 0) {
            atomic_fetch_add(&ctr.tx_errors, 1);
            continue;
        }
        if (gre_send(buf, (size_t)n + h) < 0) {
            send_failed(errno, buf, (size_t)n + h);
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

/* Peer -> kernel: batch-receive GRE packets, check them, write each inner packet into the TUN. */
static void *gre_to_tun(void *unused) {
    (void)unused;
    uint8_t *bufs = malloc((size_t)RX_BATCH * MAX_PKT);
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
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
        for (int i = 0; i < n; i++) {
            const uint8_t *p = iov[i].iov_base;
            size_t len = msgs[i].msg_len;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                atomic_fetch_add(&ctr.rx_bad_header, 1);
                continue;
            }
            long off = parse_gre(p, len);
            if (off < 0) continue;
            size_t inner_len = len - (size_t)off;
            if (write(tun_fd, p + off, inner_len) < 0) {
                atomic_fetch_add(&ctr.rx_errors, 1); /* e.g. TUN down: the kernel refuses it */
                continue;
            }
            atomic_fetch_add(&ctr.rx_packets, 1);
            atomic_fetch_add(&ctr.rx_bytes, inner_len);
        }
    }
    return NULL;
}

static void usage(void) {
    fprintf(stderr, "usage: ugre --netns PATH --ifname NAME --local ADDR --remote ADDR [--key N] [--ttl N]\n");
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
        {0, 0, 0, 0},
    };
    const char *netns = NULL;
    int have_local = 0, have_remote = 0, c, ttl = 64;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n': netns = optarg; break;
        case 'i': ifname_arg = optarg; break;
        case 'l': parse_addr("local", optarg, &local_addr); have_local = 1; break;
        case 'r': parse_addr("remote", optarg, &remote_addr); have_remote = 1; break;
        case 'k': gre_key = (uint32_t)strtoul(optarg, &end, 0); have_key = 1; if (*end) usage(); break;
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
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI; /* not IFF_PERSIST: the device dies with this process */
    strncpy(ifr.ifr_name, ifname_arg, IFNAMSIZ - 1);
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF (does the interface already exist?)");

    pthread_t t1, t2;
    if (pthread_create(&t1, NULL, tun_to_gre, NULL) || pthread_create(&t2, NULL, gre_to_tun, NULL))
        die("pthread_create");
    printf("ugre: ready if=%s netns=%s local=%s", ifname_arg, netns, inet_ntoa(local_addr));
    printf(" remote=%s\n", inet_ntoa(remote_addr));
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
