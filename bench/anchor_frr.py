"""The ready-time floor: two FRRs in plain namespaces, eBGP + MD5 + BFD 300x3 over a /31 veth.

Why: ``cnilab up`` to "customer sees v4+v6 Established and BFD Up" is judged against what FRR
itself needs from a cold start to the same state with nothing of cnilab in between. The bench
builds this pair itself, in the same run as the lab, so the ratio holds on a loaded machine.
Both routers are started in parallel and load their config with ``vtysh -b`` (as cnilab does);
no route-maps, so bgpd's route-map update timer does not hold the peers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

FRR_BIN = Path("/usr/lib/frr")
DAEMONS = ("zebra", "bgpd", "bfdd")
ADDR = {"a": ("192.0.2.0", "2001:db8::"), "b": ("192.0.2.1", "2001:db8::1")}
ASN = {"a": 65001, "b": 65002}


def _conf(me: str, peer: str) -> str:
    v4, v6 = ADDR[peer]
    lines = ["frr defaults traditional", f"hostname anchor-{me}", "service integrated-vtysh-config", "!",
             "bfd", " profile p300", "  transmit-interval 300", "  receive-interval 300", "  detect-multiplier 3",
             " exit"]
    for local, remote in zip(ADDR[me], ADDR[peer], strict=True):
        lines += [f" peer {remote} local-address {local}", "  profile p300", " exit"]
    lines += ["exit", "!", f"router bgp {ASN[me]}", f" bgp router-id {ADDR[me][0]}", " no bgp default ipv4-unicast"]
    for n in (v4, v6):
        lines += [f" neighbor {n} remote-as {ASN[peer]}", f" neighbor {n} password anchor-md5",
                  f" neighbor {n} timers 3 9", f" neighbor {n} bfd profile p300"]
    lines += [" address-family ipv4 unicast", f"  neighbor {v4} activate", " exit-address-family",
              " address-family ipv6 unicast", f"  neighbor {v6} activate", " exit-address-family", "exit", "end"]
    return "\n".join(lines) + "\n"


def _ns(ns: str, argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, **kw)


@contextlib.contextmanager
def frr_pair() -> Iterator[float]:
    """Build the pair, yield the seconds from the first namespace to both sessions + BFD Up on side a."""
    tag = uuid.uuid4().hex[:6]
    ns = {s: f"anchor-{tag}-{s}" for s in ADDR}
    root = Path(tempfile.mkdtemp(prefix="cba-", dir="/tmp"))
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    try:
        for s in ADDR:
            subprocess.run(["ip", "netns", "add", ns[s]], check=True)
        subprocess.run(["ip", "link", "add", "veth-a", "netns", ns["a"], "type", "veth", "peer", "name", "veth-b",
                        "netns", ns["b"]], check=True)
        for s, (v4, v6) in ADDR.items():
            for cmd in (["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"],
                        ["sysctl", "-qw", f"net.ipv6.conf.veth-{s}.accept_dad=0"],
                        ["ip", "addr", "add", f"{v4}/31", "dev", f"veth-{s}"],
                        ["ip", "addr", "add", f"{v6}/127", "dev", f"veth-{s}", "nodad"],
                        ["ip", "link", "set", "lo", "up"], ["ip", "link", "set", f"veth-{s}", "up"]):
                _ns(ns[s], cmd, check=True)
        for s in ADDR:
            d = root / s
            d.mkdir()
            (d / "frr.conf").write_text(_conf(s, "b" if s == "a" else "a"))
            (d / "vtysh.conf").write_text("service integrated-vtysh-config\n")
            (d / "empty.conf").write_text("")
            for daemon in DAEMONS:
                argv = [str(FRR_BIN / daemon), "-u", "root", "-g", "frrvty", "--vty_socket", str(d),
                        "-z", str(d / "zserv.api"), "-i", str(d / f"{daemon}.pid"), "-f", str(d / "empty.conf"),
                        "--log", f"file:{d / (daemon + '.log')}"]
                if daemon == "bfdd":
                    argv += ["--bfdctl", str(d / "bfdd.sock")]
                procs.append(subprocess.Popen(["ip", "netns", "exec", ns[s], *argv], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        for s in ADDR:
            d = root / s
            deadline = time.monotonic() + 30
            while not all((d / f"{x}.vty").exists() for x in DAEMONS):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"anchor FRR {s} did not start")
                time.sleep(0.02)
            _ns(ns[s], ["vtysh", "--vty_socket", str(d), "--config_dir", str(d), "-b"], check=True, timeout=30)
        d = root / "a"
        deadline = time.monotonic() + 60
        while True:
            r = _ns(ns["a"], ["vtysh", "--vty_socket", str(d), "-c", "show bgp neighbors json",
                              "-c", "show bfd peers json"], timeout=30)
            try:
                dec = json.JSONDecoder()
                bgp, end = dec.raw_decode(r.stdout)
                bfd, _ = dec.raw_decode(r.stdout[end:].lstrip())
            except ValueError:
                bgp, bfd = {}, []
            est = sum(1 for v in bgp.values() if isinstance(v, dict) and v.get("bgpState") == "Established")
            up = sum(1 for b in bfd if b.get("status") == "up" and b.get("transmit-interval") == 300
                     and b.get("remote-transmit-interval") == 300)
            if os.environ.get("ANCHOR_DEBUG"):
                print(f"{time.monotonic() - t0:.2f} est={est} bfd_up={up}", flush=True)
            if est == 2 and up == 2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"anchor FRR pair not ready within 60 s: {est} sessions, {up} BFD Up")
            time.sleep(0.05)
        yield time.monotonic() - t0
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s in ADDR:
            subprocess.run(["ip", "netns", "del", ns[s]], capture_output=True)
        for pid in (p.pid for p in procs):
            for daemon in DAEMONS:
                shutil.rmtree(f"/var/tmp/frr/{daemon}.{pid}", ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with frr_pair() as t:
        print(f"anchor FRR pair ready in {t:.2f} s")
