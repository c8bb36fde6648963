"""BFD speaker: wire format, state machine, and real sessions against itself, FRR bfdd and BIRD 2.

Unit tests wire two :class:`BfdSession` objects back to back through the real codec (no sockets, no
root) with a short slow-start interval so they run in a second. Root tests build two network
namespaces joined by a veth and run real sessions; the daemon tests run FRR's bfdd and BIRD in the
peer namespace. Every namespace and process is removed in ``finally`` blocks even when a test fails,
and names carry a random tag so colleagues' parallel runs never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest
from cnilab.sim.edge.bfd import BfdSessionInfo, BfdSpeaker
from cnilab.sim.edge.bfd_fsm import BfdSession
from cnilab.sim.edge.bfd_packet import BfdInvalid, BfdPacket, Diag, State
from cnilab.sim.runtime.nsenter import call_in_netns as in_netns
from cnilab.sim.runtime.process import stop_popen
from cnilab.sim.testing import wait_for_async

from tests.labs import NsPair

FRR_BFDD = Path("/usr/lib/frr/bfdd")
BFD_PORT = 3784  # RFC 5881 single-hop control packets

# -- helpers ---------------------------------------------------------------------------------------


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())  # type: ignore[arg-type]


# -- codec -----------------------------------------------------------------------------------------


def test_codec_roundtrip_and_bit_positions() -> None:
    pkt = BfdPacket(state=State.Up, diag=Diag.ControlDetectionTimeExpired, poll=True, detect_mult=5,
                    my_discr=0x01020304, your_discr=0xA0B0C0D0, desired_min_tx_us=300_000,
                    required_min_rx_us=50_000)
    raw = pkt.encode()
    assert len(raw) == 24
    assert raw[0] == (1 << 5) | 1            # version 1, diag 1
    assert raw[1] == (3 << 6) | 0x20         # state Up, P bit
    assert raw[2] == 5 and raw[3] == 24
    assert raw[4:8] == bytes.fromhex("01020304") and raw[8:12] == bytes.fromhex("a0b0c0d0")
    assert int.from_bytes(raw[12:16], "big") == 300_000 and int.from_bytes(raw[20:24], "big") == 0
    assert BfdPacket.decode(raw) == pkt
    with pytest.raises(ValueError, match="Poll and Final"):
        BfdPacket(state=State.Up, my_discr=1, your_discr=2, poll=True, final=True).encode()


def test_codec_matches_scapy() -> None:
    """An independent implementation (scapy.contrib.bfd) reads what we write and vice versa."""
    bfd_mod = pytest.importorskip("scapy.contrib.bfd")
    ours = BfdPacket(state=State.Init, diag=Diag.NeighborSignaledSessionDown, final=True, detect_mult=3,
                     my_discr=7, your_discr=9, desired_min_tx_us=1_000_000, required_min_rx_us=300_000)
    theirs = bfd_mod.BFD(ours.encode())
    assert (theirs.version, theirs.diag, theirs.sta, theirs.detect_mult, theirs.len) == (1, 3, 2, 3, 24)
    assert "F" in str(theirs.flags) and "P" not in str(theirs.flags)
    assert (theirs.my_discriminator, theirs.your_discriminator) == (7, 9)
    assert (theirs.min_tx_interval, theirs.min_rx_interval) == (1_000_000, 300_000)
    back = BfdPacket.decode(bytes(bfd_mod.BFD(sta=3, flags="P", detect_mult=4, my_discriminator=11,
                                              your_discriminator=12, min_tx_interval=50_000,
                                              min_rx_interval=60_000)))
    assert (back.state, back.poll, back.final, back.detect_mult) == (State.Up, True, False, 4)
    assert (back.my_discr, back.your_discr, back.desired_min_tx_us, back.required_min_rx_us) == (11, 12, 50_000, 60_000)


def _mutate(raw: bytes, index: int, value: int) -> bytes:
    b = bytearray(raw)
    b[index] = value
    return bytes(b)


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        (lambda r: r[:20], "short"),
        (lambda r: _mutate(r, 0, (2 << 5)), "version"),
        (lambda r: _mutate(r, 3, 20), "length"),
        (lambda r: _mutate(r, 3, 40), "length"),              # Length beyond the payload
        (lambda r: _mutate(r, 2, 0), "detect_mult"),
        (lambda r: _mutate(r, 1, r[1] | 0x01), "multipoint"),
        (lambda r: r[:4] + bytes(4) + r[8:], "my_discr"),
        (lambda r: r[:8] + bytes(4) + r[12:], "your_discr"),  # zero your-discr while Up
        (lambda r: _mutate(_mutate(r, 1, r[1] | 0x04), 3, 26) + b"\x01\x02", "auth"),
        (lambda r: _mutate(r, 1, r[1] | 0x30), "poll_and_final"),
    ],
)
def test_codec_rejects_invalid_packets(mutation: Callable[[bytes], bytes], reason: str) -> None:
    good = BfdPacket(state=State.Up, my_discr=1, your_discr=2).encode()
    BfdPacket.decode(good)
    with pytest.raises(BfdInvalid) as exc:
        BfdPacket.decode(mutation(good))
    assert exc.value.reason == reason


def test_zero_your_discr_is_valid_while_down() -> None:
    pkt = BfdPacket.decode(BfdPacket(state=State.Down, my_discr=5).encode())
    assert pkt.your_discr == 0 and pkt.state == State.Down


# -- state machine, back to back without sockets ----------------------------------------------------


@dataclass
class Wire:
    """Carries encoded packets between two sessions with a small delay; ``cut`` blackholes both ways."""

    loop: asyncio.AbstractEventLoop
    cut: bool = False
    delay: float = 0.001
    log: list[tuple[str, BfdPacket]] | None = None

    def sender(self, name: str, dest: Callable[[], BfdSession]) -> Callable[[bytes], None]:
        def send(data: bytes) -> None:
            pkt = BfdPacket.decode(data)
            if self.log is not None:
                self.log.append((name, pkt))
            if not self.cut:
                self.loop.call_later(self.delay, dest().receive, pkt)
        return send


@dataclass
class Pair:
    """Two sessions back to back on one :class:`Wire`, and the state changes they reported."""

    a: BfdSession
    b: BfdSession
    wire: Wire
    events: list[tuple[str, str, str, float]]


@contextlib.asynccontextmanager
async def started_pair(tx: int = 20, rx: int = 20, mult: int = 3) -> AsyncIterator[Pair]:
    """Sessions ``a`` and ``b`` started in the running loop (every packet logged on the wire); closed on exit."""
    loop = asyncio.get_running_loop()
    wire = Wire(loop, log=[])
    events: list[tuple[str, str, str, float]] = []
    sessions: dict[str, BfdSession] = {}
    rng = random.Random(1)

    def on_change(info: BfdSessionInfo, old: str, new: str) -> None:
        events.append((info.key, old, new, loop.time()))

    for name, other, discr in (("a", "b", 111), ("b", "a", 222)):
        sessions[name] = BfdSession(
            key=name, local=ip_address("192.0.2.1"), peer=ip_address("192.0.2.2"), ifname=None,
            tx_ms=tx, rx_ms=rx, multiplier=mult, discr=discr,
            send=wire.sender(name, lambda o=other: sessions[o]), clock=loop, rng=rng,
            on_change=on_change, slow_tx_us=100_000)  # short slow start keeps unit tests fast
    pair = Pair(sessions["a"], sessions["b"], wire, events)
    try:
        pair.a.start()
        pair.b.start()
        yield pair
    finally:
        pair.a.close(False)
        pair.b.close(False)


def test_state_machine_up_poll_final_and_detection() -> None:
    async def main() -> None:
        async with started_pair() as pair:
            a, b, wire, events = pair.a, pair.b, pair.wire, pair.events
            await wait_for_async(lambda: a.state == b.state == State.Up and not a.poll_active and not b.poll_active,
                                 3, what="both Up with the slow->fast Poll finished")
            # Down -> Init -> Up on one side at least, Down -> Up/Init -> Up on the other
            assert ("a", "Down", "Init") in [e[:3] for e in events] or ("b", "Down", "Init") in [e[:3] for e in events]
            # the switch from the 100 ms slow start to 20 ms was a Poll answered by a Final
            assert a.counters.polls_completed >= 1 and b.counters.finals_sent >= 1
            polls = [p for n, p in wire.log if n == "a" and p.poll]
            assert polls and all(p.state == State.Up for p in polls)
            assert a.info().negotiated_tx_ms == 20 and a.info().detection_ms == 60

            # runtime timer change: a Poll carrying the new values, answered with a Final
            before = a.counters.polls_completed
            a.set_timers(50, 40, 4)
            assert a.poll_active and a.info().advertised_tx_ms == 50
            await wait_for_async(lambda: a.counters.polls_completed > before and not a.poll_active, 2, what="Final")
            # peer: our mult x max(its rx, our tx), once our first 50 ms packet has reached it
            await wait_for_async(lambda: b.info().detection_ms == 4 * max(20, 50), 1, what="peer uses our new timers")
            assert a.info().detection_ms == 3 * max(40, 20)
            assert b.info().negotiated_tx_ms == 40              # peer sends no faster than our rx
            assert a.state == b.state == State.Up

            # blackhole: both sides go Down with diag 1 within their detection time (+ margin)
            t0 = asyncio.get_running_loop().time()
            wire.cut = True
            await wait_for_async(lambda: a.state == State.Down and b.state == State.Down, 2, what="both Down")
            for s, det in ((a, 0.120), (b, 0.200)):
                assert s.local_diag == Diag.ControlDetectionTimeExpired
                down_at = next(e[3] for e in events if e[0] == s.key and e[2] == "Down")
                assert down_at - t0 <= det + 0.5  # generous: the machine is shared
                assert s.remote_discr == 0

            # heal: they come back Up by themselves
            wire.cut = False
            await wait_for_async(lambda: a.state == b.state == State.Up, 3, what="Up again after heal")
            assert a.local_diag == Diag.NoDiagnostic

    run(main)


def test_admin_down_signals_neighbor_and_jitter_bounds() -> None:
    async def main() -> None:
        async with started_pair() as pair:
            a, b = pair.a, pair.b
            await wait_for_async(lambda: a.state == b.state == State.Up, 3, what="Up")
            a.admin_down()
            await wait_for_async(lambda: b.state == State.Down, 1, what="peer Down")
            assert a.state == State.AdminDown and a.local_diag == Diag.AdministrativelyDown
            assert b.local_diag == Diag.NeighborSignaledSessionDown and b.remote_state == State.AdminDown
            await asyncio.sleep(0.5)
            assert b.state == State.Down  # the peer stays Down while we are AdminDown
            a.admin_up()
            await wait_for_async(lambda: a.state == b.state == State.Up, 3, what="Up after admin_up")
        # 6.8.7 jitter: 75-100 % of the interval, 75-90 % with multiplier 1
        for mult, hi in ((3, 1.0), (1, 0.9)):
            a.mult = mult
            vals = [a._jittered(100_000) for _ in range(2000)]
            assert 0.075 <= min(vals) < 0.08 and hi - 0.01 < max(vals) / 0.1 <= hi

    run(main)


def test_speaker_rejects_bad_sessions() -> None:
    async def main() -> None:
        async with BfdSpeaker() as sp:
            with pytest.raises(ValueError, match="local='nope'"):
                sp.add_session("nope", "192.0.2.1", 300, 300, 3)
            with pytest.raises(ValueError, match="different address families"):
                sp.add_session("192.0.2.1", "2001:db8::1", 300, 300, 3)
            with pytest.raises(ValueError, match="multiplier=0"):
                sp.add_session("192.0.2.1", "192.0.2.2", 300, 300, 0)
            with pytest.raises(ValueError, match="tx_ms=0"):
                sp.add_session("192.0.2.1", "192.0.2.2", 0, 300, 3)
            with pytest.raises(KeyError, match="no BFD session"):
                sp.set_timers("x->y", 300, 300, 3)
            assert sp.sessions() == []

    run(main)


# -- real sessions in network namespaces ------------------------------------------------------------


def _states(events: list[tuple[str, str, str, float, BfdSessionInfo]], key: str) -> list[str]:
    return [e[2] for e in events if e[0] == key]


@pytest.mark.root
@pytest.mark.parametrize("family", [4, 6])
def test_speaker_vs_speaker(ns_pair: NsPair, family: int) -> None:
    """Up at 300x3 with slow start, negotiated timers, Poll/Final on set_timers, GTSM drop, blackhole."""
    la, lb = (ns_pair.a4, ns_pair.b4) if family == 4 else (ns_pair.a6, ns_pair.b6)

    async def main() -> None:
        events: list[tuple[str, str, str, float, BfdSessionInfo]] = []

        def rec(side: str) -> Callable[[BfdSessionInfo, str, str], None]:
            return lambda info, old, new: events.append((side, old, new, time.monotonic(), info))

        async with BfdSpeaker(rec("a"), netns=ns_pair.a) as sa, BfdSpeaker(rec("b"), netns=ns_pair.b) as sb:
            ka = sa.add_session(la, lb, 300, 300, 3)
            kb = sb.add_session(lb, la, 300, 300, 3)
            assert sa.session(ka).advertised_tx_ms == 1000  # slow start while not Up (6.8.3)
            await wait_for_async(lambda: sa.session(ka).state == sb.session(kb).state == "Up"
                                 and sa.session(ka).polls_completed >= 1, 8, what="speakers Up")
            # the peer's slow->fast Poll may still be in flight: wait for the negotiated figures
            await wait_for_async(lambda: all(s.negotiated_tx_ms == 300 and s.detection_ms == 900 and not s.poll_active
                                             for s in (sa.session(ka), sb.session(kb))), 3, what="300x3 negotiated")
            ia, ib = sa.session(ka), sb.session(kb)
            assert ia.remote_discr == ib.local_discr and ib.remote_discr == ia.local_discr
            assert ib.finals_sent >= 1 and "Init" in _states(events, "a") + _states(events, "b")

            # runtime change to 50x3 on one side: Poll/Final, then both sides use the new values
            sa.set_timers(ka, 50, 50, 3)
            await wait_for_async(lambda: sa.session(ka).polls_completed >= 2 and not sa.session(ka).poll_active,
                                 3, what="Poll/Final after set_timers")
            await wait_for_async(lambda: sb.session(kb).detection_ms == 900 and sb.session(kb).negotiated_tx_ms == 300,
                                 2, what="peer keeps its own 300 ms tx (max of ours and its)")
            assert sa.session(ka).detection_ms == 3 * 300  # max(our rx 50, its tx 300)
            sb.set_timers(kb, 50, 50, 3)
            await wait_for_async(lambda: sa.session(ka).detection_ms == 150 and sb.session(kb).detection_ms == 150,
                                 3, what="50x3 both ways")

            # GTSM: a well-formed packet that arrives with TTL/hop limit 64 is dropped and counted
            def send_ttl64() -> None:
                fam = socket.AF_INET if family == 4 else socket.AF_INET6
                with socket.socket(fam, socket.SOCK_DGRAM) as s:
                    if family == 4:
                        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
                    else:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 64)
                    s.bind((lb, 0))
                    s.sendto(BfdPacket(state=State.AdminDown, my_discr=ib.local_discr,
                                       your_discr=ia.local_discr).encode(), (la, 3784))
            in_netns(ns_pair.b, send_ttl64)
            await wait_for_async(lambda: sa.session(ka).drop_reasons.get("ttl_64", 0) == 1, 2, what="TTL 64 drop")
            assert sa.session(ka).state == "Up"  # the forged AdminDown did not take it down

            # blackhole BFD into a: a goes Down with diag 1 within its detection time (+1 s)
            t0 = time.monotonic()
            await asyncio.to_thread(ns_pair.blackhole, ns_pair.a, BFD_PORT)
            await wait_for_async(lambda: sa.session(ka).state == "Down", 3, what="Down after blackhole")
            down = next(e for e in events if e[0] == "a" and e[2] == "Down")
            assert down[4].local_diag == 1 and down[4].local_diag_name == "ControlDetectionTimeExpired"
            assert down[3] - t0 < 0.150 + 1.0
            # b still receives a's Down packets and follows with diag 3
            await wait_for_async(lambda: sb.session(kb).state != "Up", 3, what="peer leaves Up")
            assert sb.session(kb).local_diag == 3
            await asyncio.to_thread(ns_pair.heal, ns_pair.a)
            await wait_for_async(lambda: sa.session(ka).state == sb.session(kb).state == "Up", 8, what="Up after heal")

    run(main)


@pytest.mark.root
def test_speaker_ipv6_link_local(ns_pair: NsPair) -> None:
    """Link-local peers need the interface (scope id); ``ifname`` binds both sockets to it."""
    for ns, ifn, addr in ((ns_pair.a, ns_pair.if_a, "fe80::a"), (ns_pair.b, ns_pair.if_b, "fe80::b")):
        ns_pair.sh(ns, "ip", "addr", "add", f"{addr}/64", "dev", ifn, "nodad")

    async def main() -> None:
        async with BfdSpeaker(netns=ns_pair.a) as sa, BfdSpeaker(netns=ns_pair.b) as sb:
            ka = sa.add_session("fe80::a", "fe80::b", 100, 100, 3, ifname=ns_pair.if_a)
            kb = sb.add_session("fe80::b", "fe80::a", 100, 100, 3, ifname=ns_pair.if_b)
            assert ka == f"fe80::a%{ns_pair.if_a}->fe80::b"
            await wait_for_async(lambda: sa.session(ka).state == sb.session(kb).state == "Up", 8, what="link-local Up")
            assert sa.session(ka).drop == 0 and sb.session(kb).ifname == ns_pair.if_b

    run(main)


# -- against real daemons ---------------------------------------------------------------------------


@contextlib.contextmanager
def daemon(ns: str, argv: list[str], log: Path, pidfile: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a daemon in the foreground inside ``ns``; always killed (and its pid file's process) on exit,
    with the tail of its log printed when the test fails."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    except BaseException:
        print(log.read_text()[-3000:])
        raise
    finally:
        stop_popen(proc, grace=3.0)
        if pidfile is not None and pidfile.exists():  # the daemon may have forked away from our pid
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def _frr_peers(ns: str, vty: Path) -> list[dict]:
    out = subprocess.run(["ip", "netns", "exec", ns, "vtysh", "--vty_socket", str(vty), "-d", "bfdd",
                          "-c", "show bfd peers json"], capture_output=True, text=True, timeout=10)
    try:
        return json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return []


@pytest.mark.root
@pytest.mark.daemons
def test_against_frr_bfdd(ns_pair: NsPair, tmp_path: Path) -> None:
    if not FRR_BFDD.exists() or not shutil.which("vtysh"):
        pytest.skip("FRR bfdd/vtysh not installed")
    conf = tmp_path / "bfdd.conf"
    conf.write_text(f"bfd\n peer {ns_pair.a4} local-address {ns_pair.b4}\n  receive-interval 300\n"
                    "  transmit-interval 300\n  detect-multiplier 3\n")
    # stay root (pytest's tmp tree is 0700, the frr user could not reach it); root must then name
    # the vty group explicitly or privs_init refuses to start
    argv = [str(FRR_BFDD), "-u", "root", "-g", "frrvty", "-f", str(conf), "-i", str(tmp_path / "bfdd.pid"),
            "--vty_socket", str(tmp_path),
            "--bfdctl", str(tmp_path / "bfdd.sock"), "-P", "0", "--log", "stdout"]

    async def main() -> None:
        events: list[tuple[str, str, float, BfdSessionInfo]] = []
        async with BfdSpeaker(lambda i, o, n: events.append((o, n, time.monotonic(), i)), netns=ns_pair.a) as sp:
            key = sp.add_session(ns_pair.a4, ns_pair.b4, 300, 300, 3)

            def frr_up() -> bool:
                peers = _frr_peers(ns_pair.b, tmp_path)
                return bool(peers) and peers[0].get("status") == "up"

            await wait_for_async(lambda: sp.session(key).state == "Up" and not sp.session(key).poll_active, 10,
                                 what="Up")
            await wait_for_async(frr_up, 5, 0.3, what="FRR reports the peer up")
            # bfdd runs its own slow->fast Poll after Up: wait for its 300 ms to reach us
            await wait_for_async(lambda: sp.session(key).remote_tx_ms == 300 and sp.session(key).detection_ms == 900,
                                 3, what="bfdd's 300 ms desired TX")
            info = sp.session(key)
            assert info.remote_rx_ms == 300 and info.remote_multiplier == 3 and info.negotiated_tx_ms == 300
            peer = _frr_peers(ns_pair.b, tmp_path)[0]
            assert peer["remote-transmit-interval"] == 300 and peer["remote-detect-multiplier"] == 3

            # set_timers: Poll answered by bfdd's Final; bfdd then shows our new intervals
            done = sp.session(key).polls_completed
            sp.set_timers(key, 200, 200, 4)
            await wait_for_async(lambda: sp.session(key).polls_completed > done, 3, what="Final from bfdd")
            await wait_for_async(lambda: _frr_peers(ns_pair.b, tmp_path)[0].get("remote-transmit-interval") == 200,
                                 5, 0.3, what="bfdd sees 200 ms")
            assert _frr_peers(ns_pair.b, tmp_path)[0]["remote-detect-multiplier"] == 4
            assert sp.session(key).state == "Up"

            # cut the link from the far side: detection with diag 1 within 900 ms (+1 s)
            t0 = time.monotonic()
            await asyncio.to_thread(ns_pair.sh, ns_pair.b, "ip", "link", "set", ns_pair.if_b, "down")
            await wait_for_async(lambda: sp.session(key).state == "Down", 3, what="Down after link cut")
            o, _new, t1, i = next(e for e in events if e[1] == "Down")
            assert o == "Up" and i.local_diag == 1 and t1 - t0 < 0.9 + 1.0

    with daemon(ns_pair.b, argv, tmp_path / "bfdd.log", tmp_path / "bfdd.pid"):
        run(main)


@pytest.mark.root
@pytest.mark.daemons
def test_against_bird(ns_pair: NsPair, tmp_path: Path) -> None:
    if not shutil.which("bird") or not shutil.which("birdc"):
        pytest.skip("BIRD 2 not installed")
    conf = tmp_path / "bird.conf"
    conf.write_text(f"router id {ns_pair.b4};\nprotocol device {{}}\nprotocol bfd {{\n  neighbor {ns_pair.a4};\n"
                    '  interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n}\n')
    ctl = tmp_path / "bird.ctl"
    argv = ["bird", "-f", "-c", str(conf), "-s", str(ctl), "-P", str(tmp_path / "bird.pid")]

    def bird_state() -> str:
        out = subprocess.run(["ip", "netns", "exec", ns_pair.b, "birdc", "-s", str(ctl), "show", "bfd", "sessions"],
                             capture_output=True, text=True, timeout=10).stdout
        row = next((ln.split() for ln in out.splitlines() if ln.startswith(ns_pair.a4)), [])
        return row[2] if len(row) > 2 else ""

    async def main() -> None:
        async with BfdSpeaker(netns=ns_pair.a) as sp:
            key = sp.add_session(ns_pair.a4, ns_pair.b4, 300, 300, 3)
            await wait_for_async(lambda: sp.session(key).state == "Up" and not sp.session(key).poll_active, 10,
                                 what="Up")
            await wait_for_async(lambda: bird_state() == "Up", 5, 0.3, what="BIRD shows Up")
            await wait_for_async(lambda: sp.session(key).remote_tx_ms == 300 and sp.session(key).detection_ms == 900,
                                 3, what="BIRD's 300 ms desired TX")
            assert sp.session(key).negotiated_tx_ms == 300 and sp.session(key).remote_multiplier == 3
            await asyncio.sleep(1.5)  # stays Up across several detection times
            assert sp.session(key).state == "Up" and sp.session(key).drop == 0
            sp.admin_down(key)
            await wait_for_async(lambda: bird_state() == "Down", 5, 0.3, what="BIRD follows AdminDown")

    with daemon(ns_pair.b, argv, tmp_path / "bird.log", tmp_path / "bird.pid"):
        run(main)


@pytest.mark.root
def test_bfd_main_runner_events(ns_pair: NsPair, tmp_path: Path) -> None:
    """The standalone runner comes Up against the in-process speaker and prints JSON state events."""
    import sys

    async def main() -> None:
        async with BfdSpeaker(netns=ns_pair.a) as sp:
            key = sp.add_session(ns_pair.a6, ns_pair.b6, 100, 100, 3)
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns_pair.b, sys.executable, "-m", "cnilab.sim.edge.bfd_main",
                "--local", ns_pair.b6,
                "--peer", ns_pair.a6, "--tx", "100", "--rx", "100", "--mult", "3", "--json-events",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parent.parent))
            try:
                await wait_for_async(lambda: sp.session(key).state == "Up", 8, what="Up against the runner")
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(b'{"cmd": "status"}\n')
                await proc.stdin.drain()
                lines: list[dict] = []
                while not any(ln["event"] == "ok" for ln in lines):
                    lines.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), 5)))
                assert any(ln["event"] == "state" and ln["new"] == "Up" for ln in lines)
                assert lines[-1]["info"]["detection_ms"] == 300
                proc.send_signal(signal.SIGTERM)  # clean stop sends AdminDown: we see diag 3, not 1
                await asyncio.wait_for(proc.wait(), 5)
                await wait_for_async(lambda: sp.session(key).state == "Down", 2, what="Down after runner stop")
                assert sp.session(key).local_diag == 3
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    run(main)


class _ManualClock:
    """A virtual clock for BfdSession: timers run only when the test advances time (deterministic)."""

    @dataclass
    class Handle:
        at: float
        callback: Callable[[], object]
        cancelled: bool = False

        def cancel(self) -> None:
            self.cancelled = True

        def when(self) -> float:
            return self.at

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_ManualClock.Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object], /) -> _ManualClock.Handle:
        handle = _ManualClock.Handle(when, callback)
        self.timers.append(handle)
        return handle

    def run_until(self, t: float) -> None:
        while due := sorted((h for h in self.timers if not h.cancelled and h.at <= t), key=lambda h: h.at):
            handle = due[0]
            self.timers.remove(handle)
            self.now = max(self.now, handle.at)
            handle.callback()
        self.now = t


def _late_peer_handshake(eager: bool) -> tuple[float, float]:
    """The edge runs from t=0; the customer's BFD starts at t=0.4 (bgpd registers it at Established).
    Returns (customer Up, edge Up), virtual seconds, with the real 1 s slow start and 1 ms links."""
    clock = _ManualClock()
    ups: dict[str, float] = {}
    sessions: dict[str, BfdSession] = {}

    def on_change(info: BfdSessionInfo, old: str, new: str) -> None:
        if new == "Up":
            ups.setdefault(info.key, clock.now)

    started: set[str] = set()

    def deliver(other: str, data: bytes) -> None:
        if other in started:  # before its start the customer has no session: the packet is dropped
            sessions[other].receive(BfdPacket.decode(data))

    def sender(other: str) -> Callable[[bytes], None]:
        return lambda data: clock.call_at(clock.now + 0.001, lambda: deliver(other, data))

    for name, other, discr, is_edge in (("edge", "cust", 111, True), ("cust", "edge", 222, False)):
        sessions[name] = BfdSession(
            key=name, local=ip_address("192.0.2.1"), peer=ip_address("192.0.2.2"), ifname=None, tx_ms=300,
            rx_ms=300, multiplier=3, discr=discr, send=sender(other), clock=clock, rng=random.Random(7),
            on_change=on_change, slow_tx_us=1_000_000, eager_first_handshake=eager and is_edge)
    for name, at in (("edge", 0.0), ("cust", 0.4)):
        clock.run_until(at)
        started.add(name)
        sessions[name].start()
    clock.run_until(5.0)
    return ups["cust"] - 0.4, ups["edge"] - 0.4


def test_eager_edge_answers_a_new_peers_first_packet_at_once() -> None:
    """The RFC pace would make the customer wait for the edge's next slow-start packet (up to 1 s);
    the eager edge answers its first Down with Init at once, so the customer is Up a link RTT after
    its first packet (which leaves within 50 ms of its start)."""
    eager_cust, eager_edge = _late_peer_handshake(eager=True)
    paced_cust, _ = _late_peer_handshake(eager=False)
    assert eager_cust <= 0.05 + 0.002 + 1e-9
    assert paced_cust > 0.3  # the same seeds: the edge's next paced packet was ~0.4 s away
    assert eager_edge <= 1.0 + 0.05  # the customer (strict) sends its Up at its own pace; the edge follows


def test_eager_edge_is_paced_again_after_the_first_up() -> None:
    """Only the first handshake is eager: once Up, a session re-establishing after a failure keeps
    RFC 5880 6.8.7 pacing (transmissions >= 0.75 x the slow-start interval apart)."""
    clock = _ManualClock()
    sent: list[tuple[float, State]] = []
    polls: list[tuple[State, bool]] = []

    def send(data: bytes) -> None:
        pkt = BfdPacket.decode(data)
        sent.append((clock.now, pkt.state))
        polls.append((pkt.state, pkt.poll))

    sess = BfdSession(key="edge", local=ip_address("192.0.2.1"), peer=ip_address("192.0.2.2"), ifname=None,
                      tx_ms=300, rx_ms=300, multiplier=3, discr=1, send=send, clock=clock, rng=random.Random(3),
                      on_change=None, slow_tx_us=1_000_000, eager_first_handshake=True)

    def peer(state: State) -> BfdPacket:
        return BfdPacket(state=state, diag=0, poll=False, final=False, detect_mult=3, my_discr=9,
                         your_discr=1 if state != State.Down else 0, desired_min_tx_us=1_000_000,
                         required_min_rx_us=300_000, required_min_echo_rx_us=0)

    sess.start()
    clock.run_until(0.2)
    before_nudge = len(sent)
    sess.nudge()  # BGP came Established: a handshake packet now, not at the slow-start pace
    clock.run_until(0.2)
    assert len(sent) == before_nudge + 1 and sent[-1] == (0.2, State.Down)
    clock.run_until(0.3)
    sess.receive(peer(State.Down))
    clock.run_until(0.3)
    assert sent[-1] == (0.3, State.Init)  # eager: at once
    # until the first Up every packet polls the peer, so it answers at once (6.8.7), not at its pace
    assert polls and all(poll for state, poll in polls if state in (State.Down, State.Init))
    sess.receive(peer(State.Up))
    assert sess.state == State.Up
    clock.run_until(0.6)
    after_up = len(sent)
    sess.nudge()  # never again once Up
    clock.run_until(0.6)
    assert len(sent) == after_up
    sess.receive(peer(State.Down))  # the peer restarted: we go Down
    assert sess.state == State.Down
    clock.run_until(0.9)
    before = len(sent)
    sess.receive(peer(State.Down))  # its first packet again: now paced
    assert sess.state == State.Init and all(s != State.Init for _, s in sent[before:])
    clock.run_until(3.0)
    inits = [t for t, s in sent[before:] if s == State.Init]
    assert inits and inits[0] - max(t for t, _ in sent[:before]) >= 0.75 - 1e-9  # 6.8.7 at the 1 s slow pace
    sess.close(False)
