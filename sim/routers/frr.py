"""FRR 8.4 as the customer router: zebra, staticd, bgpd and bfdd in one lab node.

Each daemon runs in the FOREGROUND through ``lab.spawn`` so the lab owns the PIDs and ``cnilab down``
stops exactly these processes. Several labs (and the system's own FRR) share this machine, so
nothing uses FRR's default paths: every socket (vty, zserv, bfdd control) and pid file lives in
``<node_dir>/frr``. Daemons start with an empty config and ``vtysh -b`` then pushes the integrated
``frr.conf`` to all of them, which is how FRR itself boots an integrated config (a daemon reading
``frr.conf`` with ``-f`` would choke on the other daemons' commands).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cnilab.sim.routers.base import BfdPeer, BgpNeighbor, CustomerRouter, MaintenanceOp, RouterFacts
from cnilab.sim.routers.common import (
    RouterError,
    check_socket_path,
    log_tail,
    process_dead,
    record_start,
    run_parser,
    session_key,
    stop_recorded,
    wait_started,
)
from cnilab.sim.routers.registry import register
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.plan import LabPlan, Session

FRR_BIN = Path("/usr/lib/frr")
FRR_SCRATCH = Path("/var/tmp/frr")
DAEMONS: tuple[str, ...] = ("zebra", "staticd", "bgpd", "bfdd")
VTY_GROUP = "frrvty"
"""Running as root, FRR insists the run-as group be its vty group (``privs_init``)."""


_SETS_RMAP_DELAY = re.compile(r"^\s*bgp route-map delay-timer\b", re.MULTILINE)


def _daemon_message(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [ln for ln in lines if ln and "vtysh.conf" not in ln]
    return "; ".join(keep) or "(no message)"


def remove_scratch(rec: ProcessRecord) -> None:
    """Remove ``/var/tmp/frr/<daemon>.<pid>`` of a stopped FRR daemon we started (FRR cannot, see stop)."""
    daemon = next((Path(a).name for a in rec.argv if a.startswith(str(FRR_BIN) + "/")), None)
    if daemon in DAEMONS and process_dead(rec):
        shutil.rmtree(FRR_SCRATCH / f"{daemon}.{rec.pid}", ignore_errors=True)


def _accepts(path: Path) -> bool:
    """True once a daemon accepts on its unix socket (the file appears a moment before it listens)."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


