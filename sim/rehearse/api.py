"""A small httpx client for the CNI API, making exactly the calls an engineer makes on the day.

Plain HTTP rather than the SDK so the rehearsal shows (and its report names) the real URLs and
bodies; errors carry Cloudflare's own error message so a refusal reads as the API phrased it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx


class ApiError(RuntimeError):
    """A non-2xx answer: method, path, status and the API's error messages."""


class CniApi:
    """``/client/v4/accounts/{account}/cni/...`` plus the lab-only ``/lab/v1`` controls."""

    def __init__(self, url: str, token: str, account: str, timeout: float = 15.0) -> None:
        self.account = account
        self._http = httpx.Client(base_url=url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CniApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cni(self, path: str) -> str:
        return f"/client/v4/accounts/{self.account}/cni{path}"

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = self._http.request(method, path, **kw)
        if resp.status_code >= 400:
            try:
                errs = resp.json().get("errors") or []
                msg = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errs) or resp.text
            except ValueError:
                msg = resp.text
            raise ApiError(f"{method} {path} -> HTTP {resp.status_code}: {msg}")
        return resp

    # -- Cloudflare's API ----------------------------------------------------------------------
    def free_slots(self, site: str, speed: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"site": site, "occupied": "false"}
        if speed:
            params["speed"] = speed
        return self.request("GET", self._cni("/slots"), params=params).json()["items"]

    def create_interconnect(self, slot_id: str, speed: str) -> dict[str, Any]:
        body = {"account": self.account, "type": "direct", "slot_id": slot_id, "speed": speed}
        return self.request("POST", self._cni("/interconnects"), json=body).json()

    def status(self, icon: str) -> dict[str, Any]:
        return self.request("GET", self._cni(f"/interconnects/{icon}/status")).json()

    def loa(self, icon: str) -> httpx.Response:
        return self.request("GET", self._cni(f"/interconnects/{icon}/loa"))

    def create_cni(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", self._cni("/cnis"), json={"account": self.account, **body}).json()

    def update_cni(self, cni_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", self._cni(f"/cnis/{cni_id}"), json=body).json()

    # -- lab-only controls ----------------------------------------------------------------------
    def bind(self, icon: str, lab: str, link: str) -> dict[str, Any]:
        return self.request("POST", f"/lab/v1/interconnects/{icon}/bind", json={"lab": lab, "link": link}).json()

    def wait_state(self, icon: str, want: str, timeout: float) -> dict[str, Any]:
        """Poll ``/status`` until it reports ``want``; raises with the last answer otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(icon)
            if st.get("state") == want:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"interconnect {icon} status is {st} after {timeout:.0f}s, wanted {want}")
            time.sleep(0.25)
