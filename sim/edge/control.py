"""The edge driver's control channel: JSON lines over a unix socket, and the typed client.

One request line -> one response line, so ``socat - UNIX:control.sock`` is a usable debugger and
any language can drive the edge. Requests are ``{"cmd": NAME, ...args}``; responses are
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``. :class:`EdgeClient` is what
the CLI, the mock API, the dashboard and the failover probes use; its pydantic models are the
contract (extra fields are ignored, so the driver can grow without breaking clients).

Commands (``EdgeDriver.commands``): ping, sessions, routes, announce {prefix}, withdraw {prefix},
teardown {session|neighbor, subcode}, scale {routes}, gshut {interconnect, on}, bfd, configure
{sessions: [...]}, events {since}.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cnilab.sim.topology.plan import Session
from pydantic import BaseModel, ConfigDict, Field

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
LINE_LIMIT = 64 * 1024 * 1024


class ControlError(RuntimeError):
    """The driver answered with an error, or could not be reached (message says which)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Notification(_Model):
    direction: str = Field(description="sent (Cloudflare refused) or received (the customer refused)")
    code: int
    subcode: int
    name: str
    data: str = ""
    time: float


class RejectedRoute(_Model):
    prefix: str
    reason: str
    rule: str


class Transition(_Model):
    time: float
    state: str
    reason: str = ""


class Md5Evidence(_Model):
    """Kernel TCP MD5 drops in the cf namespace attributed to a session that has no connection."""

    first: float | None = None
    last: float | None = None
    samples: int = 0
    counters: str = ""
    confirmed: bool = Field(default=False, description="drops repeated: a key mismatch, not a one-off")


class SessionInfo(_Model):
    """One BGP session as the edge sees it (``cnilab bgp``)."""

    key: str
    interconnect: str
    family: int
    local: str
    peer: str
    local_asn: int
    peer_asn: int
    md5: bool
    passive: bool
    state: str = Field(description="Idle/Connect/Active/OpenSent/OpenConfirm/Established")
    up: bool
    since: float | None = Field(default=None, description="epoch of the last state change")
    uptime_s: float | None = None
    established_count: int = 0
    prefixes_sent: int = 0
    prefixes_received: int = 0
    prefixes_accepted: int = 0
    prefixes_rejected: int = 0
    rejected: list[RejectedRoute] = Field(default_factory=list)
    last_error: str | None = Field(default=None, description="why it is not (or was not) Established, in words")
    last_notification: Notification | None = None
    last_down_reason: str | None = None
    bfd: bool = False
    bfd_state: str | None = None
    held_by_bfd: bool = False
    priority: int = 100
    starting: bool = Field(default=False, description="nothing seen yet, still inside the start-up window")
    md5_evidence: Md5Evidence | None = None
    hold_time: int | None = Field(default=None, description="Cloudflare's configured hold time (s)")
    peer_hold_time: int | None = Field(default=None, description="hold time in the customer's OPEN (s)")
    negotiated_hold_s: int | None = None
    keepalive_s: int | None = Field(default=None, description="the edge's keepalive: negotiated hold / 3")
    peer_keepalive_s: float | None = Field(default=None, description="observed interval of the customer's KEEPALIVEs")
    flaps: int = Field(default=0, description="times the session went down after being Established")
    transitions: list[Transition] = Field(default_factory=list, description="last BGP state changes")
    bfd_flaps: int = 0
    bfd_transitions: list[Transition] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="findings that are not failures")


class RouteInfo(_Model):
    prefix: str
    session: str
    peer: str
    nexthop: str
    as_path: list[int] = Field(default_factory=list)
    med: int = 0
    communities: list[str] = Field(default_factory=list, description="a:b and large a:b:c, as received")
    rov: str | None = Field(default=None, description="valid / invalid / not-found (RFC 6811); None: no ROAs given")
    accepted: bool
    reason: str
    rule: str
    best: bool = False
    metric: int | None = None
    time: float


class InstalledRoute(_Model):
    prefix: str
    gateway: str
    metric: int


class RoutesInfo(_Model):
    received: list[RouteInfo]
    installed: list[InstalledRoute]
    errors: dict[str, str] = Field(default_factory=dict)
    announced: dict[str, list[str]] = Field(default_factory=dict, description="family -> prefixes sent")


class Event(_Model):
    seq: int
    time: float
    kind: str = Field(description="bgp-state, bgp-fsm, notification, bfd, route, config, teardown, error")
    session: str | None = None
    detail: str
    data: dict[str, Any] = Field(default_factory=dict)