@register("frr")
class FrrRouter(CustomerRouter):
    """FRR in one lab node, with all of its paths under ``<node_dir>/frr``."""

    @classmethod
    def validate(cls, path: Path) -> None:
        """Parse ``path`` with FRR's own parser (``vtysh --dryrun``) without any daemon running.

        vtysh knows every daemon's commands, so this catches what any of them would refuse.
        """
        with tempfile.TemporaryDirectory(prefix="cnilab-frrchk-") as d:
            (Path(d) / "vtysh.conf").write_text("service integrated-vtysh-config\n")
            run_parser(path, ["vtysh", "--config_dir", d, "--dryrun", "-f", str(path)],
                       "FRR refuses it (vtysh --dryrun)", _daemon_message)

    @classmethod
    def cli_socket(cls, workdir: Path) -> list[str]:
        return ["--vty_socket", str(workdir)]

    def _argv(self, daemon: str) -> list[str]:
        d = self.dir
        argv = [str(FRR_BIN / daemon), "-u", "root", "-g", VTY_GROUP, "--vty_socket", str(d),
                "-z", str(d / "zserv.api"), "-i", str(d / f"{daemon}.pid"), "-f", str(d / "empty.conf"),
                "--log", f"file:{d / (daemon + '.log')}", "--log-level", "info"]
        if daemon == "bfdd":
            argv += ["--bfdctl", str(d / "bfdd.sock")]
        return argv

    def _sockets(self, daemon: str) -> list[Path]:
        socks = [self.dir / f"{daemon}.vty"]
        if daemon == "zebra":
            socks.append(self.dir / "zserv.api")
        return socks

    def start(self, config_text: str | None = None, source: str = "template") -> list[ProcessRecord]:
        """Start the daemons and load ``config_text`` (default: the template). All or nothing."""
        text = config_text if config_text is not None else self.render(self.lab.plan)
        check_socket_path(self.dir / "staticd.vty", "FRR")  # the longest of its sockets
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in [*self.dir.glob("*.vty"), self.dir / "zserv.api", self.dir / "bfdd.sock"]:
            stale.unlink(missing_ok=True)
        self.conf.write_text(text)
        (self.dir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        (self.dir / "empty.conf").write_text("")
        procs: list[ProcessRecord] = []
        try:
            # zebra first: the others connect to its zserv socket at start-up.
            for group in (DAEMONS[:1], DAEMONS[1:]):
                started = []
                for daemon in group:
                    rec = self.lab.spawn(self.node, f"frr-{daemon}", self._argv(daemon),
                                         log=self.dir / f"{daemon}.out")
                    procs.append(rec)
                    started.append((daemon, rec))
                for daemon, rec in started:
                    self._wait_ready(daemon, rec)
            # Boot only: a fresh bgpd holds every peer until its route-map update timer (``bgp
            # route-map delay-timer``, 5 s by default, armed by the config's first route-map) runs
            # out, so a router booted with its config sat ~4 s in Idle before its first OPEN. A
            # customer's production router booted long ago: this wait is an artefact of the lab
            # starting it. The timer is 0 while the config loads and FRR's default again after
            # (a config that sets it keeps its own value); no session timer is touched and
            # ``show running-config`` is the customer's config.
            self._vtysh_raw(["-c", "configure terminal", "-c", "bgp route-map delay-timer 0"])
            # Without that hold, the first OPEN may leave before the interface has a usable IPv6
            # link-local address (DAD, about 1 s of kernel physics): bgpd then resets the v6 session
            # ("nexthop_set failed") and it waits a connect-retry period or more. Wait for it.
            self._wait_no_tentative()
            r = self._vtysh_raw(["--config_dir", str(self.dir), "-b"])
            if r.returncode != 0 or "failed to connect" in r.stdout + r.stderr:
                raise RouterError(f"FRR in node {self.node} refused {source} ({self.conf}): "
                                  + _daemon_message(r.stdout + "\n" + r.stderr))
            if not _SETS_RMAP_DELAY.search(text):
                self._vtysh_raw(["-c", "configure terminal", "-c", "no bgp route-map delay-timer"])
            record_start(self.lab, self.kind, self.node, self.dir, source, procs)
        except BaseException:
            for rec in reversed(procs):
                rec.stop()
            raise
        return procs

    def _wait_no_tentative(self, timeout: float = 10.0) -> None:
        """Until every interface with a global IPv6 address also has its link-local one and none is
        tentative: bgpd needs the link-local as the IPv6 next hop (``nexthop_set failed``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.lab.run(self.node, ["ip", "-6", "-o", "addr", "show"], check=False)
            if r.returncode != 0:
                return
            rows = [ln.split() for ln in r.stdout.splitlines() if len(ln.split()) > 1]
            glob = {f[1] for f in rows if "global" in f}
            link = {f[1] for f in rows if "link" in f and "tentative" not in f}
            if not any("tentative" in f for f in rows) and glob <= link:
                return
            time.sleep(0.05)

    def _wait_ready(self, daemon: str, rec: ProcessRecord) -> None:
        wait_started(rec, lambda: all(_accepts(s) for s in self._sockets(daemon)),
                     what=f"FRR {daemon} in node {self.node}", waiting_for="open its vty socket",
                     log=lambda: f"{log_tail(self.dir / f'{daemon}.out')} {log_tail(self.dir / f'{daemon}.log')}")

    def stop(self) -> None:
        """Stop the daemons, then remove the per-PID scratch dirs FRR leaves in /var/tmp/frr.

        FRR makes ``/var/tmp/frr/<daemon>.<pid>`` for crash logs and, having dropped privileges,
        cannot remove it at exit; the PIDs are ours, so are these directories.
        """
        info = self.record()
        recs = [ProcessRecord.model_validate(p) for p in info.get("processes", [])]
        stop_recorded(self.lab, self.node)
        for rec in recs:
            remove_scratch(rec)

    # -- queries ---------------------------------------------------------------------------
    def _vtysh_raw(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.node, ["vtysh", "--vty_socket", str(self.dir), *args], check=False)

    def vtysh(self, *commands: str) -> str:
        """Run show/config commands through this node's vtysh; raises with FRR's message on error."""
        args: list[str] = []
        for c in commands:
            args += ["-c", c]
        r = self._vtysh_raw(args)
        if r.returncode != 0:
            raise RouterError(f"vtysh in node {self.node} failed ({'; '.join(commands)}): "
                              + _daemon_message(r.stdout + "\n" + r.stderr))
        return r.stdout

    def routes(self) -> str:
        return self.vtysh("show ip route", "show ipv6 route")

    def running_config(self) -> str:
        return self.vtysh("show running-config")

    def _neighbors_json(self) -> dict:
        return json.loads(self.vtysh("show bgp neighbors json") or "{}")

    def bgp(self) -> list[BgpNeighbor]:
        return [frr_neighbor(self.lab.plan, peer, d) for peer, d in self._neighbors_json().items()
                if isinstance(d, dict) and "remoteAs" in d]

    def bfd_peers(self) -> list[BfdPeer]:
        raw = json.loads(self.vtysh("show bfd peers json") or "[]")
        return [BfdPeer(peer=p["peer"], state=str(p.get("status", "")).capitalize(),
                        tx_ms=p.get("transmit-interval"), rx_ms=p.get("receive-interval"),
                        multiplier=p.get("detect-multiplier")) for p in raw if "peer" in p]

    def facts(self) -> RouterFacts:
        raw = self._neighbors_json()
        running = self.running_config()
        neighbors = [frr_neighbor(self.lab.plan, peer, d) for peer, d in raw.items()
                     if isinstance(d, dict) and "remoteAs" in d]
        requires = not re.search(r"^\s*no bgp ebgp-requires-policy\s*$", running, re.M)
        exported = {n.peer: self.exported(n.peer) for n in neighbors if n.state == "Established"}
        return RouterFacts(kind=self.kind, neighbors=neighbors, bfd=self.bfd_peers(),
                           undefined_policies=undefined_policies(running), requires_policy=requires,
                           exported=exported, evidence={"show running-config": running})

    def exported(self, peer: str) -> list[str]:
        """Prefixes FRR advertises to ``peer`` (``show bgp <afi> unicast neighbors X advertised-routes``)."""
        afi = "ipv6" if ":" in peer else "ipv4"
        raw = json.loads(self.vtysh(f"show bgp {afi} unicast neighbors {peer} advertised-routes json") or "{}")
        return sorted((raw.get("advertisedRoutes") or {}).keys())

    def maintenance(self, op: MaintenanceOp, peers: list[Session]) -> None:
        """Drain with an outbound deny-all and inbound local-pref 1, shut down, or undo both.

        ``clear bgp ... soft`` re-applies policy at once (Adj-RIB-In is kept by the template).
        """
        if not peers:
            return
        asn = peers[0].cust_asn
        cmds = ["configure terminal", "route-map CNILAB-MAINT-OUT deny 10",
                "route-map CNILAB-MAINT-IN permit 10", "set local-preference 1", "exit", f"router bgp {asn}"]
        for s in peers:
            fam = "ipv4" if s.family == 4 else "ipv6"
            if op == "withdraw":
                cmds += [f"address-family {fam} unicast", f"neighbor {s.cf_addr} route-map CNILAB-MAINT-OUT out",
                         f"neighbor {s.cf_addr} route-map CNILAB-MAINT-IN in", "exit-address-family"]
            elif op == "shutdown":
                cmds.append(f"neighbor {s.cf_addr} shutdown message planned maintenance")
            else:
                cmds += [f"no neighbor {s.cf_addr} shutdown", f"address-family {fam} unicast",
                         f"no neighbor {s.cf_addr} route-map CNILAB-MAINT-OUT out",
                         f"no neighbor {s.cf_addr} route-map CNILAB-MAINT-IN in", "exit-address-family"]
        self.vtysh(*cmds, "end", *(f"clear bgp {s.cf_addr} soft" for s in peers if op != "shutdown"))


def _sum(values: list[int | None]) -> int | None:
    got = [v for v in values if v is not None]
    return sum(got) if got else None


def _secs(ms: int | None) -> int | None:
    return None if ms is None else int(ms) // 1000


def frr_neighbor(plan: LabPlan, peer: str, d: dict) -> BgpNeighbor:
    """One entry of ``show bgp neighbors json`` as a :class:`BgpNeighbor`."""
    afs = [af for af in (d.get("addressFamilyInfo") or {}).values() if isinstance(af, dict)]
    policies: list[str] = []
    for af in afs:
        for key in ("routeMapForOutgoingAdvertisements", "outgoingUpdatePrefixFilterList",
                    "outgoingUpdateNetworkFilterList", "outgoingUpdateAsPathFilterList", "unsuppressMap"):
            if af.get(key):
                policies.append(str(af[key]))
    up = d.get("bgpState") == "Established"
    bfd = d.get("peerBfdInfo")
    return BgpNeighbor(
        peer=peer, name=d.get("nbrDesc") or peer, remote_as=d.get("remoteAs"), local_as=d.get("localAs"),
        state=d.get("bgpState"), received=_sum([af.get("acceptedPrefixCounter") for af in afs]),
        sent=_sum([af.get("sentPrefixCounter") for af in afs]), session=session_key(plan, peer),
        last_error=d.get("lastResetDueTo") or d.get("lastNotificationReason"),
        hold_time=_secs(d.get("bgpTimerHoldTimeMsecs")) if up else None,
        keepalive=_secs(d.get("bgpTimerKeepAliveIntervalMsecs")) if up else None,
        hold_time_configured=_secs(d.get("bgpTimerConfiguredHoldTimeMsecs")),
        keepalive_configured=_secs(d.get("bgpTimerConfiguredKeepAliveIntervalMsecs")),
        connect_retry=d.get("connectRetryTimer"),
        export_policy=list(dict.fromkeys(policies)), bfd=bfd is not None)


_DEFINED = re.compile(r"^(?:route-map|ip(?:v6)? prefix-list|bgp as-path access-list|bgp community-list"
                      r"(?: standard| expanded)?)\s+(\S+)", re.M)
_REFERENCED = re.compile(r"(?:neighbor \S+ (?:route-map|prefix-list|filter-list) (\S+) (?:in|out)"
                         r"|match ip(?:v6)? address prefix-list (\S+)|match as-path (\S+)"
                         r"|match community (\S+))", re.M)


def undefined_policies(running: str) -> list[str]:
    """Route-maps, prefix-lists, as-path and community lists referenced in ``running`` but never defined.

    FRR accepts such a reference (the object may be defined later) and applies a policy that does
    not exist, so a typo in a name passes the parser and changes what is announced.
    """
    defined = set(_DEFINED.findall(running))
    refs = [next(g for g in m.groups() if g) for m in _REFERENCED.finditer(running)]
    return list(dict.fromkeys(r for r in refs if r not in defined))


render_frr = FrrRouter.render
"""The integrated ``frr.conf`` a careful customer would write for a plan."""
