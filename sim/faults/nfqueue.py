"""A minimal nfnetlink_queue client: receive queued packet ids, give verdicts later.

Kernels without ``sch_netem`` still have NFQUEUE (``xt_NFQUEUE``). Holding a packet's verdict for
N milliseconds *is* a delay line, implemented entirely by the kernel's queue: we never copy payload
(``NFQNL_COPY_META``), we only decide when to say ACCEPT. The protocol is small enough that a
dependency (libnetfilter_queue + a C extension) would cost more than these lines.
"""

from __future__ import annotations

import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_DROP = 0
NF_ACCEPT = 1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


class NfQueue:
    """One bound queue. ``recv()`` yields packet ids; ``verdict(id, accept)`` releases them."""

    def __init__(self, queue_num: int, maxlen: int = 65536) -> None:
        self.queue_num = queue_num
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._seq = 0
        self._config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self._config(_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._config(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, msg_type: int, flags: int, body: bytes) -> None:
        self._seq += 1
        nfgen = struct.pack("!BBH", socket.AF_UNSPEC, 0, self.queue_num)
        payload = nfgen + body
        hdr = struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, self._seq, 0)
        self.sock.send(hdr + payload)

    def _config(self, attrs: bytes) -> None:
        self._send(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, attrs)
        data = self.sock.recv(65536)
        _length, mtype = struct.unpack_from("=IH", data)
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if err != 0:
                raise OSError(-err, f"nfqueue config failed: errno {-err}")

    def recv_ids(self) -> list[int]:
        """Packet ids in one read (the kernel batches several messages per datagram)."""
        data = self.sock.recv(1 << 20)
        ids: list[int] = []
        off = 0
        while off + 16 <= len(data):
            length, mtype = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 20  # nlmsghdr(16) + nfgenmsg(4)
                end = off + length
                while a + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if (atype & 0x7FFF) == NFQA_PACKET_HDR:
                        ids.append(struct.unpack_from("!I", data, a + 4)[0])
                        break
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3
        return ids

    def verdict(self, packet_id: int, accept: bool = True) -> None:
        self._send(NFQNL_MSG_VERDICT, NLM_F_REQUEST,
                   _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id)))

    def close(self) -> None:
        self.sock.close()
