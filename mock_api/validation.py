"""Input checks the way Cloudflare's CNI service applies them, each failing with a message that names
the field and the value. All figures come from cnilab.sim.facts (ASN rules, prefix lengths, MTUs)."""

from __future__ import annotations

import ipaddress
import string
from typing import Any

from cnilab.mock_api.errors import RENAMED_FIELD, CFError, bad_request
from cnilab.sim.facts import load_facts

# RFC 791: every IPv4 host must accept 576-byte datagrams; a tunnel MTU below it breaks hosts.
MIN_MAGIC_MTU = 576
# Linux TCP_MD5SIG_MAXKEYLEN: the edge peer has to install the key in the kernel.
MAX_MD5_LEN = 80
# SDK docs (nsc_BgpControl.md5_key): printable ASCII except '"' and '?'; no tab/newline/VT/FF/CR.
MD5_ALLOWED = frozenset(c for c in string.printable if c not in '"?\t\n\x0b\x0c\r')

# The seeds' reference (seed 003) used older names; the current API answers them with a pointer.
LEGACY_FIELDS: dict[str, dict[str, str]] = {
    "cni": {
        "cf_ip": "cf_ip was renamed: use p2p_ip",
        "bgp_asn": "bgp_asn was renamed: use bgp.customer_asn",
        "bgp_password": "bgp_password was renamed: use bgp.md5_key",
        "vlan": "vlan is not part of the CNI API: the lab keeps each slot's VLAN in sim/data/facilities.yaml",
    },
    "interconnect": {
        "facility": "facility is not accepted: choose a slot (GET /slots?site=ewr01) and send slot_id",
        "name": "name is assigned by the server: create without it and use the returned name",
        "description": "description is not part of the interconnect API",
    },
    "list": {
        "page": "page was replaced by cursor: pass the integer `next` of the previous answer as cursor",
        "per_page": "per_page was replaced by limit",
    },
    "slots": {
        "facility": "facility was renamed: filter slots with site (e.g. site=ewr01) or address_contains",
        "port_type": "port_type is not part of the slot API: the lab keeps it in sim/data/facilities.yaml",
        "dataplane_version": "dataplane_version is not part of the slot API: the lab keeps it in facilities.yaml",
    },
}


def reject_legacy(kind: str, keys: Any) -> None:
    """400 naming the current field if a request uses one of the seeds' old names."""
    if not hasattr(keys, "__contains__"):
        return
    for old, message in LEGACY_FIELDS[kind].items():
        if old in keys:
            raise CFError(400, RENAMED_FIELD, message)


def check_asn(field: str, asn: int) -> None:
    bgp = load_facts().bgp
    if asn < 0 or asn > int(bgp["max_asn"]["value"]):
        raise bad_request(f"{field}: {asn} is not an AS number (0-{bgp['max_asn']['value']})")
    for lo, hi in bgp["reserved_asns"]["ranges"]:
        if lo <= asn <= hi:
            raise bad_request(f"{field}: AS{asn} is reserved ({bgp['reserved_asns']['source']}) and cannot peer")


def check_md5(field: str, key: str | None) -> None:
    if key is None:
        return
    if key == "":
        raise bad_request(f"{field}: must be non-empty when set (omit it or send null for no key)")
    bad = sorted({c for c in key if c not in MD5_ALLOWED})
    if bad:
        raise bad_request(f"{field}: character(s) {', '.join(repr(c) for c in bad)} not allowed "
                          "(printable ASCII except '\"' and '?')")
    if len(key) > MAX_MD5_LEN:
        raise bad_request(f"{field}: {len(key)} characters; the TCP-MD5 key limit is {MAX_MD5_LEN}")


def check_p2p(p2p_ip: str, cust_ip: str) -> None:
    """Both ends inside the same /31 (IPv4) or /127 (IPv6) and different, as the SDK docs require."""
    addressing = load_facts().addressing
    ends = {}
    for field, value in (("p2p_ip", p2p_ip), ("cust_ip", cust_ip)):
        try:
            ends[field] = ipaddress.ip_interface(value)
        except ValueError:
            raise bad_request(f"{field}: {value!r} is not an address with prefix length (A.B.C.D/N)") from None
        if "/" not in value:
            raise bad_request(f"{field}: {value!r} needs a prefix length, e.g. 192.0.2.10/31")
    a, b = ends["p2p_ip"], ends["cust_ip"]
    if a.version != b.version:
        raise bad_request(f"p2p_ip {p2p_ip!r} and cust_ip {cust_ip!r} are different address families")
    want = int(addressing["p2p_v4_prefixlen" if a.version == 4 else "p2p_v6_prefixlen"]["value"])
    for field, value, itf in (("p2p_ip", p2p_ip, a), ("cust_ip", cust_ip, b)):
        if itf.network.prefixlen != want:
            raise bad_request(f"{field}: {value!r} must be a /{want} point-to-point address")
    if a.network != b.network:
        raise bad_request(f"p2p_ip {p2p_ip!r} and cust_ip {cust_ip!r} are not in the same /{want}")
    if a.ip == b.ip:
        raise bad_request(f"p2p_ip and cust_ip are both {a.ip}: the two ends must differ")


def mtu_limits(dataplane: str) -> tuple[int, int]:
    """(min, max) magic.mtu on a slot of this dataplane: max is the smaller path MTU of its profile."""
    facts = load_facts()
    profile = dataplane if dataplane in facts.profiles else facts.default_profile()
    return MIN_MAGIC_MTU, min(facts.path_mtu(profile, d) for d in ("cf_to_customer", "customer_to_cf"))


def check_mtu(mtu: int, dataplane: str) -> None:
    lo, hi = mtu_limits(dataplane)
    if not lo <= mtu <= hi:
        raise bad_request(f"magic.mtu: {mtu} is outside {lo}-{hi}, the limits of dataplane {dataplane}")


def check_prefixes(prefixes: list[str]) -> None:
    for i, p in enumerate(prefixes):
        try:
            ipaddress.ip_network(p, strict=True)
        except ValueError:
            raise bad_request(f"bgp.extra_prefixes[{i}]: {p!r} is not a network prefix (A.B.C.D/N)") from None
