"""One end of a BGP session (RFC 4271 FSM, reduced to what failover depends on).

States Idle/Connect/Active/OpenSent/OpenConfirm/Established. The active side (the customer; also
Cloudflare when ``passive`` is off) opens TCP in Connect and retries on the ConnectRetry timer;
the passive side listens in Active. The hold time is negotiated as the smaller of both; the hold
timer restarts on every KEEPALIVE/UPDATE received and expires exactly ``hold`` seconds after the
last one. Keepalives go every ``keepalive`` x U(0.75, 1.0) (RFC 4271 10 jitter). A BFD Down tears
the session down at once. TCP MD5 mismatch: the SYN is silently dropped (RFC 2385), so the active
side stays in Connect. Every message carries the connection id, so a stale segment from a dead
connection cannot advance a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnilab.sim.des.engine import Timer

if TYPE_CHECKING:
    from cnilab.sim.des.bfd import BfdEnd
    from cnilab.sim.des.link import Link
    from cnilab.sim.des.world import World

MAX_RETRANSMITS = 6


class BgpEnd:
    def __init__(self, world: World, subject: str, link: Link, *, active: bool, md5: str | None,
                 hold: int, keepalive: int) -> None:
        self.world = world
        self.subject = subject
        self.link = link
        self.active = active
        self.md5 = md5
        self.hold_cfg, self.ka_cfg = hold, keepalive
        self.hold = hold
        self.state = "Idle"
        self.conn = 0
        self.peer: BgpEnd | None = None
        self.admin_down = False
        self.withdrawn = False  # customer maintenance: announce nothing, use nothing learned here
        self.peer_announces = False
        self.bfd: BfdEnd | None = None
        self._timers: dict[str, Timer] = {}
        self.hold_expiries: list[tuple[float, float]] = []  # (expired, last keepalive/update received)
        self._last_rx = 0.0

    # -- plumbing ---------------------------------------------------------------------------
    def _timer(self, name: str, dt: float | None, fn: Any = None) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if dt is not None:
            self._timers[name] = self.world.engine.after(dt, fn)

    def _send(self, msg: str, *args: Any) -> None:
        world = self.world
        delay = self.link.carries("bgp", world.rng)
        tries = 0
        while delay is None and not self.link.silent() and tries < MAX_RETRANSMITS:
            tries += 1  # random loss on a live link: TCP retransmits after an RTO
            delay = self.link.carries("bgp", world.rng)
            if delay is not None:
                delay += tries * world.params.tcp_rto_s
        if delay is not None and self.peer is not None:
            world.engine.after(delay, self.peer.receive, msg, self.conn, args)

    def _set(self, state: str, reason: str = "") -> None:
        if state != self.state:
            self.state = state
            self.world.record("session", self.subject, state, reason)

    # -- FSM --------------------------------------------------------------------------------
    def start(self) -> None:
        """ManualStart/AutomaticStart: listen (passive) or open a TCP connection (active)."""
        if self.admin_down or self.state != "Idle":
            return
        if not self.active:
            self._set("Active")
            return
        self._set("Connect")
        self._connect()

    def _connect(self) -> None:
        if self.state != "Connect":
            return
        self.conn = self.world.new_conn()
        self._send("SYN")
        self._timer("connect", self.world.params.connect_retry_s, self._connect)

    def receive(self, msg: str, conn: int, args: tuple[Any, ...]) -> None:
        if msg == "SYN":
            if self.admin_down or self.state not in ("Active", "Connect"):
                return  # not listening, or an existing connection wins the collision
            if self.peer is not None and self.peer.md5 != self.md5:
                self.world.note_once(f"{self.subject}: TCP MD5 mismatch, SYN dropped (RFC 2385)")
                return
            self.conn = conn
            self._timer("connect", None)
            self._send("SYNACK")
            self._send("OPEN", self.hold_cfg)
            self._set("OpenSent")
            return
        if conn != self.conn:
            return
        if msg == "SYNACK" and self.state == "Connect":
            self._timer("connect", None)
            self._send("OPEN", self.hold_cfg)
            self._set("OpenSent")
        elif msg == "OPEN" and self.state == "OpenSent":
            self.hold = min(self.hold_cfg, int(args[0]))
            self._send("KEEPALIVE")
            self._set("OpenConfirm")
            self._heard()
            self._keepalive_loop(first=True)
        elif msg == "KEEPALIVE" and self.state in ("OpenConfirm", "Established"):
            self._heard()
            if self.state == "OpenConfirm":
                self._set("Established")
                self._send("UPDATE", not self.withdrawn)
                self.world.recompute()
        elif msg == "UPDATE" and self.state == "Established":
            self._heard()
            self.peer_announces = bool(args[0])
            self.world.recompute()
        elif msg == "NOTIFICATION" and self.state != "Idle":
            self.down(f"NOTIFICATION received: {args[0]}")

    def _heard(self) -> None:
        self._last_rx = self.world.engine.now
        if self.hold > 0:
            self._timer("hold", float(self.hold), self._hold_expired)

    def _hold_expired(self) -> None:
        self.hold_expiries.append((self.world.engine.now, self._last_rx))
        self._send("NOTIFICATION", "Hold Timer Expired")
        self.down(f"hold timer expired ({self.hold}s without a KEEPALIVE/UPDATE)")

    def _keepalive_loop(self, first: bool = False) -> None:
        if self.state not in ("OpenConfirm", "Established") or self.hold == 0:
            return
        if not first:
            self._send("KEEPALIVE")
        ka = min(self.ka_cfg, self.hold / 3) if self.ka_cfg else self.hold / 3
        self._timer("keepalive", ka * self.world.rng.uniform(0.75, 1.0), self._keepalive_loop)

    def down(self, reason: str) -> None:
        """Any error: drop to Idle, forget the peer's routes, and start again after the idle hold time.

        Both ends pause (FRR's and ExaBGP's reconnect back-off); a passive end then listens again.
        """
        for name in list(self._timers):
            self._timer(name, None)
        was_up = self.peer_announces
        self.peer_announces = False
        self._set("Idle", reason)
        if was_up:
            self.world.recompute()
        if not self.admin_down:
            self._timer("restart", self.world.params.idle_hold_s, self.start)

    def bfd_down(self, reason: str) -> None:
        if self.state != "Idle":
            self.down(f"BFD down: {reason}")

    # -- maintenance ------------------------------------------------------------------------
    def shutdown(self) -> None:
        if self.state != "Idle":
            self._send("NOTIFICATION", "Cease/Administrative Shutdown")
        self.admin_down = True
        if self.state != "Idle":
            self.down("administrative shutdown")

    def withdraw(self) -> None:
        self.withdrawn = True
        if self.state == "Established":
            self._send("UPDATE", False)
        self.world.recompute()

    def restore(self) -> None:
        self.withdrawn = False
        if self.admin_down:
            self.admin_down = False
            self.start()
        elif self.state == "Established":
            self._send("UPDATE", True)
        self.world.recompute()
