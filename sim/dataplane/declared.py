"""The customer's own side of the dataplane, as the customer declares it.

On a real CNI the customer builds its GRE tunnel and its MSS clamp itself; Cloudflare only builds
its own end. A lab that built both ends from one plan would always agree with itself, so tunnel
mistakes (wrong source, wrong inner /31, MTU left at 1500, no clamp, clamp 1476) could never be
rehearsed. This module reads what the customer would run on a Linux router, either

* a file (``customer.router.dataplane: FILE``) holding the ``ip``/``nft``/``iptables``/
  ``ip6tables``/``sysctl`` lines of their provisioning script, or
* a small declarative block in the topology (``tunnels:`` and ``mss_clamp:``),

into one :class:`CustomerDataplane`. Nothing is ever handed to a shell: each line is split with
:mod:`shlex`, must match the documented subset below, and becomes an argument vector (or a tunnel
description the lab realises with a kernel GRE device or the userspace endpoint). Anything else
is refused with the file, the line number and the value.

Accepted file lines (one command per line, ``\\`` continues a line, ``#`` starts a comment)::

    ip link add NAME type gre local A remote B [ttl N] [key K] [dev X] [pmtudisc|nopmtudisc]
    ip tunnel add NAME mode gre local A remote B [ttl N] [key K] [dev X]
    ip link set [dev] NAME [up|down] [mtu N]
    ip [-4|-6] addr add ADDR/LEN dev NAME
    ip [-4|-6] route add|replace PREFIX [via ADDR] [dev NAME] [metric N]
    nft add|insert|create table|chain|rule ...
    iptables|ip6tables [-t mangle|filter] -A|-I|-N CHAIN ...
    sysctl -w net.KEY=VALUE
    modprobe ...  (ignored: the lab detects GRE support itself)
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Family = Literal[4, 6]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeclaredTunnel(_Model):
    """One GRE tunnel as the customer configured it (every field exactly as written)."""

    name: str = Field(description="Interface name on the customer router")
    local: ipaddress.IPv4Address = Field(description="Outer source address (the customer's end)")
    remote: ipaddress.IPv4Address = Field(description="Outer destination (Cloudflare's end)")
    address: ipaddress.IPv4Interface | None = Field(default=None, description="Inner IPv4 address/31")
    address6: ipaddress.IPv6Interface | None = Field(default=None, description="Inner IPv6 address/127")
    mtu: int | None = Field(default=None, ge=68, le=65535,
                            description="Tunnel MTU; unset = what the kernel picks (outer MTU - 24)")
    key: int | None = Field(default=None, ge=0, le=0xFFFFFFFF, description="GRE key (RFC 2890); none on CNI")
    ttl: int | None = Field(default=None, ge=0, le=255)
    up: bool = True
    where: str = Field(default="", description="file:line (or topology field) that declared it")

    @field_validator("name")
    @classmethod
    def _ifname(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", v):
            raise ValueError(f"interface name {v!r}: 1-15 letters, digits, '_', '.', '-'")
        return v


class DeclaredClamp(_Model):
    """An MSS clamp rule: the value (or ``pmtu``: clamp to the route MTU) and where it applies."""

    family: Family
    value: int | Literal["pmtu"]
    interfaces: list[str] = Field(default_factory=list, description="Empty: every interface")
    tool: Literal["nft", "iptables", "ip6tables", "topology"]
    where: str = ""


class Command(_Model):
    """A validated argument vector run in the customer node, in file order, after the tunnels exist."""

    argv: list[str]
    where: str


class CustomerDataplane(_Model):
    """Everything the customer declared for its side of the dataplane, with where each came from."""

    source: str = Field(description="The file, or 'customer.router.dataplane' for the topology block")
    tunnels: list[DeclaredTunnel] = Field(default_factory=list)
    clamps: list[DeclaredClamp] = Field(default_factory=list)
    commands: list[Command] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Lines accepted but not acted on, and why")

    def tunnel(self, name: str) -> DeclaredTunnel | None:
        return next((t for t in self.tunnels if t.name == name), None)

    def clamp_for(self, family: Family) -> list[DeclaredClamp]:
        return [c for c in self.clamps if c.family == family]


class ClampBlock(_Model):
    value: int = Field(ge=536, le=65495, description="IPv4 MSS; the IPv6 rule gets value - 20")
    interfaces: list[str] = Field(default_factory=list, description="Default: every declared tunnel")


class DataplaneBlock(_Model):
    """``customer.router.dataplane`` written inline in the topology instead of as a file."""

    tunnels: list[DeclaredTunnel] = Field(default_factory=list)
    mss_clamp: ClampBlock | int | None = Field(default=None, description="The clamp your router applies")

    def resolve(self) -> CustomerDataplane:
        out = CustomerDataplane(source="customer.router.dataplane")
        for i, t in enumerate(self.tunnels):
            out.tunnels.append(t.model_copy(update={"where": f"customer.router.dataplane.tunnels[{i}]"}))
        if self.mss_clamp is not None:
            blk = self.mss_clamp if isinstance(self.mss_clamp, ClampBlock) else ClampBlock(value=self.mss_clamp)
            ifs = blk.interfaces or [t.name for t in self.tunnels]
            from cnilab.sim.facts import load_facts

            h = load_facts().headers
            where = "customer.router.dataplane.mss_clamp"
            table = ["inet", "customer_mss"]
            out.commands += [
                Command(argv=["nft", "add", "table", *table], where=where),
                Command(argv=["nft", "add", "chain", *table, "forward",
                              "{ type filter hook forward priority mangle; policy accept; }"], where=where)]
            for fam, value in ((4, blk.value), (6, blk.value - (h["ipv6"].bytes - h["ipv4"].bytes))):
                out.clamps.append(DeclaredClamp(family=fam, value=value, interfaces=ifs, tool="topology", where=where))
                match = ["meta", "nfproto", f"ipv{fam}", "tcp", "flags", "syn", "tcp", "option", "maxseg", "size",
                         ">", str(value), "tcp", "option", "maxseg", "size", "set", str(value)]
                for way in ("iifname", "oifname") if ifs else ("",):
                    sel = [way, "{ " + ", ".join(f'"{i}"' for i in ifs) + " }"] if way else []
                    out.commands.append(Command(argv=["nft", "add", "rule", *table, "forward", *sel, *match],
                                                where=where))
        return out


class DataplaneSyntaxError(ValueError):
    """A line outside the accepted subset: names the file, the line and the value."""

    def __init__(self, path: Path | str, line: int, text: str, why: str) -> None:
        self.path, self.line, self.text, self.why = Path(path), line, text, why
        super().__init__(f"{path}:{line}: {text!r}: {why}")


# -- the file parser ---------------------------------------------------------------------------------
def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) with ``\\`` continuations joined and comments/blank lines dropped."""
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        stripped = buf.strip()
        buf = ""
        if stripped and not stripped.startswith("#"):
            out.append((start, stripped))
    if buf.strip():
        out.append((start, buf.strip()))
    return out


