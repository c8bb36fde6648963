"""GoBGP 3 as the customer router: ``gobgpd`` with a TOML or YAML config, ``gobgp`` for its state.

What GoBGP does not do, and what the lab does about it (each is said in the start record and the
cross-checks, never hidden):

* **No BFD.** gobgpd has no BFD implementation; on a profile with BFD the checks WARN that a silent
  failure takes the BGP hold time to detect, and the BFD step is skipped with that reason.
* **No prefix origination in the config file.** Operators add their prefixes with
  ``gobgp global rib add`` after start (an ``ExecStartPost``); bring those lines in a file next to
  the config named ``<config>.rib``. Without it the router announces nothing, as it would in production.
* **No FIB of its own.** In production gobgpd programs the kernel through FRR's zebra; Debian's
  gobgpd 3.10 speaks ZAPI 6 as FRR 8.1 did and crashes on FRR 8.4's zebra, so the lab runs a small
  FIB sync (:mod:`cnilab.sim.routers.gobgp_fib`) that installs gobgpd's best routes with ``proto 186``. The
  record says so (``installed_by_cnilab``) and a config that enables ``[zebra]`` is refused.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from cnilab.sim.routers.base import BgpNeighbor, CustomerRouter, MaintenanceOp, RouterFacts
from cnilab.sim.routers.common import (
    RouterError,
    UserConfigError,
    check_socket_path,
    log_tail,
    record_start,
    run_parser,
    session_key,
    template_context,
    wait_started,
)
from cnilab.sim.routers.registry import register
from cnilab.sim.runtime.process import ProcessRecord
from cnilab.sim.topology.plan import LabPlan, Session

SESSION_STATES = {0: "Unknown", 1: "Idle", 2: "Connect", 3: "Active", 4: "OpenSent", 5: "OpenConfirm",
                  6: "Established"}
"""gobgp's ``session_state`` enum (api/gobgp.proto PeerState.SessionState) in the words FRR uses."""
GOBGP_CONNECT_RETRY = 120
FIB_NOTE = ("kernel routes installed by cnilab's FIB sync (gobgpd has no FIB of its own; Debian's gobgpd 3.10 "
            "cannot use FRR 8.4's zebra)")


def config_type(path: Path, text: str | None = None) -> str:
    """``toml`` or ``yaml`` from the suffix, else from the text (gobgpd's ``-t``)."""
    if path.suffix in (".yml", ".yaml"):
        return "yaml"
    if path.suffix == ".json":
        return "json"
    if path.suffix == ".toml":
        return "toml"
    body = text if text is not None else path.read_text(encoding="utf-8", errors="replace")
    return "toml" if "[global" in body or "[[neighbors]]" in body else "yaml"


def load_config(text: str, ctype: str) -> dict[str, Any]:
    """The config as data (for the lab's own refusals; gobgpd's parser has the last word on syntax)."""
    try:
        data = tomllib.loads(text) if ctype == "toml" else (json.loads(text) if ctype == "json" else
                                                            yaml.safe_load(text))
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def rib_path(config: Path) -> Path:
    """The ``gobgp global rib add`` lines that go with ``config`` (``gobgpd.toml`` -> ``gobgpd.toml.rib``)."""
    return config.with_name(config.name + ".rib")


