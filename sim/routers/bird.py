"""BIRD 2 as the customer router: one ``bird -f`` per lab node, control socket in the lab dir.

Like FRR it runs in the foreground through ``lab.spawn`` so the lab owns the PID; the control
socket and pid file live in ``<node_dir>/bird`` so labs never share a socket with each other or
with a system BIRD.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

from cnilab.sim.routers.base import BfdPeer, BgpNeighbor, CustomerRouter, RouterFacts
from cnilab.sim.routers.common import (
    RouterError,
    check_socket_path,
    log_tail,
    record_start,
    run_parser,
    session_key,
    wait_started,
)
from cnilab.sim.routers.registry import register
from cnilab.sim.runtime.process import ProcessRecord

_PROTO_HEAD = re.compile(r"^(?P<name>\S+)\s+BGP\s+\S+\s+(?P<up>\S+)\s+\S+(?:\s+(?P<info>.*))?$")


def parse_bird_protocols(text: str) -> list[dict[str, Any]]:
    """Parse ``birdc show protocols all`` into one dict per BGP protocol (other protocols skipped)."""
    out: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith(("BIRD ", "Name ")):
            continue
        if not raw.startswith((" ", "\t")):
            m = _PROTO_HEAD.match(line.strip())
            cur = None
            if m:
                info = (m.group("info") or "").strip()
                cur = {"name": m.group("name"), "peer": None, "remote_as": None, "local_as": None,
                       "state": info.split()[0] if info else m.group("up"), "received": None, "sent": None,
                       "last_error": None, "_info": info}
                out.append(cur)
            continue
        if cur is None:
            continue
        key, _, val = line.strip().partition(":")
        val = val.strip()
        if key == "BGP state":
            cur["state"] = val
        elif key == "Neighbor address":
            cur["peer"] = val.split("%")[0]
        elif key == "Neighbor AS":
            cur["remote_as"] = int(val)
        elif key == "Local AS":
            cur["local_as"] = int(val)
        elif key in ("Hold timer", "Keepalive timer") and "/" in val:
            cur["hold_time" if key == "Hold timer" else "keepalive"] = int(float(val.rsplit("/", 1)[1]))
        elif key == "Last error":
            cur["last_error"] = val
        elif key == "Routes":
            m = re.search(r"(\d+) imported.*?(\d+) exported", val)
            if m:
                cur["received"] = (cur["received"] or 0) + int(m.group(1))
                cur["sent"] = (cur["sent"] or 0) + int(m.group(2))
    for p in out:
        info = p.pop("_info")
        if p["last_error"] is None and p["state"] != "Established" and info and info != p["state"]:
            p["last_error"] = info
    return out


@register("bird")
class BirdRouter(CustomerRouter):
    """BIRD 2 in one lab node, with its config, socket and pid under ``<node_dir>/bird``."""

    @classmethod
    def validate(cls, path: Path) -> None:
        """Parse ``path`` with BIRD's own parser (``bird -p``): nothing runs, nothing is bound."""
        run_parser(path, ["bird", "-p", "-c", str(path)], "BIRD refuses it (bird -p)")

    @classmethod
    def cli_socket(cls, workdir: Path) -> list[str]:
        return ["-s", str(workdir / "bird.ctl")]

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    def start(self, config_text: str | None = None, source: str = "template") -> list[ProcessRecord]:
        """Start BIRD with ``config_text`` (default: the template); on failure nothing is left running."""
        text = config_text if config_text is not None else self.render(
            self.lab.plan, lambda n: self.lab.ifname(self.node, n))
        check_socket_path(self.ctl, "BIRD")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ctl.unlink(missing_ok=True)
        self.conf.write_text(text)
        log = self.dir / "bird.log"
        rec = self.lab.spawn(self.node, "bird", ["bird", "-f", "-c", str(self.conf), "-s", str(self.ctl),
                                                 "-P", str(self.dir / "bird.pid")], log=log)
        try:
            wait_started(rec, self.ctl.exists, what=f"BIRD in node {self.node} ({source})",
                         waiting_for=f"open {self.ctl}", log=lambda: log_tail(log))
            record_start(self.lab, self.kind, self.node, self.dir, source, [rec])
        except BaseException:
            rec.stop()
            raise
        return [rec]

    def birdc(self, *command: str) -> str:
        """Run one ``birdc`` command against this node's BIRD; raises with BIRD's message on error."""
        r = self.lab.run(self.node, ["birdc", "-s", str(self.ctl), *command], check=False)
        if r.returncode != 0:
            raise RouterError(f"birdc in node {self.node} failed ({' '.join(command)}): {r.stdout}{r.stderr}")
        return r.stdout

    def routes(self) -> str:
        return self.birdc("show", "route")

    def bgp(self) -> list[BgpNeighbor]:
        conf = bird_protocol_settings(self.running_config())
        out = []
        for p in parse_bird_protocols(self.birdc("show", "protocols", "all")):
            p["session"] = session_key(self.lab.plan, p["peer"]) if p["peer"] else None
            p.update(conf.get(p["name"], {}))
            out.append(BgpNeighbor.model_validate(p))
        return out

    def bfd_peers(self) -> list[BfdPeer]:
        r = self.lab.run(self.node, ["birdc", "-s", str(self.ctl), "show", "bfd", "sessions"], check=False)
        if "no BFD protocol" in r.stdout + r.stderr:
            return []  # a config without `protocol bfd`: no sessions, not an error
        if r.returncode != 0:
            raise RouterError(f"birdc in node {self.node} failed (show bfd sessions): {r.stdout}{r.stderr}")
        return parse_bird_bfd(r.stdout, self.running_config())

    def exported(self, protocol: str) -> list[str]:
        """Prefixes BIRD advertises through ``protocol`` (``show route export``)."""
        text = self.birdc("show", "route", "export", protocol)
        return [m.group(1) for m in re.finditer(r"^([0-9a-f.:]+/\d+)\s", text, re.M)]

    def facts(self) -> RouterFacts:
        neighbors = self.bgp()
        exported = {n.peer: self.exported(n.name) for n in neighbors if n.state == "Established"}
        return RouterFacts(kind=self.kind, neighbors=neighbors, bfd=self.bfd_peers(), exported=exported,
                           evidence={"birdc show protocols all": self.birdc("show", "protocols", "all")})