_SHELL = re.compile(r"[`$|&]")
"""Shell syntax (substitutions, variables, pipes, chaining) is never accepted."""
_REDIRECT = re.compile(r"[<>;]")
"""Redirections and ``;``: refused outside nft, whose own syntax uses ``>`` and ``;``."""


_TOOLS = ("ip", "nft", "iptables", "ip6tables", "sysctl", "modprobe")


class _Parser:
    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.dp = CustomerDataplane(source=str(path))
        self.n = 0
        self.text = ""

    def err(self, why: str) -> DataplaneSyntaxError:
        return DataplaneSyntaxError(self.path, self.n, self.text, why)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.n}"

    def parse(self, text: str) -> CustomerDataplane:
        for n, line in _logical_lines(text):
            self.n, self.text = n, line
            if line.startswith("#!") or line in ("set -e", "set -eu", "set -eux", "set -ex"):
                continue
            if _SHELL.search(line) or (_REDIRECT.search(line) and not line.split()[0] == "nft"):
                raise self.err("shell syntax (pipes, redirections, $ or backticks) is not accepted: "
                               "one command per line")
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise self.err(f"cannot split into words: {exc}") from None
            if words and words[0] == "sudo":
                words = words[1:]
            if not words:
                continue
            if words[0].startswith("/") and words[0].rsplit("/", 1)[-1] in _TOOLS:
                words[0] = words[0].rsplit("/", 1)[-1]  # /sbin/ip, /usr/sbin/nft: the same tools
            handler = getattr(self, f"_cmd_{words[0].replace('6', 'six')}", None) if words[0] in _TOOLS else None
            if handler is None:
                raise self.err(f"{words[0]!r} is not in the accepted subset (ip, nft, iptables, ip6tables, "
                               "sysctl, modprobe); see sim/dataplane/declared.py")
            handler(words)
        return self.dp

    # -- ip ---------------------------------------------------------------------------------------
    def _cmd_ip(self, w: list[str]) -> None:
        fam: Family | None = None
        args = w[1:]
        while args and args[0].startswith("-"):
            opt = args.pop(0)
            if opt in ("-4", "-6"):
                fam = 4 if opt == "-4" else 6
            elif opt not in ("-br", "-c", "-d"):
                raise self.err(f"ip option {opt!r} is not accepted (only -4/-6)")
        if not args:
            raise self.err("ip: missing object (link, tunnel, addr, route)")
        obj, rest = args[0], args[1:]
        if "link".startswith(obj) and obj.startswith("l"):
            self._ip_link(rest)
        elif obj in ("tunnel", "tun", "tunl"):
            self._ip_tunnel(rest)
        elif obj in ("addr", "address", "a", "ad"):
            self._ip_addr(rest, fam)
        elif obj in ("route", "r", "ro", "rou"):
            self._ip_route(rest, fam)
        else:
            raise self.err(f"ip {obj!r}: only ip link, ip tunnel, ip addr and ip route are accepted")

    def _kv(self, words: list[str], flags: set[str], keyed: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        i = 0
        while i < len(words):
            k = words[i]
            if k in flags:
                out[k] = ""
                i += 1
            elif k in keyed:
                if i + 1 >= len(words):
                    raise self.err(f"{k!r} needs a value")
                out[k] = words[i + 1]
                i += 2
            else:
                raise self.err(f"{k!r} is not an accepted parameter here (accepted: "
                               f"{', '.join(sorted(flags | keyed))})")
        return out

    def _addr4(self, key: str, value: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(value)
        except ValueError:
            raise self.err(f"{key} {value!r} is not an IPv4 address") from None

    def _int(self, key: str, value: str, lo: int, hi: int) -> int:
        try:
            v = int(value, 0)
        except ValueError:
            v = -1
        if not lo <= v <= hi:
            if key == "key" and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
                return int(ipaddress.IPv4Address(value))
            raise self.err(f"{key} {value!r}: expected an integer from {lo} to {hi}")
        return v

    def _gre(self, name: str, params: dict[str, str]) -> None:
        if "local" not in params or "remote" not in params:
            raise self.err("a GRE tunnel needs both `local` and `remote` (cnilab does not guess them)")
        if self.dp.tunnel(name):
            raise self.err(f"tunnel {name} is declared twice")
        key = None
        for k in ("key", "ikey", "okey"):
            if k in params:
                key = self._int(k, params[k], 0, 0xFFFFFFFF)
        if "ikey" in params and "okey" in params and params["ikey"] != params["okey"]:
            raise self.err("different ikey and okey are not modelled; use one `key`")
        if "nopmtudisc" in params:
            self.dp.notes.append(f"{self.where}: nopmtudisc: the lab's tunnels always set DF on the outer packet")
        self.dp.tunnels.append(DeclaredTunnel(
            name=name, local=self._addr4("local", params["local"]), remote=self._addr4("remote", params["remote"]),
            key=key, ttl=self._int("ttl", params["ttl"], 0, 255) if "ttl" in params else None,
            up=False, where=self.where))

    def _ip_link(self, w: list[str]) -> None:
        if not w:
            raise self.err("ip link: missing add/set")
        op, rest = w[0], w[1:]
        if op == "add":
            if len(rest) < 3:
                raise self.err("expected `ip link add NAME type gre local A remote B`")
            name = rest[1] if rest[0] in ("dev", "name") else rest[0]
            rest = rest[2:] if rest[0] in ("dev", "name") else rest[1:]
            if rest[:2] != ["type", "gre"]:
                kind = rest[1] if len(rest) > 1 else "?"
                raise self.err(f"link type {kind!r}: only `type gre` is accepted (the CNI tunnel is GRE)")
            p = self._kv(rest[2:], {"pmtudisc", "nopmtudisc"},
                         {"local", "remote", "ttl", "key", "ikey", "okey", "dev", "tos"})
            self._validate_name(name)
            self._gre(name, p)
        elif op == "set":
            if rest and rest[0] == "dev":
                rest = rest[1:]
            if not rest:
                raise self.err("ip link set: missing interface name")
            name, rest = rest[0], rest[1:]
            p = self._kv(rest, {"up", "down"}, {"mtu"})
            tun = self.dp.tunnel(name)
            mtu = self._int("mtu", p["mtu"], 68, 65535) if "mtu" in p else None
            if tun is not None:
                upd: dict[str, object] = {}
                if mtu is not None:
                    upd["mtu"] = mtu
                if "up" in p or "down" in p:
                    upd["up"] = "up" in p
                self.dp.tunnels[self.dp.tunnels.index(tun)] = tun.model_copy(update=upd)
            else:
                self.dp.commands.append(Command(argv=["ip", "link", "set", "dev", name, *rest], where=self.where))
        else:
            raise self.err(f"ip link {op!r}: only `ip link add ... type gre` and `ip link set` are accepted")

    def _validate_name(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", name):
            raise self.err(f"interface name {name!r}: 1-15 letters, digits, '_', '.', '-'")

    def _ip_tunnel(self, w: list[str]) -> None:
        if len(w) < 2 or w[0] != "add":
            raise self.err("only `ip tunnel add NAME mode gre local A remote B` is accepted")
        name = w[1]
        p = self._kv(w[2:], {"pmtudisc", "nopmtudisc"},
                     {"mode", "local", "remote", "ttl", "key", "ikey", "okey", "dev", "tos"})
        if p.get("mode") != "gre":
            raise self.err(f"tunnel mode {p.get('mode')!r}: only `mode gre` is accepted")
        p.pop("mode")
        self._validate_name(name)
        self._gre(name, p)

    def _ip_addr(self, w: list[str], fam: Family | None) -> None:
        if len(w) < 4 or w[0] not in ("add", "a", "replace") or w[2] != "dev":
            raise self.err("expected `ip addr add ADDR/LEN dev NAME`")
        try:
            addr = ipaddress.ip_interface(w[1])
        except ValueError:
            raise self.err(f"address {w[1]!r} is not ADDR/LEN") from None
        if "/" not in w[1]:
            raise self.err(f"address {w[1]!r} has no prefix length (a tunnel inner address is a /31 or /127)")
        name = w[3]
        extra = self._kv(w[4:], set(), {"peer", "label", "scope"})
        if "peer" in extra:
            raise self.err("`peer` addresses are not modelled: give the inner address with its /31 (/127)")
        tun = self.dp.tunnel(name)
        if tun is not None:
            field = "address" if addr.version == 4 else "address6"
            if getattr(tun, field) is not None:
                raise self.err(f"tunnel {name} already has an IPv{addr.version} address {getattr(tun, field)}")
            self.dp.tunnels[self.dp.tunnels.index(tun)] = tun.model_copy(update={field: addr})
        else:
            self.dp.commands.append(Command(argv=["ip", "addr", "add", str(addr), "dev", name], where=self.where))

    def _ip_route(self, w: list[str], fam: Family | None) -> None:
        if len(w) < 2 or w[0] not in ("add", "replace"):
            raise self.err("only `ip route add|replace PREFIX [via ADDR] [dev NAME] [metric N]` is accepted")
        dst = w[1]
        if dst != "default":
            try:
                ipaddress.ip_network(dst, strict=True)
            except ValueError:
                raise self.err(f"route destination {dst!r} is not a prefix") from None
        p = self._kv(w[2:], {"onlink"}, {"via", "dev", "metric", "proto", "src", "mtu", "advmss", "table"})
        argv = ["ip"] + (["-6"] if fam == 6 or ":" in dst else []) + ["route", w[0], *w[1:]]
        if "via" in p:
            try:
                ipaddress.ip_address(p["via"])
            except ValueError:
                raise self.err(f"via {p['via']!r} is not an address") from None
        self.dp.commands.append(Command(argv=argv, where=self.where))

    # -- netfilter --------------------------------------------------------------------------------
    def _cmd_nft(self, w: list[str]) -> None:
        args = w[1:]
        if not args or args[0] not in ("add", "insert", "create"):
            raise self.err("only `nft add|insert|create table|chain|rule ...` is accepted (no -f, no flush)")
        if len(args) < 2 or args[1] not in ("table", "chain", "rule"):
            raise self.err(f"nft {args[0]} {args[1] if len(args) > 1 else ''}: only table, chain and rule")
        self.dp.commands.append(Command(argv=["nft", *args], where=self.where))
        if args[1] != "rule":
            return
        text = " ".join(args)
        m = re.search(r"tcp option maxseg size set (\d+|rt mtu)", text)
        if not m:
            return
        table_fam = args[2] if args[2] in ("ip", "ip6", "inet", "bridge", "netdev", "arp") else "ip"
        if "nfproto ipv4" in text or table_fam == "ip":
            fams: list[Family] = [4]
        elif "nfproto ipv6" in text or table_fam == "ip6":
            fams = [6]
        else:
            fams = [4, 6]
        ifs = re.findall(r"[io]ifname\s+(?:\{\s*)?\"?([A-Za-z0-9_.-]+)", text)
        sets = re.search(r"[io]ifname\s+\{([^}]*)\}", text)
        if sets:
            ifs = [s.strip().strip('"') for s in sets.group(1).split(",") if s.strip()]
        value: int | Literal["pmtu"] = "pmtu" if m.group(1) == "rt mtu" else int(m.group(1))
        for fam in fams:
            self.dp.clamps.append(DeclaredClamp(family=fam, value=value, interfaces=ifs, tool="nft",
                                                where=self.where))

    def _iptables(self, w: list[str], fam: Family) -> None:
        args = w[1:]
        table = "filter"
        if "-t" in args:
            i = args.index("-t")
            table = args[i + 1] if i + 1 < len(args) else ""
        if table not in ("mangle", "filter"):
            raise self.err(f"{w[0]} -t {table!r}: only the mangle and filter tables are accepted")
        if not any(a in args for a in ("-A", "-I", "-N", "--append", "--insert", "--new-chain")):
            raise self.err(f"{w[0]}: only -A/-I/-N (append, insert, new chain) are accepted")
        self.dp.commands.append(Command(argv=w, where=self.where))
        if "TCPMSS" not in args:
            return
        if "--set-mss" in args:
            i = args.index("--set-mss")
            value: int | Literal["pmtu"] = self._int("--set-mss", args[i + 1] if i + 1 < len(args) else "", 1, 65535)
        elif "--clamp-mss-to-pmtu" in args:
            value = "pmtu"
        else:
            raise self.err("-j TCPMSS needs --set-mss N or --clamp-mss-to-pmtu")
        ifs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "-i", "--out-interface", "--in-interface")]
        self.dp.clamps.append(DeclaredClamp(family=fam, value=value, interfaces=ifs,
                                            tool="iptables" if fam == 4 else "ip6tables", where=self.where))

    def _cmd_iptables(self, w: list[str]) -> None:
        self._iptables(w, 4)

    def _cmd_ipsixtables(self, w: list[str]) -> None:
        self._iptables(w, 6)

    # -- the rest -------------------------------------------------------------------------------------
    def _cmd_sysctl(self, w: list[str]) -> None:
        args = [a for a in w[1:] if a not in ("-w", "-q")]
        if len(args) != 1 or "=" not in args[0] or not args[0].startswith("net."):
            raise self.err("only `sysctl -w net.KEY=VALUE` is accepted")
        self.dp.commands.append(Command(argv=["sysctl", "-q", "-w", args[0]], where=self.where))

    def _cmd_modprobe(self, w: list[str]) -> None:
        self.dp.notes.append(f"{self.where}: {' '.join(w)}: ignored (the lab detects GRE support itself)")


def parse_dataplane_text(text: str, path: Path | str = "<dataplane>") -> CustomerDataplane:
    """Parse the lines of a provisioning script; :class:`DataplaneSyntaxError` on anything else."""
    dp = _Parser(path).parse(text)
    for t in dp.tunnels:
        if t.address is None and t.address6 is None:
            dp.notes.append(f"{t.where}: tunnel {t.name} has no inner address (no `ip addr add ... dev {t.name}`)")
    return dp


def load_dataplane(spec: Path | DataplaneBlock) -> CustomerDataplane:
    """The declaration behind ``customer.router.dataplane`` (a file or the topology block)."""
    if isinstance(spec, DataplaneBlock):
        return spec.resolve()
    try:
        text = Path(spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataplaneSyntaxError(spec, 0, str(spec), f"cannot read file: {exc.strerror}") from None
    return parse_dataplane_text(text, spec)