def parse_rib_lines(text: str, source: str) -> list[list[str]]:
    """``gobgp global rib add PREFIX [-a ipv6] ...`` lines as argv tails (after ``gobgp``); # comments allowed."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        argv = shlex.split(line)
        if argv[:1] == ["gobgp"]:
            argv = argv[1:]
        if argv[:3] != ["global", "rib", "add"]:
            raise UserConfigError(Path(source), [f"{source}:{n}: '{raw.strip()}': only `gobgp global rib add ...` "
                                                 "lines belong in the .rib file"])
        out.append(argv)
    return out


@register("gobgp")
class GobgpRouter(CustomerRouter):
    """gobgpd in one lab node: config, API socket and logs under ``<node_dir>/gobgp``."""

    @classmethod
    def validate(cls, path: Path) -> None:
        """``gobgpd --dry-run`` (its own parser: unknown keys and bad values refused) plus the lab's refusals."""
        ctype = config_type(path)
        run_parser(path, ["gobgpd", "--dry-run", "-f", str(path), "-t", ctype, "-p"],
                   "GoBGP refuses it (gobgpd --dry-run)", last=3)
        data = load_config(path.read_text(encoding="utf-8"), ctype)
        if (data.get("zebra") or {}).get("config", {}).get("enabled"):
            raise UserConfigError(path, [f"customer.router.config = '{path}': zebra.config.enabled = true: the lab "
                                         "cannot run GoBGP's zebra client (Debian's gobgpd 3.10 crashes on FRR 8.4's "
                                         "zebra); remove [zebra] and cnilab installs gobgpd's routes itself, labelled "
                                         "as such"])
        rib = rib_path(path)
        if rib.exists():
            parse_rib_lines(rib.read_text(encoding="utf-8"), str(rib))

    @classmethod
    def render_rib(cls, plan: LabPlan) -> str:
        ctx = template_context(plan)
        return "".join(f"gobgp global rib add {p} -a ipv{4 if ':' not in p else 6}\n"
                       for p in ctx["announce4"] + ctx["announce6"])

    @classmethod
    def cli_socket(cls, workdir: Path) -> list[str]:
        return ["--target", f"unix://{workdir / 'gobgp.sock'}"]

    @property
    def sock(self) -> Path:
        return self.dir / "gobgp.sock"

    @property
    def conf(self) -> Path:
        rec = self.record()
        return Path(rec["config"]) if rec.get("config") else self.dir / str(self.info().config_name)

    def start(self, config_text: str | None = None, source: str = "template") -> list[ProcessRecord]:
        """Start gobgpd, add the originated prefixes, start the FIB sync; on failure nothing is left."""
        plan = self.lab.plan
        user = plan.customer_router.config if config_text is not None else None
        text = config_text if config_text is not None else self.render(plan)
        ctype = config_type(Path(user), text) if user else "toml"
        if user is not None and rib_path(Path(user)).exists():
            rib_text, rib_source = rib_path(Path(user)).read_text(encoding="utf-8"), str(rib_path(Path(user)))
        elif user is not None:
            rib_text, rib_source = "", "none (no .rib file next to your config: gobgpd originates nothing)"
        else:
            rib_text, rib_source = self.render_rib(plan), "template"
        rib = parse_rib_lines(rib_text, rib_source)
        check_socket_path(self.sock, "GoBGP")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock.unlink(missing_ok=True)
        conf = self.dir / f"gobgpd.{ctype}"
        conf.write_text(text)
        (self.dir / "gobgpd.rib").write_text(rib_text)
        log = self.dir / "gobgpd.log"
        procs: list[ProcessRecord] = []
        try:
            rec = self.lab.spawn(self.node, "gobgpd", [
                "gobgpd", "-f", str(conf), "-t", ctype, "-p", "--log-level", "info", "--pprof-disable",
                "--api-hosts", f"unix://{self.sock}"], log=log)
            procs.append(rec)
            self._wait_ready(rec, log, source)
            for argv in rib:
                self.gobgp(*argv)
            procs.append(self.lab.spawn(self.node, "gobgp-fib", [
                sys.executable, "-m", "cnilab.sim.routers.gobgp_fib", "--target", f"unix://{self.sock}"],
                log=self.dir / "fib.log"))
            record_start(self.lab, self.kind, self.node, self.dir, source, procs, config=str(conf),
                         originated_by=rib_source, installed_by_cnilab=[FIB_NOTE])
        except BaseException:
            for p in reversed(procs):
                p.stop()
            raise
        return procs

    def _wait_ready(self, rec: ProcessRecord, log: Path, source: str) -> None:
        wait_started(rec, lambda: self.sock.exists() and self._gobgp_raw("global").returncode == 0,
                     what=f"gobgpd in node {self.node} ({source})", waiting_for=f"answer on {self.sock}",
                     log=lambda: log_tail(log), interval=0.1)

    # -- queries ---------------------------------------------------------------------------------
    def _gobgp_raw(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.node, ["gobgp", "--target", f"unix://{self.sock}", *args], check=False)

    def gobgp(self, *args: str) -> str:
        """Run one ``gobgp`` command against this node's gobgpd; raises with its message on error."""
        r = self._gobgp_raw(*args)
        if r.returncode != 0:
            raise RouterError(f"gobgp in node {self.node} failed ({' '.join(args)}): {(r.stdout + r.stderr).strip()}")
        return r.stdout

    def routes(self) -> str:
        return self.gobgp("global", "rib", "-a", "ipv4") + self.gobgp("global", "rib", "-a", "ipv6")

    def running_config(self) -> str:
        return self.conf.read_text(encoding="utf-8") if self.conf.exists() else ""

    def _export_policy(self) -> list[str]:
        """The export policies gobgpd applies now (``gobgp global policy export``), not what the file says.

        gobgpd starts even when it cannot build a policy the file defines (a prefix-set mixing IPv4
        and IPv6: "multiple families") and then exports with no policy and default accept.
        """
        raw = json.loads(self.gobgp("global", "policy", "export", "-j") or "{}")
        names = [str(p.get("name")) for p in raw.get("policies") or []]
        if not names and raw.get("default_action") == 2:  # api RouteAction REJECT
            return ["default-export-policy reject-route"]
        return names

    def _unoriginated(self) -> list[str]:
        """Prefixes of the ``.rib`` lines that are not in gobgpd's RIB: its global import policy also
        judges locally added paths, so a default-reject import drops the customer's own routes."""
        rib = self.dir / "gobgpd.rib"
        wanted = [a[3] for a in parse_rib_lines(rib.read_text(), str(rib))] if rib.exists() else []
        missing = []
        for prefix in wanted:
            fam = "ipv6" if ":" in prefix else "ipv4"
            raw = json.loads(self.gobgp("global", "rib", "-a", fam, "-j") or "{}")
            if not any(not p.get("neighbor-ip") for p in raw.get(prefix, [])):
                missing.append(prefix)
        return missing

    def _policy_errors(self, export: list[str]) -> list[str]:
        out = []
        lost = self._unoriginated()
        if lost:
            out.append(f"{', '.join(lost)} added with `gobgp global rib add` but not in gobgpd's RIB: the global "
                       "import policy also judges your own routes and rejected them (accept route-type local)")
        data = load_config(self.running_config(), config_type(self.conf))
        ap = ((data.get("global") or {}).get("apply-policy") or {}).get("config") or {}
        wanted = [str(n) for n in ap.get("export-policy-list") or []]
        missing = [n for n in wanted if n not in export]
        if not missing:
            return out
        said = [ln for ln in (self.dir / "gobgpd.log").read_text(errors="replace").splitlines()
                if "routing policy" in ln or "Topic=Policy" in ln] if (self.dir / "gobgpd.log").exists() else []
        why = f" (gobgpd.log: {said[-1].split('msg=', 1)[-1]})" if said else ""
        return [*out, f"export-policy-list {missing} is not in effect: gobgpd applies "
                      f"{export or 'no export policy and accepts everything'}{why}"]

    def bgp(self) -> list[BgpNeighbor]:
        export = self._export_policy()
        out = []
        for n in json.loads(self.gobgp("neighbor", "-j") or "[]"):
            out.append(gobgp_neighbor(self.lab.plan, n, export))
        return out

    def exported(self, peer: str, family: int) -> list[str]:
        raw = json.loads(self.gobgp("neighbor", peer, "adj-out", "-a", f"ipv{family}", "-j") or "{}")
        return sorted(raw) if isinstance(raw, dict) else []

    def facts(self) -> RouterFacts:
        neighbors = self.bgp()
        exported = {n.peer: self.exported(n.peer, 6 if ":" in n.peer else 4) for n in neighbors
                    if n.state == "Established"}
        export = neighbors[0].export_policy or [] if neighbors else self._export_policy()
        return RouterFacts(kind=self.kind, neighbors=neighbors, bfd=None, exported=exported,
                           policy_errors=self._policy_errors(export),
                           evidence={"gobgp neighbor -j": self.gobgp("neighbor", "-j")})

    def maintenance(self, op: MaintenanceOp, peers: list[Session]) -> None:
        """Shut down (``gobgp neighbor X disable``) or restore; a drain needs a policy GoBGP has no CLI for."""
        if op == "withdraw":
            raise NotImplementedError("maintenance withdraw is not implemented for GoBGP: its export policy is "
                                      "global, so a per-session drain needs a route-server setup")
        for s in peers:
            self.gobgp("neighbor", str(s.cf_addr), "disable" if op == "shutdown" else "enable")