# -- server -----------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serve(path: Path, handler: Handler):
    """Serve ``handler`` on a unix socket at ``path`` for the duration of the block (socket removed after)."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                        raise ValueError('a request is a JSON object with a "cmd" string')
                    resp = {"ok": True, "result": await handler(req)}
                except (ValueError, KeyError, LookupError) as exc:
                    resp = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(resp, default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(client, path=str(path), limit=LINE_LIMIT)
    os.chmod(path, 0o660)
    try:
        yield server
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# -- client -----------------------------------------------------------------------------------------
class EdgeClient:
    """Typed, synchronous client of one edge driver. Each call opens a short connection, so a
    client object is cheap, thread-safe and survives driver restarts."""

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        req = json.dumps({"cmd": cmd, **args}, default=str).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(req)
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    buf += chunk
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"edge driver is not running (no control socket at {self.path}): {exc}") from None
        except TimeoutError:
            raise ControlError(f"edge driver at {self.path} did not answer {cmd!r} within {self.timeout}s") from None
        if not buf:
            raise ControlError(f"edge driver at {self.path} closed the connection on {cmd!r}")
        resp = json.loads(buf)
        if not resp.get("ok"):
            raise ControlError(resp.get("error") or f"{cmd} failed")
        return resp.get("result")

    def ping(self) -> dict[str, Any]:
        return self.call("ping")

    def wait(self, timeout: float) -> dict[str, Any]:
        """Poll ``ping`` until the driver answers (ExaBGP starts it, so it appears after a moment)."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                return self.ping()
            except ControlError as exc:
                last = exc
                time.sleep(0.1)
        raise ControlError(f"edge driver did not answer within {timeout}s: {last}")

    def sessions(self) -> list[SessionInfo]:
        return [SessionInfo.model_validate(s) for s in self.call("sessions")]

    def session(self, key: str) -> SessionInfo:
        for s in self.sessions():
            if key in (s.key, s.peer):
                return s
        raise ControlError(f"no BGP session {key!r}")

    def routes(self) -> RoutesInfo:
        return RoutesInfo.model_validate(self.call("routes"))

    def announce(self, prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
        return self.call("announce", prefix=str(prefix))

    def withdraw(self, prefix: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
        return self.call("withdraw", prefix=str(prefix))

    def teardown(self, session: str | None = None, *, neighbor: str | None = None, subcode: int = 2) -> list[str]:
        """Send a Cease NOTIFICATION (RFC 4486 subcode; 2 = Administrative Shutdown) on established sessions."""
        return self.call("teardown", session=session, neighbor=neighbor, subcode=subcode)

    def scale(self, routes: int) -> dict[str, int]:
        """Announce ``routes`` more-specifics on top of the ranges (Cloudflare's table grows); family -> size."""
        return self.call("scale", routes=routes)

    def gshut(self, interconnect: str, on: bool = True) -> list[str]:
        """Tag (or untag) every route the edge sends on ``interconnect`` with GRACEFUL_SHUTDOWN 65535:0."""
        return self.call("gshut", interconnect=interconnect, on=on)

    def bfd(self) -> list[dict[str, Any]]:
        """BFD sessions as the speaker reports them (cnilab.sim.edge.bfd.BfdSessionInfo fields)."""
        return self.call("bfd")

    def configure(self, sessions: list[Session] | list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the set of BGP sessions (added/changed/removed ones take effect at once)."""
        payload = [s.model_dump(mode="json") if isinstance(s, BaseModel) else s for s in sessions]
        return self.call("configure", sessions=payload)

    def events(self, since: int = 0) -> list[Event]:
        return [Event.model_validate(e) for e in self.call("events", since=since)]

    def wait_established(self, keys: list[str] | None = None, timeout: float = 60.0) -> list[SessionInfo]:
        """Block until every (or each named) session is Established; raises with their last errors."""
        deadline = time.monotonic() + timeout
        while True:
            sess = [s for s in self.sessions() if keys is None or s.key in keys]
            if sess and all(s.up for s in sess):
                return sess
            if time.monotonic() > deadline:
                lines = [f"{s.key}: {s.state} ({s.last_error or 'no error reported'})" for s in sess if not s.up]
                detail = "; ".join(lines) or "no sessions"
                raise ControlError(f"BGP not established within {timeout}s: {detail}")
            time.sleep(0.2)