_BFD_ROW = re.compile(r"^(?P<ip>[0-9a-fA-F.:]+)\s+(?P<ifc>\S+)\s+(?P<state>\S+)\s+\S+(?:\s+\S+)?\s+"
                      r"(?P<interval>[\d.]+)\s+(?P<timeout>[\d.]+)\s*$")
BIRD_BFD_DEFAULTS = {"rx": 10, "tx": 100, "mult": 5}
"""BIRD 2's BFD defaults (min rx interval 10 ms, min tx interval 100 ms, multiplier 5)."""


def bird_bfd_timers(conf: str) -> list[tuple[str, dict[str, int]]]:
    """(interface pattern, configured timers) of every ``interface`` block in ``protocol bfd``, in order.

    ``show bfd sessions`` prints negotiated values (the slower of both ends), which hide a local
    setting that differs from the CNI's, so the configured ones are read from the config.
    """
    out = []
    for m in re.finditer(r'interface\s+"([^"]+)"\s*\{([^}]*)\}', conf):
        body, t = m.group(2), dict(BIRD_BFD_DEFAULTS)
        if x := re.search(r"(?<!rx )(?<!tx )\binterval\s+(\d+)\s*ms", body):
            t["rx"] = t["tx"] = int(x.group(1))
        for key, rx in (("rx", r"min\s+rx\s+interval\s+(\d+)\s*ms"), ("tx", r"min\s+tx\s+interval\s+(\d+)\s*ms"),
                        ("mult", r"multiplier\s+(\d+)")):
            if x := re.search(rx, body):
                t[key] = int(x.group(1))
        out.append((m.group(1), t))
    return out


