"""BFD Control packet codec and the RFC 5880 6.8.6 validity checks.

Kept free of sockets and timers so the wire format can be tested on its own and reused by the
benchmark and by packet captures in tests. Decoding either returns a :class:`BfdPacket` or raises
:class:`BfdInvalid` with a short machine-readable reason; the speaker counts those reasons, because a
packet silently ignored is the hardest BFD interop bug to find.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 1
#: Mandatory section length (no authentication), RFC 5880 4.1.
HEADER_LEN = 24
_FMT = struct.Struct("!BBBBIIIII")


class State(enum.IntEnum):
    """bfd.SessionState values as carried in the Sta field (RFC 5880 4.1)."""

    AdminDown = 0
    Down = 1
    Init = 2
    Up = 3


class Diag(enum.IntEnum):
    """Diagnostic codes (RFC 5880 4.1); the speaker sets 0, 1, 3 and 7."""

    NoDiagnostic = 0
    ControlDetectionTimeExpired = 1
    EchoFunctionFailed = 2
    NeighborSignaledSessionDown = 3
    ForwardingPlaneReset = 4
    PathDown = 5
    ConcatenatedPathDown = 6
    AdministrativelyDown = 7
    ReverseConcatenatedPathDown = 8


class BfdInvalid(ValueError):
    """A received packet that RFC 5880 6.8.6 says to discard; ``reason`` is a counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BfdPacket:
    """One BFD Control packet; intervals are in microseconds, as on the wire."""

    state: State
    my_discr: int
    your_discr: int = 0
    diag: Diag | int = Diag.NoDiagnostic  # 9-31 are reserved; kept as int rather than rejected
    poll: bool = False
    final: bool = False
    cpi: bool = False  # Control Plane Independent
    auth: bool = False
    demand: bool = False
    multipoint: bool = False
    detect_mult: int = 3
    desired_min_tx_us: int = 1_000_000
    required_min_rx_us: int = 1_000_000
    required_min_echo_rx_us: int = 0
    version: int = VERSION
    length: int = HEADER_LEN

    def encode(self) -> bytes:
        """Serialise; a packet with both P and F set is refused (RFC 5880 6.5 forbids sending it)."""
        if self.poll and self.final:
            raise ValueError("a BFD Control packet must not carry both Poll and Final")
        flags = (
            (int(self.state) << 6)
            | (self.poll << 5)
            | (self.final << 4)
            | (self.cpi << 3)
            | (self.auth << 2)
            | (self.demand << 1)
            | int(self.multipoint)
        )
        return _FMT.pack(
            ((self.version & 0x7) << 5) | (int(self.diag) & 0x1F),
            flags,
            self.detect_mult,
            self.length,
            self.my_discr,
            self.your_discr,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        )

    @classmethod
    def decode(cls, data: bytes) -> BfdPacket:
        """Parse and apply the stateless checks of RFC 5880 6.8.6; raise :class:`BfdInvalid`.

        Authentication is not implemented, so a packet with the A bit is discarded here too
        ("If the A bit is set and no authentication is in use ... the packet MUST be discarded").
        """
        if len(data) < HEADER_LEN:
            raise BfdInvalid("short", f"{len(data)} bytes")
        b0, b1, mult, length, my_d, your_d, tx, rx, echo = _FMT.unpack_from(data)
        version = b0 >> 5
        if version != VERSION:
            raise BfdInvalid("version", str(version))
        auth = bool(b1 & 0x04)
        if length < (HEADER_LEN + 2 if auth else HEADER_LEN):
            raise BfdInvalid("length", str(length))
        if length > len(data):
            raise BfdInvalid("length", f"{length} > payload {len(data)}")
        if mult == 0:
            raise BfdInvalid("detect_mult", "0")
        if b1 & 0x01:
            raise BfdInvalid("multipoint")
        if my_d == 0:
            raise BfdInvalid("my_discr", "0")
        state = State(b1 >> 6)
        if your_d == 0 and state not in (State.Down, State.AdminDown):
            raise BfdInvalid("your_discr", f"0 in state {state.name}")
        if auth:
            raise BfdInvalid("auth", "authentication not configured")
        poll, final = bool(b1 & 0x20), bool(b1 & 0x10)
        if poll and final:
            raise BfdInvalid("poll_and_final")
        return cls(
            state=state,
            my_discr=my_d,
            your_discr=your_d,
            diag=_diag(b0 & 0x1F),
            poll=poll,
            final=final,
            cpi=bool(b1 & 0x08),
            auth=auth,
            demand=bool(b1 & 0x02),
            multipoint=False,
            detect_mult=mult,
            desired_min_tx_us=tx,
            required_min_rx_us=rx,
            required_min_echo_rx_us=echo,
            version=version,
            length=length,
        )


def _diag(value: int) -> Diag | int:
    """Known codes as :class:`Diag`; reserved ones pass through (6.8.6 does not reject them)."""
    try:
        return Diag(value)
    except ValueError:
        return value
