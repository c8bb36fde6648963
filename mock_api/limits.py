"""Size limits the mock enforces, in one place (listed in mock_api/README.md and ``/openapi.json``).

Cloudflare does not publish its limits for these fields; without any, a 100 MB ``conduit_name`` was
stored and every later list returned it. The figures are generous for real use and small enough
that no request can make the server hold or serve megabytes.
"""

from __future__ import annotations

MAX_BODY_BYTES = 64 * 1024  # 413 above this, before the body is parsed
# The reference schema declares the list cursor as int32; a larger one is a 400, never an overflow.
MAX_CURSOR = 2**31 - 1
MAX_PREFIXES = 256  # bgp.extra_prefixes entries

# Longest string accepted per field (characters), by the field's dotted path in the request.
MAX_LEN: dict[str, int] = {
    "account": 32,            # account tag: 32 hex characters
    "id": 36,                 # CNI id: a UUID
    "interconnect": 64,       # server-assigned interconnect name
    "type": 32,
    "slot_id": 36,            # a UUID
    "speed": 16,
    "pairing_key": 128,
    "p2p_ip": 64,
    "cust_ip": 64,
    "magic.conduit_name": 255,
    "magic.description": 1024,
    "bgp.md5_key": 80,        # Linux TCP_MD5SIG_MAXKEYLEN
    "bgp.extra_prefixes[]": 64,
    "lab": 32,                # cnilab.sim.runtime.names rule
    "link": 64,
    "query": 256,             # every string query parameter (slot, tunnel_id, site, ...)
}