def parse_bird_bfd(text: str, conf: str = "") -> list[BfdPeer]:
    """``birdc show bfd sessions`` (state per peer) with the timers the config sets for its interface."""
    timers = bird_bfd_timers(conf)
    out = []
    for line in text.splitlines():
        m = _BFD_ROW.match(line.strip())
        if not m:
            continue
        t = next((t for pat, t in timers if fnmatch.fnmatchcase(m.group("ifc"), pat)), None)
        if t is None:  # no interface block matched: what the session negotiated is all there is to say
            interval, timeout = float(m.group("interval")), float(m.group("timeout"))
            ms = round(interval * 1000)
            t = {"tx": ms, "rx": ms, "mult": round(timeout / interval) if interval else 0}
        out.append(BfdPeer(peer=m.group("ip"), state=m.group("state"), tx_ms=t["tx"], rx_ms=t["rx"],
                           multiplier=t["mult"]))
    return out


_BLOCK = re.compile(r"^\s*(protocol|template)\s+bgp(?:\s+(\w+))?(?:\s+from\s+(\w+))?\s*\{", re.M)
_TIME = {"hold_time_configured": r"hold\s+time\s+(\d+)", "keepalive_configured": r"keepalive\s+time\s+(\d+)",
         "connect_retry": r"connect\s+retry\s+time\s+(\d+)"}
BIRD_ERROR_WAIT = (60, 300)
"""BIRD's default ``error wait time`` (min, max): after an error it waits this long before reconnecting."""
BIRD_CONNECT_RETRY = 120


def _own_settings(body: str) -> dict:
    """What one ``protocol``/``template bgp`` block sets itself (None where it says nothing)."""
    d: dict = {k: int(x.group(1)) if (x := re.search(rx, body)) else None for k, rx in _TIME.items()}
    ew = re.search(r"error\s+wait\s+time\s+(\d+)\s*,\s*(\d+)", body)
    d["error_wait"] = (int(ew.group(1)), int(ew.group(2))) if ew else None
    bfd = re.search(r"\bbfd\s+(on|yes|true|off|no|false|\{)", body)
    d["bfd"] = None if bfd is None else bfd.group(1) in ("on", "yes", "true", "{")
    d["export"] = [e.strip() for e in re.findall(r"\bexport\s+([^;]+);", body)] or None
    return d


def bird_protocol_settings(conf: str) -> dict[str, dict]:
    """Per BGP protocol of a bird.conf: timers, BFD and export policy as written, templates and defaults applied.

    BIRD's ``show protocols all`` does not print its back-off timers, and they decide how long a
    session stays down after an error, so they are read from the config the daemon runs.
    """
    blocks: dict[str, tuple[str, str | None, dict]] = {}
    anonymous = 0
    for m in _BLOCK.finditer(conf):
        depth, i = 1, m.end()
        while i < len(conf) and depth:
            depth += {"{": 1, "}": -1}.get(conf[i], 0)
            i += 1
        body = re.sub(r"#.*$", "", conf[m.end():i], flags=re.M)
        name = m.group(2)
        if name is None:  # BIRD names an anonymous `protocol bgp { ... }` bgp1, bgp2, ...
            anonymous += 1
            name = f"bgp{anonymous}"
        blocks[name] = (m.group(1), m.group(3), _own_settings(body))

    def resolved(name: str, seen: frozenset[str] = frozenset()) -> dict:
        _, parent, own = blocks[name]
        base = resolved(parent, seen | {name}) if parent in blocks and parent not in seen else {}
        return {k: own[k] if own.get(k) is not None else base.get(k) for k in own}

    out: dict[str, dict] = {}
    for name, (what, _, _) in blocks.items():
        if what != "protocol":
            continue
        d = resolved(name)
        exports = d.pop("export") or []
        d["connect_retry"] = d["connect_retry"] or BIRD_CONNECT_RETRY
        d["error_wait"] = d["error_wait"] or BIRD_ERROR_WAIT
        d["bfd"] = bool(d["bfd"])
        # `export all` is no policy at all; no export line is BIRD 2's RFC 8212 default for eBGP: nothing.
        d["export_policy"] = ([] if exports and all(e == "all" for e in exports)
                              else [e for e in exports if e != "all"] or ["none (RFC 8212 default)"])
        out[name] = d
    return out


render_bird = BirdRouter.render
"""The ``bird.conf`` a careful customer would write for a plan (``ifname``: plan -> kernel name)."""
