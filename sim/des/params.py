"""The simulator's own knobs (a scenario's ``sim:`` block); the emulator measures the real thing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SimParams(BaseModel):
    """Knobs only the discrete-event simulator reads (the emulator measures the real thing)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    link_delay_ms: float = Field(default=0.5, ge=0, description="One-way delay of every link")
    connect_retry_s: float = Field(default=5.0, gt=0, description="BGP ConnectRetry timer of the active side")
    idle_hold_s: float = Field(default=1.0, ge=0, description="Time a speaker stays Idle after a session error")
    tcp_rto_s: float = Field(default=0.2, gt=0, description="Delay a randomly lost BGP segment adds (TCP retransmit)")
    bin_s: float | None = Field(default=None, gt=0, description="Loss histogram bin; default: about 200 bins")