def gobgp_neighbor(plan: LabPlan, n: dict[str, Any], export: list[str]) -> BgpNeighbor:
    """One entry of ``gobgp neighbor -j`` as a :class:`BgpNeighbor`."""
    conf, state = n.get("conf") or {}, n.get("state") or {}
    timers = n.get("timers") or {}
    tconf, tstate = timers.get("config") or {}, timers.get("state") or {}
    peer = conf.get("neighbor_address") or state.get("neighbor_address") or ""
    afs = [a.get("state") or {} for a in n.get("afi_safis") or []]
    sname = SESSION_STATES.get(int(state.get("session_state") or 0), str(state.get("session_state")))
    up = sname == "Established"
    received = [a["accepted"] for a in afs if "accepted" in a]
    return BgpNeighbor(
        peer=peer, name=conf.get("description") or peer, remote_as=conf.get("peer_asn"),
        local_as=conf.get("local_asn"), state=sname, received=sum(received) if up else None, sent=None,
        session=session_key(plan, peer), last_error=None,
        hold_time=tstate.get("negotiated_hold_time") if up else None,
        keepalive=tstate.get("keepalive_interval") if up else None,
        hold_time_configured=tconf.get("hold_time"), keepalive_configured=tconf.get("keepalive_interval"),
        # idle_hold_time_after_reset applies after an operator's `gobgp neighbor X reset`, not after a
        # failure: a failed session reconnects on the connect-retry timer (measured: ~14 s with 5 s).
        connect_retry=tconf.get("connect_retry", GOBGP_CONNECT_RETRY), error_wait=None,
        export_policy=export, bfd=False)


validate_gobgp_config = GobgpRouter.validate
