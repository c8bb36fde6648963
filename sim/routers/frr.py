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
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sim.lab.process import ProcessRecord
from sim.routers import (
    SUN_PATH_MAX,
    RouterError,
    RouterLab,
    UserConfigError,
    extra_key,
    log_tail,
    process_dead,
    record_start,
    session_key,
    stop_recorded,
    template_context,
    templates,
)
from sim.topology.plan import CUSTOMER, LabPlan

FRR_BIN = Path("/usr/lib/frr")
FRR_SCRATCH = Path("/var/tmp/frr")
DAEMONS: tuple[str, ...] = ("zebra", "staticd", "bgpd", "bfdd")
START_TIMEOUT = 15.0
VTY_GROUP = "frrvty"
"""Running as root, FRR insists the run-as group be its vty group (``privs_init``)."""


def render_frr(plan: LabPlan) -> str:
    """The integrated ``frr.conf`` a careful customer would write for this plan."""
    return templates().get_template("frr.conf.j2").render(**template_context(plan))


def _daemon_message(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines()]
    keep = [ln for ln in lines if ln and "vtysh.conf" not in ln]
    return "; ".join(keep) or "(no message)"


def validate_frr_config(path: Path) -> None:
    """Parse ``path`` with FRR's own parser (``vtysh --dryrun``) without any daemon running.

    vtysh knows every daemon's commands, so this catches what any of them would refuse.
    """
    with tempfile.TemporaryDirectory(prefix="cnilab-frrchk-") as d:
        (Path(d) / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        try:
            r = subprocess.run(["vtysh", "--config_dir", d, "--dryrun", "-f", str(path)],
                               capture_output=True, text=True, timeout=30, check=False)
        except FileNotFoundError as exc:
            raise UserConfigError(path, [f"customer.router.config: cannot check it, vtysh not installed ({exc})"]) \
                from exc
    if r.returncode != 0:
        raise UserConfigError(path, [
            f"customer.router.config = '{path}': FRR refuses it (vtysh --dryrun): "
            + _daemon_message(r.stdout + "\n" + r.stderr)])


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


class FrrRouter:
    """FRR in one lab node, with all of its paths under ``<node_dir>/frr``."""

    kind = "frr"

    def __init__(self, lab: RouterLab, node: str = CUSTOMER) -> None:
        self.lab = lab
        self.node = node
        self.dir = lab.node_dir(node) / "frr"

    @property
    def conf(self) -> Path:
        return self.dir / "frr.conf"

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
        text = config_text if config_text is not None else render_frr(self.lab.plan)
        longest = self.dir / "staticd.vty"
        if len(str(longest)) > SUN_PATH_MAX:
            raise RouterError(f"FRR socket path {longest} is {len(str(longest))} bytes; unix sockets allow "
                              f"{SUN_PATH_MAX}: use a shorter CNILAB_STATE_DIR")
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
            r = self._vtysh_raw(["--config_dir", str(self.dir), "-b"])
            if r.returncode != 0 or "failed to connect" in r.stdout + r.stderr:
                raise RouterError(f"FRR in node {self.node} refused {source} ({self.conf}): "
                                  + _daemon_message(r.stdout + "\n" + r.stderr))
            record_start(self.lab, self.kind, self.node, self.dir, source, procs)
        except BaseException:
            for rec in reversed(procs):
                rec.stop()
            raise
        return procs

    def _wait_ready(self, daemon: str, rec: ProcessRecord) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if all(_accepts(s) for s in self._sockets(daemon)):
                return
            if process_dead(rec):
                raise RouterError(f"FRR {daemon} in node {self.node} exited at start: "
                                  f"{log_tail(self.dir / f'{daemon}.out')} {log_tail(self.dir / f'{daemon}.log')}")
            time.sleep(0.05)
        raise RouterError(f"FRR {daemon} in node {self.node} did not open its vty socket within "
                          f"{START_TIMEOUT:.0f}s: {log_tail(self.dir / f'{daemon}.log')}")

    def stop(self) -> None:
        """Stop the daemons, then remove the per-PID scratch dirs FRR leaves in /var/tmp/frr.

        FRR makes ``/var/tmp/frr/<daemon>.<pid>`` for crash logs and, having dropped privileges,
        cannot remove it at exit; the PIDs are ours, so are these directories.
        """
        info = self.lab.state.extra.get(extra_key(self.node)) or {}
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

    def bgp(self) -> list[dict[str, Any]]:
        data = json.loads(self.vtysh("show ip bgp neighbors json") or "{}")
        out = []
        for peer, d in data.items():
            if not isinstance(d, dict) or "remoteAs" not in d:
                continue
            afs = d.get("addressFamilyInfo") or {}
            recv = [af.get("acceptedPrefixCounter") for af in afs.values() if isinstance(af, dict)]
            sent = [af.get("sentPrefixCounter") for af in afs.values() if isinstance(af, dict)]
            err = d.get("lastResetDueTo") or d.get("lastNotificationReason")
            out.append({
                "peer": peer, "remote_as": d.get("remoteAs"), "local_as": d.get("localAs"),
                "state": d.get("bgpState"),
                "received": sum(x for x in recv if x is not None) if any(x is not None for x in recv) else None,
                "sent": sum(x for x in sent if x is not None) if any(x is not None for x in sent) else None,
                "session": session_key(self.lab.plan, peer), "name": d.get("nbrDesc") or peer,
                "last_error": err,
            })
        return out
