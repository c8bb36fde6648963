"""State survives a restart; concurrent creates of one slot give exactly one success."""

from __future__ import annotations

import concurrent.futures as cf

import httpx
from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings
from cnilab.mock_api.inventory import slots
from cnilab.mock_api.testing import serve

H = {"Authorization": f"Bearer {DEV_TOKEN}"}
BASE = f"/client/v4/accounts/{DEV_ACCOUNT}/cni"


def test_state_survives_restart(tmp_path):
    db = tmp_path / "persist.sqlite3"
    slot = slots()[1]
    with serve(load_settings(db=db)) as u:
        ic = httpx.post(u + BASE + "/interconnects", headers=H,
                        json={"account": DEV_ACCOUNT, "type": "direct", "slot_id": slot.id}).json()
        cni = httpx.post(u + BASE + "/cnis", headers=H, json={
            "account": DEV_ACCOUNT, "interconnect": ic["name"],
            "magic": {"conduit_name": "c", "description": "d", "mtu": 1400},
            "bgp": {"customer_asn": 65001, "extra_prefixes": ["198.51.100.0/24"], "md5_key": "k"}}).json()
        assert httpx.put(u + BASE + "/settings", headers=H, json={"default_asn": 65123}).status_code == 200
        xc = httpx.post(u + f"/lab/v1/interconnects/{ic['name']}/cross-connect", headers=H, json={})
        assert xc.status_code == 200
    with serve(load_settings(db=db)) as u:
        assert httpx.get(u + BASE + f"/interconnects/{ic['name']}", headers=H).json() == ic
        assert httpx.get(u + BASE + f"/cnis/{cni['id']}", headers=H).json() == cni
        assert httpx.get(u + BASE + "/settings", headers=H).json() == {"default_asn": 65123}
        assert httpx.get(u + BASE + f"/slots/{slot.id}", headers=H).json()["occupied"] is True
        assert httpx.get(u + BASE + f"/interconnects/{ic['name']}/status", headers=H).json() == {"state": "Healthy"}


def test_concurrent_creates_of_one_slot(tmp_path):
    slot = slots()[2]
    body = {"account": DEV_ACCOUNT, "type": "direct", "slot_id": slot.id}
    with serve(load_settings(db=tmp_path / "race.sqlite3")) as u, httpx.Client(base_url=u, headers=H) as c:
        with cf.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: c.post(BASE + "/interconnects", json=body), range(16)))
        codes = sorted(r.status_code for r in results)
        assert codes == [200] + [409] * 15, codes
        assert len(c.get(BASE + "/interconnects").json()["items"]) == 1
        # concurrent CNI creates never share a /31
        ic = next(r.json() for r in results if r.status_code == 200)
        cni = {"account": DEV_ACCOUNT, "interconnect": ic["name"],
               "magic": {"conduit_name": "c", "description": "", "mtu": 1400}}
        with cf.ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda _: c.post(BASE + "/cnis", json=cni), range(20)))
        assert all(r.status_code == 200 for r in made)
        assert len({r.json()["p2p_ip"] for r in made}) == 20


def test_lists_are_never_stale(tmp_path):
    """List bodies are cached between writes; every change shows at once, made through the API or
    committed to the database by another process (a seeding script)."""
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "cache.sqlite3"
    def occupied(c) -> bool:
        return next(s["occupied"] for s in c.get("/slots").json()["items"] if s["id"] == slots()[3].id)

    with serve(load_settings(db=db)) as u, httpx.Client(base_url=u + BASE, headers=H) as c:
        assert occupied(c) is False
        ic = c.post("/interconnects", json={"account": DEV_ACCOUNT, "type": "direct", "slot_id": slots()[3].id}).json()
        assert occupied(c) is True
        body = {"account": DEV_ACCOUNT, "interconnect": ic["name"],
                "magic": {"conduit_name": "c0", "description": "", "mtu": 1400}}
        cni = c.post("/cnis", json=body).json()
        assert [x["magic"]["conduit_name"] for x in c.get("/cnis").json()["items"]] == ["c0"]
        assert c.get("/cnis").json() == c.get("/cnis").json()  # cached: same answer
        c.put(f"/cnis/{cni['id']}", json={**cni, "magic": {**cni["magic"], "conduit_name": "c1"}})
        assert [x["magic"]["conduit_name"] for x in c.get("/cnis").json()["items"]] == ["c1"]
        # another process commits straight to the file
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                        "c.execute(\"UPDATE cnis SET conduit_name='c2'\"); c.commit()", str(db)], check=True)
        assert [x["magic"]["conduit_name"] for x in c.get("/cnis").json()["items"]] == ["c2"]
        assert c.delete(f"/cnis/{cni['id']}").status_code == 200
        assert c.get("/cnis").json()["items"] == []
        assert [x["name"] for x in c.get("/interconnects").json()["items"]] == [ic["name"]]
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM interconnects")
        assert c.get("/interconnects").json()["items"] == []
        assert occupied(c) is False
