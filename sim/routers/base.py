"""The customer router base class: what every kind (FRR, BIRD, GoBGP, ...) tells the rest of cnilab.

A kind is one subclass of :class:`CustomerRouter` registered under its name
(:func:`cnilab.sim.routers.registry.register`) plus its entry in ``sim/data/router-kinds.yaml``. The
orchestrator, ``cnilab exec``, the checks and the scenario executor only talk to this interface,
so none of them names a kind. The state readers return the same models for every kind: the
cross-checks (:mod:`cnilab.sim.routers.crosscheck`) judge what the daemon itself reports, whatever it is.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

from cnilab.sim.facts import RouterKindInfo, router_kinds
from cnilab.sim.routers.common import RouterLab, extra_key, stop_recorded, template_context, templates
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.plan import CUSTOMER, LabPlan, Session
from pydantic import BaseModel, ConfigDict, Field

MaintenanceOp = Literal["withdraw", "shutdown", "restore"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BgpNeighbor(_Model):
    """One BGP neighbour as the customer's daemon reports it (same fields for every kind)."""

    peer: str = Field(description="Neighbour address as configured")
    name: str = Field(description="BIRD protocol, FRR description or address")
    remote_as: int | None = None
    local_as: int | None = None
    state: str | None = Field(default=None, description="Established, Active, Connect, Idle, ...")
    received: int | None = Field(default=None, description="Prefixes accepted from the neighbour")
    sent: int | None = Field(default=None, description="Prefixes advertised to the neighbour")
    session: str | None = Field(default=None, description="Plan key (ewr1/v4) when the address is Cloudflare's")
    last_error: str | None = None
    hold_time: int | None = Field(default=None, description="Negotiated hold time, s (None: not Established)")
    keepalive: int | None = Field(default=None, description="Negotiated keepalive, s")
    hold_time_configured: int | None = None
    keepalive_configured: int | None = None
    connect_retry: int | None = Field(default=None, description="Connect-retry timer, s")
    error_wait: tuple[int, int] | None = Field(
        default=None, description="Back-off after an error before reconnecting (min, max), s; BIRD's error wait time")
    export_policy: list[str] | None = Field(
        default=None, description="Outbound policies toward this neighbour ([] none; None: not known)")
    bfd: bool | None = Field(default=None, description="BFD configured for this neighbour (None: unknown)")


class BfdPeer(_Model):
    """One BFD session in the customer's daemon, with its configured (desired) timers."""

    peer: str
    state: str = Field(description="Up, Down, Init, AdminDown (normalised capitalisation)")
    tx_ms: int | None = None
    rx_ms: int | None = None
    multiplier: int | None = None


class RouterFacts(_Model):
    """Everything the cross-checks read from one daemon, at one moment."""

    kind: str
    neighbors: list[BgpNeighbor]
    bfd: list[BfdPeer] | None = Field(description="BFD sessions; None when the kind has no BFD at all")
    undefined_policies: list[str] = Field(
        default_factory=list, description="Route-maps/prefix-lists/filters referenced but never defined")
    policy_errors: list[str] = Field(
        default_factory=list, description="Policies the config asks for that the daemon is not applying (and why)")
    requires_policy: bool = Field(
        default=False, description="The daemon sends nothing to an eBGP peer without an outbound policy")
    exported: dict[str, list[str]] | None = Field(
        default=None, description="Neighbour address -> prefixes the daemon advertises to it (None: not read)")
    evidence: dict[str, str] = Field(default_factory=dict, description="Command -> the raw output quoted")


class CustomerRouter(ABC):
    """One routing daemon (or set of daemons) in one lab node, owned through ``lab.spawn``.

    Subclasses are registered under their kind (:func:`cnilab.sim.routers.registry.register` sets ``kind``)
    and implement the abstract methods; :meth:`info` is their data entry.
    """

    kind: ClassVar[str]
    """Set by ``@register``."""

    def __init__(self, lab: RouterLab, node: str = CUSTOMER) -> None:
        self.lab = lab
        self.node = node
        self.dir = lab.node_dir(node) / self.kind

    # -- what the kind is ---------------------------------------------------------------------
    @classmethod
    def info(cls) -> RouterKindInfo:
        return router_kinds()[cls.kind]

    @classmethod
    def sniff(cls, text: str) -> bool:
        """True when ``text`` is written in this daemon's syntax (the data's patterns)."""
        return any(re.search(p, text, re.M) for p in cls.info().sniff)

    @classmethod
    @abstractmethod
    def validate(cls, path: Path) -> None:
        """Run the daemon's own parser on ``path``; raise UserConfigError quoting it. Nothing starts."""

    @classmethod
    def render(cls, plan: LabPlan, ifname: Callable[[str], str] | None = None) -> str:
        """The config a careful customer would write for ``plan``: the kind's ``template``, with
        interface names mapped by ``ifname`` (plan name -> kernel name) where the template names any."""
        return templates().get_template(str(cls.info().template)).render(**template_context(plan, ifname))

    @classmethod
    def cli_socket(cls, workdir: Path) -> list[str]:
        """The options that point the daemon's CLI at the lab's own socket under ``workdir``."""
        return []

    @classmethod
    def cli_argv(cls, argv: list[str], workdir: Path) -> list[str]:
        """Point the daemon's CLI typed by a user (one of the kind's ``cli`` programs) at the lab's own
        sockets under ``workdir``, unless the user already named a socket."""
        target = cls.cli_socket(workdir)
        if argv and target and argv[0] in cls.info().cli and target[0] not in argv:
            return [argv[0], *target, *argv[1:]]
        return argv

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.dir / str(self.info().config_name)

    @abstractmethod
    def start(self, config_text: str | None = None, source: str = "template") -> list[ProcessRecord]:
        """Start with ``config_text`` (default: the template); all or nothing."""

    def stop(self) -> None:
        stop_recorded(self.lab, self.node)

    def record(self) -> dict:
        return self.lab.state.extra.get(extra_key(self.node)) or {}

    # -- state readers (the checks) -----------------------------------------------------------
    @abstractmethod
    def routes(self) -> str:
        """The daemon's RIB as its own CLI prints it."""

    @abstractmethod
    def bgp(self) -> list[BgpNeighbor]:
        """BGP neighbours with state, counts, timers and outbound policy."""

    def bfd_peers(self) -> list[BfdPeer] | None:
        """BFD sessions; None when the kind has no BFD (GoBGP)."""
        return None

    def running_config(self) -> str:
        """The configuration the daemon runs now (default: the file it was started with)."""
        return self.conf.read_text(encoding="utf-8") if self.conf.exists() else ""

    def facts(self) -> RouterFacts:
        """What the cross-checks read; kinds add undefined policies and exports where they can."""
        return RouterFacts(kind=self.kind, neighbors=self.bgp(), bfd=self.bfd_peers())

    # -- operations ---------------------------------------------------------------------------
    def maintenance(self, op: MaintenanceOp, peers: list[Session]) -> None:
        """Drain (withdraw), shut down or restore the sessions ``peers`` with the daemon's own commands."""
        raise NotImplementedError(f"maintenance steps are not implemented for the {self.kind} customer router")
