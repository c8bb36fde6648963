"""How the API drives a running lab: edge BGP sessions from CNI objects, status from link faults.

The API must run with no lab at all (``NullBridge``), so everything lab-side is imported lazily
inside ``EdgeBridge``. The bridge is declarative: after any change it sends the edge peer the whole
set of sessions the lab should have, so a lost or repeated update cannot leave a stale session.
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path
from typing import Any, Protocol

from cnilab.mock_api.store import CniRow, InterconnectRow
from pydantic import BaseModel


class LinkObservation(BaseModel):
    """What the lab says about one interconnect's physical link (input of ``derive_status``)."""

    cross_connect: bool
    light_dbm: float | None
    swapped: bool
    link_up: bool
    source: str


class BridgeError(RuntimeError):
    """The lab could not be driven; the message says which lab and what failed."""


class LabBridge(Protocol):
    def interconnects(self, lab: str) -> list[str] | None:
        """Interconnect link names of a running lab (None: no such lab)."""
        ...

    def observe(self, lab: str, link: str) -> LinkObservation | None:
        """Physical state of lab interconnect ``link`` (None: no such lab/link)."""
        ...

    def plan_addresses(self, lab: str, link: str, family: int = 4) -> tuple[str, str] | None:
        """(Cloudflare end, customer end) of the lab link, so a CNI's /31 matches the wiring."""
        ...

    def sync(self, lab: str, bound: list[InterconnectRow], cnis: list[CniRow]) -> list[dict[str, Any]]:
        """Make the lab's edge peer hold exactly the sessions these CNIs describe; returns them."""
        ...


class NullBridge:
    """No lab: status comes only from the /lab/v1 controls, and CNIs configure nothing."""

    def interconnects(self, lab: str) -> list[str] | None:
        return None

    def observe(self, lab: str, link: str) -> LinkObservation | None:
        return None

    def plan_addresses(self, lab: str, link: str, family: int = 4) -> tuple[str, str] | None:
        return None

    def sync(self, lab: str, bound: list[InterconnectRow], cnis: list[CniRow]) -> list[dict[str, Any]]:
        return []


