"""The API cannot be walked out of: lab names follow the one project rule, state paths stay in the
state root, the edge control socket must live in the lab's directory, and the server refuses to
publish its well-known development credentials beyond loopback."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from cnilab.mock_api.config import SettingsError, load_settings
from cnilab.mock_api.lab_bridge import EdgeBridge
from cnilab.mock_api.schema_check import validate_error
from typer.testing import CliRunner

from tests.api import api_client, new_interconnect

TOPOLOGY = Path(__file__).parent.parent / "topologies" / "v1-gre.yml"


@pytest.fixture
def short_state(tmp_path_factory, monkeypatch):
    """A directory holding the state root (``<it>/state``) and what a test puts just outside that root.
    The tests write bare state files on purpose (no lab behind them): nothing to tear down."""
    root = tmp_path_factory.mktemp("conf")
    monkeypatch.setenv("CNILAB_STATE_DIR", str(root / "state"))
    return root


def _write_state(lab: str, control: dict[str, str]) -> None:
    from cnilab.sim.state import LabState
    from cnilab.sim.topology.load import load_topology
    from cnilab.sim.topology.plan import build_plan

    LabState(lab=lab, plan=build_plan(load_topology(TOPOLOGY), lab), status="running", control=control).save()


class _Listener:
    """A unix socket that records whether anyone connected (the API must not)."""

    def __init__(self, path: Path) -> None:
        self.connected = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connected.set()
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def _bind(c: httpx.Client, name: str, lab: str) -> httpx.Response:
    return c.post(f"/lab/v1/interconnects/{name}/bind", json={"lab": lab, "link": "ewr1"})


@pytest.mark.parametrize("lab", ["../outside", "/etc", "a/../../b", "..", "UPPER", "x" * 33, "-x", "a b", ""])
def test_bind_refuses_names_outside_the_rule(tmp_path, short_state, lab):
    # a real state file just outside the root: reachable by '..' if names were joined unchecked
    outside = short_state / "outside"
    outside.mkdir()
    (outside / "state.json").write_text("{}")
    with api_client(tmp_path / "api.sqlite3") as c:
        name = new_interconnect(c)
        r = _bind(c, name, lab)
        assert r.status_code == 400, r.text
        validate_error(r.json())
        msg = r.json()["errors"][0]["message"]
        assert "lab" in msg and ("not a valid lab name" in msg or "required" in msg or "characters" in msg), msg
        assert c.get(f"/lab/v1/interconnects/{name}").json()["lab_link"] is None


def test_lab_directory_symlinked_out_of_the_root_is_refused(tmp_path, short_state):
    from cnilab.sim.runtime.paths import lab_dir

    lab = f"t-{uuid.uuid4().hex[:6]}"
    _write_state(lab, {})
    outside = short_state / "elsewhere"
    lab_dir(lab).rename(outside)
    lab_dir(lab).symlink_to(outside, target_is_directory=True)  # a valid name, a directory outside the root
    with api_client(tmp_path / "api.sqlite3") as c:
        name = new_interconnect(c)
        r = _bind(c, name, lab)
        assert r.status_code == 400, r.text
        validate_error(r.json())
        assert "outside the state root" in r.json()["errors"][0]["message"]
        assert c.get(f"/lab/v1/interconnects/{name}").json()["lab_link"] is None


def test_missing_and_invalid_labs_answer_alike(tmp_path, short_state):
    """No 500-vs-400 oracle: a name outside the rule and a lab that does not exist are both 400."""
    with api_client(tmp_path / "api.sqlite3") as c:
        name = new_interconnect(c)
        assert {_bind(c, name, lab).status_code for lab in ("no-such-lab", "../outside")} == {400}


@pytest.mark.parametrize("where", ["outside", "symlink"])
def test_state_file_cannot_point_the_api_at_another_socket(tmp_path, short_state, where):
    from cnilab.sim.runtime.paths import lab_dir

    lab = f"t-{uuid.uuid4().hex[:6]}"
    victim = _Listener(short_state / "victim.sock")
    try:
        if where == "outside":
            target = str(short_state / "victim.sock")
        else:  # a path inside the lab directory that is a symlink to the outside socket
            (lab_dir(lab) / "nodes" / "cf").mkdir(parents=True)
            link = lab_dir(lab) / "nodes" / "cf" / "control.sock"
            link.symlink_to(short_state / "victim.sock")
            target = str(link)
        _write_state(lab, {"edge": target})
        with api_client(tmp_path / "api.sqlite3", EdgeBridge(), lab=lab) as c:
            name = new_interconnect(c)
            r = _bind(c, name, lab)
            assert r.status_code == 502, r.text
            validate_error(r.json())
            assert "outside the lab's directory" in r.json()["errors"][0]["message"]
            assert c.get(f"/lab/v1/interconnects/{name}").json()["lab_link"] is None  # nothing applied
        assert not victim.connected.is_set(), "the API connected to a socket outside the lab"
    finally:
        victim.close()


def test_settings_lab_name_follows_the_rule(tmp_path):
    with pytest.raises(SettingsError, match="not a valid lab name"):
        load_settings(db=tmp_path / "x.sqlite3", lab="../../etc")
    cfg = tmp_path / "api.json"
    cfg.write_text(json.dumps({"lab": "/abs"}))
    with pytest.raises(SettingsError, match=str(cfg)):
        load_settings(cfg)


# -- exposure ---------------------------------------------------------------------------------------
def test_exposure_rule():
    from cnilab.sim.cli.api import exposure_problem

    assert exposure_problem("127.0.0.1", True, False) is None
    assert exposure_problem("::1", True, False) is None
    assert exposure_problem("localhost", True, False) is None
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        assert "development credentials" in exposure_problem(host, True, False)
        assert exposure_problem(host, True, True) is None  # explicit opt-in
        assert exposure_problem(host, False, False) is None  # configured credentials


def test_cli_refuses_public_bind_with_dev_credentials(tmp_path):
    from cnilab.sim.cli.main import app

    r = CliRunner().invoke(app, ["api", "--host", "0.0.0.0", "--port", "1", "--db", str(tmp_path / "a.sqlite3")])
    assert r.exit_code == 2, r.output
    assert "refusing to serve on '0.0.0.0'" in r.output and "--insecure-dev-credentials" in r.output
    assert not (tmp_path / "a.sqlite3").exists()  # refused before anything was created
