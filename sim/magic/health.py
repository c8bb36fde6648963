"""The tunnel health state machine and probe schedule of one Cloudflare server, as documented.

Time is passed in (seconds, any monotonic origin), so the emulator's daemon feeds it wall-clock
results of real probes and the simulator feeds it virtual time: the same rules decide both.

Rules (``sim/data/magic.yaml``, docs:tunnel-health-checks):
- a failed probe of a tunnel that is not down is re-probed at once up to ``reprobes`` more times;
  a successful probe of a down tunnel is confirmed by the same number of re-probes;
- down: every sample of at least 3 in the last second failed (from healthy or degraded);
- degraded: >= 0.1 % of the samples in the last 5 minutes failed, with at least 2 failures;
- down -> degraded after 3 consecutive successes; degraded -> healthy when the last 30 probes
  have a failure rate under 0.1 % (i.e. 30 clean probes).
"""

from __future__ import annotations

from collections import deque

from cnilab.sim.magic.facts import State, Timing
from pydantic import BaseModel, Field


class Sample(BaseModel):
    """One probe's outcome; the window of recent samples decides degraded."""

    t: float = Field(description="When the reply came or the probe timed out (executor clock, s)")
    ok: bool
    attempt: int = Field(default=0, description="0: a regular probe; n: the n-th quick re-probe confirming a change")
    rtt_ms: float | None = None


class Transition(BaseModel):
    """A change of a tunnel's health state, kept so the status and scenarios can say when and why."""

    t: float
    frm: State
    to: State
    reason: str = Field(description="Which rule moved the state (shown by the status and in reports)")


class TunnelHealth:
    """Per-tunnel health: samples in, state and transitions out."""

    def __init__(self, timing: Timing, t0: float = 0.0, initial: State | None = None) -> None:
        self.timing = timing
        self.state: State = initial or timing.initial
        self.since = t0
        self.samples: deque[Sample] = deque()
        self.transitions: list[Transition] = []
        self._run_ok = 0

    def _move(self, t: float, to: State, reason: str) -> Transition:
        tr = Transition(t=t, frm=self.state, to=to, reason=reason)
        self.state, self.since = to, t
        self.transitions.append(tr)
        del self.transitions[:-50]
        return tr

    def record(self, s: Sample) -> Transition | None:
        tm = self.timing
        self.samples.append(s)
        while self.samples and self.samples[0].t < s.t - tm.degraded_window_s:
            self.samples.popleft()
        self._run_ok = self._run_ok + 1 if s.ok else 0
        if not s.ok:
            last_s = [x for x in self.samples if x.t > s.t - tm.down_window_s]
            if self.state != "down" and len(last_s) >= tm.down_min_samples and not any(x.ok for x in last_s):
                return self._move(s.t, "down", f"{len(last_s)} of {len(last_s)} probes in the last "
                                               f"{tm.down_window_s:g} s failed")
            fails = sum(not x.ok for x in self.samples)
            if (self.state == "healthy" and fails >= tm.degraded_min_failures
                    and fails / len(self.samples) >= tm.degraded_ratio):
                return self._move(s.t, "degraded", f"{fails} of {len(self.samples)} probes failed in the last "
                                                   f"{tm.degraded_window_s:g} s")
            return None
        if self.state == "down" and self._run_ok >= tm.recover_successes:
            return self._move(s.t, "degraded", f"{tm.recover_successes} consecutive probes returned")
        if self.state == "degraded":
            window = list(self.samples)[-tm.healthy_window_probes:]
            fails = sum(not x.ok for x in window)
            if len(window) >= tm.healthy_window_probes and fails / len(window) < tm.healthy_ratio:
                return self._move(s.t, "healthy", f"last {len(window)} probes returned")
        return None

    def last(self, n: int = 10) -> list[Sample]:
        return list(self.samples)[-n:]


class Prober:
    """When to send the next probe of one tunnel: the rate's interval, plus immediate re-probes.

    ``due(now)`` -> send a probe (``attempt`` says which) and call ``sent(now)``; a result or a
    timeout goes to ``result(now, ok)``, which updates ``health`` and schedules what follows.
    """

    def __init__(self, health: TunnelHealth, interval_s: float, t0: float = 0.0, phase: float = 0.0) -> None:
        self.health = health
        self.interval_s = interval_s
        self.next_at = t0 + phase
        self.attempt = 0
        self.outstanding_since: float | None = None
        self._cycle_start = self.next_at

    def set_interval(self, interval_s: float, now: float) -> None:
        """A rate change applies from the next regular probe (not later than one new interval)."""
        self.interval_s = interval_s
        if self.outstanding_since is None and self.attempt == 0:
            self.next_at = min(self.next_at, now + interval_s)

    def due(self, now: float) -> bool:
        return self.outstanding_since is None and now >= self.next_at

    def sent(self, now: float) -> None:
        if self.attempt == 0:
            self._cycle_start = now
        self.outstanding_since = now

    @property
    def deadline(self) -> float | None:
        if self.outstanding_since is None:
            return None
        return self.outstanding_since + self.health.timing.probe_timeout_s

    def result(self, now: float, ok: bool, rtt_ms: float | None = None) -> Transition | None:
        was = self.health.state
        tr = self.health.record(Sample(t=now, ok=ok, attempt=self.attempt, rtt_ms=rtt_ms))
        self.outstanding_since = None
        confirm = (not ok and was != "down") or (ok and was == "down")
        if confirm and self.attempt < self.health.timing.reprobes:
            self.attempt += 1
            self.next_at = now  # "quickly probes up to two more times"
        else:
            self.attempt = 0
            self.next_at = max(now, self._cycle_start + self.interval_s)
        return tr
