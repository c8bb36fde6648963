"""Every method of the official SDK's ``client.network_interconnects`` against the mock, with each
body checked against Cloudflare's reference OpenAPI schema (not against the mock's own models)."""

from __future__ import annotations

import uuid

import httpx
import pytest

cloudflare = pytest.importorskip("cloudflare", reason="official SDK (dev dependency) not installed")

from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN  # noqa: E402
from cnilab.mock_api.inventory import slots  # noqa: E402
from cnilab.mock_api.schema_check import validate  # noqa: E402

ACC = DEV_ACCOUNT


def raw(sdk, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{sdk.base_url}accounts/{ACC}/cni/{path}",
                         headers={"Authorization": f"Bearer {DEV_TOKEN}"}, **kw)


def test_every_sdk_method_round_trips(sdk):
    ni = sdk.network_interconnects
    # slots: list with every filter, get
    free10 = ni.slots.list(account_id=ACC, site="ewr01", speed="10G", occupied=False)
    assert free10.items and all(s.site == "ewr01" and s.speed == "10G" and not s.occupied for s in free10.items)
    validate("nsc_SlotList", raw(sdk, "GET", "slots", params={"site": "ewr01"}).json())
    by_addr = ni.slots.list(account_id=ACC, address_contains="hartz way")
    assert {s.facility.name for s in by_addr.items} == {"Equinix NY2"}
    slot = ni.slots.get(free10.items[0].id, account_id=ACC)
    assert slot.facility.address[0] == "275 Hartz Way"
    validate("nsc_SlotInfo", raw(sdk, "GET", f"slots/{slot.id}").json())

    # interconnects: create direct + gcp_partner, get, list (site/type/cursor/limit), status, loa
    ic = ni.interconnects.create(account_id=ACC, account=ACC, slot_id=slot.id, type="direct", speed="10G")
    assert ic.type == "direct" and ic.site == "ewr01" and ic.facility.name == "Equinix NY2"
    assert uuid.UUID(ic.virtual_port_reservation_id) and ic.ccr_device_name == "ccr01.ewr01"
    validate("nsc_Interconnect", raw(sdk, "GET", f"interconnects/{ic.name}").json())
    gcp = ni.interconnects.create(account_id=ACC, account=ACC, type="gcp_partner", bandwidth="1G",
                                  pairing_key=f"{uuid.uuid4()}/us-central1/1")
    assert gcp.type == "gcp_partner" and gcp.region == "us-central1" and gcp.speed == "1G"
    validate("nsc_Interconnect", raw(sdk, "GET", f"interconnects/{gcp.name}").json())
    assert ni.interconnects.get(ic.name, account_id=ACC).slot_id == slot.id
    assert ni.slots.get(slot.id, account_id=ACC).occupied is True
    assert ni.slots.get(slot.id, account_id=ACC).account == ACC

    page1 = ni.interconnects.list(account_id=ACC, limit=1)
    assert len(page1.items) == 1 and page1.next is not None
    page2 = ni.interconnects.list(account_id=ACC, limit=1, cursor=page1.next)
    assert [page1.items[0].name, page2.items[0].name] == [ic.name, gcp.name] and page2.next is None
    assert [i.name for i in ni.interconnects.list(account_id=ACC, site="ewr01").items] == [ic.name]
    assert [i.name for i in ni.interconnects.list(account_id=ACC, type="gcp_partner").items] == [gcp.name]
    validate("nsc_InterconnectList", raw(sdk, "GET", "interconnects").json())

    st = ni.interconnects.status(ic.name, account_id=ACC)
    assert st.state == "Pending"
    validate("nsc_StatusInfo", raw(sdk, "GET", f"interconnects/{ic.name}/status").json())

    assert ni.interconnects.loa(ic.name, account_id=ACC) is None  # the SDK discards the body ...
    pdf = ni.interconnects.with_raw_response.loa(ic.name, account_id=ACC, name="ACME Networks Ltd")
    body = pdf.http_response.content  # ... the raw response carries the PDF
    assert body.startswith(b"%PDF") and pdf.http_response.headers["content-type"] == "application/pdf"
    for text in (b"275 Hartz Way", b"Secaucus, NJ 07094", b"Equinix NY2", b"ACME Networks Ltd",
                 b"10GBASE-LR", b"single-mode", b"et-0/0/1", ic.name.encode(), b"Expires"):
        assert text in body, text

    # settings
    assert ni.settings.get(account_id=ACC).default_asn == 13335
    assert ni.settings.update(account_id=ACC, default_asn=65010).default_asn == 65010
    assert ni.settings.get(account_id=ACC).default_asn == 65010
    validate("nsc_Settings", raw(sdk, "GET", "settings").json())

    # cnis: create, get, list (slot/tunnel_id/cursor/limit), update, delete
    cni = ni.cnis.create(account_id=ACC, account=ACC, interconnect=ic.name,
                         magic={"conduit_name": "ewr-cni", "description": "primary", "mtu": 1476},
                         bgp={"customer_asn": 65010, "extra_prefixes": ["203.0.113.0/24"], "md5_key": "s3cr3t!"})
    assert cni.interconnect == ic.name and cni.bgp.customer_asn == 65010 and cni.bgp.md5_key == "s3cr3t!"
    assert cni.p2p_ip.endswith("/31") and cni.cust_ip.endswith("/31") and cni.p2p_ip != cni.cust_ip
    validate("nsc_Cni", raw(sdk, "GET", f"cnis/{cni.id}").json())
    cni2 = ni.cnis.create(account_id=ACC, account=ACC, interconnect=gcp.name,
                          magic={"conduit_name": "gcp", "description": "", "mtu": 1500})
    assert cni2.bgp is None and cni2.p2p_ip != cni.p2p_ip
    assert ni.cnis.get(cni.id, account_id=ACC).magic.mtu == 1476
    assert [c.id for c in ni.cnis.list(account_id=ACC, slot=slot.id).items] == [cni.id]
    assert [c.id for c in ni.cnis.list(account_id=ACC, tunnel_id="gcp").items] == [cni2.id]
    first = ni.cnis.list(account_id=ACC, limit=1)
    assert [c.id for c in first.items] == [cni.id]
    assert [c.id for c in ni.cnis.list(account_id=ACC, limit=1, cursor=first.next).items] == [cni2.id]
    validate("nsc_CniList", raw(sdk, "GET", "cnis").json())

    upd = ni.cnis.update(cni.id, account_id=ACC, id=cni.id, account=ACC, interconnect=ic.name,
                         p2p_ip="192.0.2.10/31", cust_ip="192.0.2.11/31", bgp_mode="dynamic_route_exchange",
                         magic={"conduit_name": "ewr-cni", "description": "primary", "mtu": 1400},
                         bgp={"customer_asn": 4200000001, "extra_prefixes": [], "md5_key": None})
    assert (upd.p2p_ip, upd.cust_ip, upd.magic.mtu, upd.bgp.customer_asn) == (
        "192.0.2.10/31", "192.0.2.11/31", 1400, 4200000001)
    validate("nsc_Cni", raw(sdk, "GET", f"cnis/{cni.id}").json())

    # delete: interconnect with CNIs refused (409), then CNI, then interconnect
    with pytest.raises(cloudflare.ConflictError):
        ni.interconnects.delete(ic.name, account_id=ACC)
    assert ni.cnis.delete(cni.id, account_id=ACC) is None
    with pytest.raises(cloudflare.NotFoundError):
        ni.cnis.get(cni.id, account_id=ACC)
    assert ni.interconnects.delete(ic.name, account_id=ACC) is None
    with pytest.raises(cloudflare.NotFoundError):
        ni.interconnects.get(ic.name, account_id=ACC)
    assert ni.slots.get(slot.id, account_id=ACC).occupied is False


def test_async_sdk_and_email_key_auth(api):
    import asyncio

    from cnilab.mock_api.config import DEV_EMAIL, DEV_KEY

    async def run() -> list[str]:
        async with cloudflare.AsyncCloudflare(api_email=DEV_EMAIL, api_key=DEV_KEY, base_url=f"{api}/client/v4",
                                              max_retries=0) as c:
            page = await c.network_interconnects.slots.list(account_id=ACC, site="sin01")
            return [s.speed for s in page.items]

    assert asyncio.run(run()) == [s.speed for s in slots() if s.site == "sin01"]


def test_openapi_served(api):
    doc = httpx.get(f"{api}/openapi.json").json()
    assert "/accounts/{account_id}/cni/interconnects/{icon}/loa" in doc["paths"]
    assert doc["servers"][0]["url"] == "/client/v4"