class EdgeBridge:
    """Talks to the edge driver of running labs (``cnilab.sim.edge.control``) and reads their state files."""

    def _state(self, lab: str) -> Any:
        from cnilab.sim.state import LabNotFound, LabState

        with contextlib.suppress(LabNotFound, ValueError):
            lab_home(lab)
            return LabState.load(lab)
        return None

    def interconnects(self, lab: str) -> list[str] | None:
        """Raises ValueError for a name that breaks the lab-name rule or leads out of the state root."""
        from cnilab.sim.runtime.names import validate_lab_name
        from cnilab.sim.state import LabNotFound, LabState

        lab_home(validate_lab_name(lab, where="lab"))
        try:
            st = LabState.load(lab)
        except LabNotFound:
            return None
        return sorted({lk.interconnect for lk in st.plan.links if lk.interconnect})

    def observe(self, lab: str, link: str) -> LinkObservation | None:
        from cnilab.sim.facts import load_facts
        from cnilab.sim.faults.kinds import fault_kind, parse_fault

        st = self._state(lab)
        if st is None:
            return None
        names = {link} | {lk.name for lk in st.plan.links if lk.interconnect == link}
        if not names & ({lk.name for lk in st.plan.links} | {lk.interconnect for lk in st.plan.links}):
            return None
        seen: dict[str, Any] = {"light_dbm": float(load_facts().optics["nominal_rx_dbm"]), "swapped": False,
                                "link_up": True}
        for f in st.faults:
            if f.target in names:  # each kind says what the API's lifecycle shows (cnilab.sim.faults.kinds)
                seen.update(fault_kind(f.kind).api_link(parse_fault(f.kind, f.value)))
        return LinkObservation(cross_connect=st.status == "running", **seen, source=f"lab {lab} state file")

    def plan_addresses(self, lab: str, link: str, family: int = 4) -> tuple[str, str] | None:
        st = self._state(lab)
        if st is None:
            return None
        plen = 31 if family == 4 else 127
        for s in st.plan.sessions_for(link):
            if s.family == family:
                return f"{s.cf_addr}/{plen}", f"{s.cust_addr}/{plen}"
        return None

    def sessions(self, lab: str, bound: list[InterconnectRow], cnis: list[CniRow]) -> list[dict[str, Any]]:
        """The session set: plan sessions of links the API does not manage, CNI-derived ones otherwise."""
        st = self._state(lab)
        if st is None:
            raise BridgeError(f"lab {lab!r} is not running (no state file); bind to a running lab")
        managed = {ic.lab_link: ic.name for ic in bound if ic.lab_link}
        out = [s.model_dump(mode="json") for s in st.plan.sessions if s.interconnect not in managed]
        by_icon = {ic.name: ic for ic in bound}
        for cni in cnis:
            ic = by_icon.get(cni.interconnect)
            if ic is None or not ic.lab_link or cni.bgp is None:
                continue
            cf = ipaddress.ip_interface(cni.p2p_ip)
            templates = [s for s in st.plan.sessions_for(ic.lab_link)]
            tpl = next((s for s in templates if s.family == cf.version), templates[0] if templates else None)
            if tpl is None:
                raise BridgeError(f"lab {lab!r} has no BGP session template for interconnect {ic.lab_link!r}")
            sess = tpl.model_dump(mode="json")
            sess.update(family=cf.version, cf_addr=str(cf.ip), cust_addr=str(ipaddress.ip_interface(cni.cust_ip).ip),
                        cust_asn=int(cni.bgp["customer_asn"]), md5=cni.bgp.get("md5_key"),
                        customer_md5=cni.bgp.get("md5_key"))
            out.append(sess)
        from cnilab.sim.topology.plan import Session

        keys: dict[str, int] = {}
        for sess in out:
            try:
                key = Session.model_validate(sess).key
            except ValueError as exc:
                raise BridgeError(f"lab {lab!r}: the edge cannot take this session: {exc}") from None
            keys[key] = keys.get(key, 0) + 1
            if keys[key] > 1:
                raise BridgeError(f"lab {lab!r}: interconnect link {key} already has a CNI session of that family")
        return out

    def sync(self, lab: str, bound: list[InterconnectRow], cnis: list[CniRow]) -> list[dict[str, Any]]:
        sessions = self.sessions(lab, bound, cnis)
        st = self._state(lab)
        path = st.control.get("edge") if st else None
        if not path:
            raise BridgeError(f"lab {lab!r} has no edge control socket (state.control['edge'] is missing)")
        path = confined_socket(lab, path)
        from cnilab.sim.edge.control import ControlError, EdgeClient

        try:
            EdgeClient(path).configure(sessions=sessions)
        except ControlError as exc:  # driver down or refused
            raise BridgeError(f"edge driver: {exc}") from None
        return sessions


class LabOutsideRoot(ValueError):
    """A lab's state directory resolves (through a symlink) outside the state root."""


def lab_home(lab: str) -> Path:
    """The lab's state directory, resolved: the name follows the project's rule (``BadLabName``
    otherwise) and the directory may not lead out of the state root through a symlink."""
    from cnilab.sim.runtime.paths import lab_dir, state_root

    home = lab_dir(lab).resolve()
    if not home.is_relative_to(state_root().resolve()):
        raise LabOutsideRoot(f"lab {lab!r}: its state directory resolves to {home}, outside the state root "
                             f"{state_root()}")
    return home


def confined_socket(lab: str, path: str) -> str:
    """``path`` resolved, if it lies inside a directory that belongs to ``lab``; else BridgeError.

    The state file is plain JSON on disk: without this, a crafted ``control.edge`` would make the
    API connect to any unix socket on the machine (a container engine's, say) and write to it.
    A lab's directories are its state directory and, for a containerlab deployment, the control
    directory cnilab's export binds into the edge container; both are derived from the (validated)
    name, never from the state file.
    """
    from cnilab.sim.export.containerlab import CONTROL_ROOT

    try:
        homes = [lab_home(lab), (Path(CONTROL_ROOT) / lab).resolve()]
    except ValueError as exc:
        raise BridgeError(str(exc)) from None
    real = Path(path).resolve()
    if not any(real.is_relative_to(h) for h in homes):
        raise BridgeError(f"lab {lab!r}: edge control socket {path!r} is outside the lab's directory "
                          f"({' or '.join(map(str, homes))}); refusing to connect")
    return str(real)

