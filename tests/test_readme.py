"""README examples are copies of real output: rendered here from the code that prints them (and,
where only a running lab can say it, from a real lab) and compared line by line."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block(tag: str) -> list[str]:
    """Lines of the fenced block that follows ``<!-- readme-example: TAG ... -->``."""
    m = re.search(r"<!-- readme-example: " + re.escape(tag) + r"\b[^>]*-->\s*```[a-z]*\n(.*?)```", README, re.S)
    assert m, f"README has no example block tagged {tag}"
    return m.group(1).rstrip("\n").split("\n")


def _inline(tag: str) -> str:
    m = re.search(r"<!-- readme-example: " + re.escape(tag) + r" -->(.*?)<!-- /readme-example -->", README, re.S)
    assert m, f"README has no inline example tagged {tag}"
    return " ".join(m.group(1).split())


def _plan():
    from cnilab.sim.topology import build_plan, load_topology

    return build_plan(load_topology(ROOT / "topologies" / "v1-gre.yml"), "readme")


def _bgp_line(key: str, text: str) -> str:
    """How `cnilab bgp` prints a problem under its table (sim/cli/bgp.py)."""
    return f"  {key}: {text}"


def test_bgp_diagnostics_are_what_the_code_prints():
    from cnilab.sim.bgp.policy import evaluate
    from cnilab.sim.edge.notifications import explain_notification

    plan = _plan()
    v4 = next(s for s in plan.sessions if s.key == "ewr1/v4")
    allow = [str(p) for p in plan.customer_prefixes]
    lines = _block("bgp-diagnostics")
    assert lines[0].startswith(_bgp_line("ewr1/v4", f"no TCP session with {v4.cust_addr}: the kernel dropped"))
    assert lines[1] == _bgp_line("ewr1/v4", explain_notification("sent", 2, 2, v4, open_asn=65011))
    assert lines[2] == _bgp_line("ewr1/v4", "rejected " + evaluate("198.51.100.128/25", allow).reason)
    assert lines[3] == _bgp_line("ewr1/v4", "rejected " + evaluate("203.0.113.0/24", allow).reason)


def test_bad_topology_errors_are_what_validate_prints(tmp_path):
    from cnilab.sim.cli.main import app
    from typer.testing import CliRunner

    v1 = yaml.safe_load((ROOT / "topologies" / "v1-gre.yml").read_text())
    slash30 = yaml.safe_load(yaml.safe_dump(v1))
    slash30["interconnects"][0]["ipv4"]["cloudflare"] = "192.0.2.10/30"
    vlan_v2 = yaml.safe_load(yaml.safe_dump(v1))
    vlan_v2["interconnects"][0].update(dataplane="v2", bfd={"enabled": False})
    got = []
    for doc in (slash30, vlan_v2):
        (tmp_path / "bad.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        res = CliRunner().invoke(app, ["validate", str(tmp_path / "bad.yml")], env={"COLUMNS": "400"})
        assert res.exit_code == 2
        got.append(" ".join(res.output.split()).replace(str(tmp_path) + "/", ""))
    assert got == _block("bad-topology")


def test_mss_fix_kinds_are_the_ones_the_probe_prints():
    from cnilab.sim.probes.mss import fix_lines

    names = {"nftables": "nftables", "iptables": "iptables", "ip6tables": "ip6tables", "cisco": "Cisco",
             "junos": "Junos"}
    kinds = [names.get(k, k) for k in fix_lines(1436)]
    assert _inline("mss-fix-kinds") == ", ".join(kinds[:-1]) + " and " + kinds[-1]


@pytest.mark.root
@pytest.mark.daemons
@pytest.mark.slow
def test_wrong_md5_line_and_exec_example_on_a_real_lab(tmp_path):
    """The MD5 line is only known to a running lab: bring one up with a wrong key and compare."""
    topo = yaml.safe_load((ROOT / "topologies" / "v1-gre.yml").read_text())
    topo["interconnects"][0]["bgp"]["customer_md5"] = "wrong-key"
    f = tmp_path / "v1-md5.yml"
    f.write_text(yaml.safe_dump(topo))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CNILAB_STATE_DIR": str(tmp_path / "s"), "COLUMNS": "400"}
    name = f"rd-{os.getpid() % 100000}"

    def cnilab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cnilab.sim.cli.main", *args], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=180)

    assert cnilab("up", str(f), "--name", name, "--timeout", "5").returncode in (0, 1)
    try:
        want = _block("bgp-diagnostics")[0]
        got = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = cnilab("bgp", "--lab", name).stdout
            got = next((ln for ln in out.splitlines() if ln.startswith("  ewr1/v4: no TCP session")), "")
            if got:
                break
            time.sleep(1)
        normal = (lambda s: re.sub(r"\(TCPMD5\w+\+\d+(, TCPMD5\w+\+\d+)*\)", "(COUNTERS)", s))  # noqa: E731
        assert normal(got) == normal(want), (got, want)
        assert re.search(r"│ ewr1/v4 .*│ Idle ", out), out  # the table says Idle, as the README does
        # The exec line of the README, with --lab before the node (options end at the node).
        line = next(ln for ln in README.splitlines() if ln.startswith("cnilab exec "))
        argv = [name if a == "NAME" else a for a in shlex.split(line.split("#")[0])[2:]]
        r = cnilab("exec", *argv)
        assert r.returncode == 0 and "BGP" in r.stdout, (argv, r.stdout, r.stderr)
    finally:
        assert cnilab("down", "--lab", name).returncode == 0
