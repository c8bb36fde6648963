"""802.1Q sub-interfaces, or an honest stand-in when the kernel cannot tag.

CNI v1 carries one 802.1Q tag. Where the kernel has the 8021q module the lab builds ``NAME.VID``
for real; where it does not (this machine) the addresses go on the parent and ``NAME.VID`` is
added as an *alternative name* of the parent, so ``ip``, ``tc``, ``ping -I`` and SO_BINDTODEVICE
still find the interface the plan names. The state file says which one happened, because a
rehearsal that silently drops the tag would teach the wrong thing.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

NOT_EMULATED = "not emulated: kernel has no 8021q module (addresses on the parent; NAME.VLAN is an altname)"
EMULATED = "kernel 802.1Q sub-interfaces"

_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENODEV, errno.EPROTONOSUPPORT, errno.EINVAL}


def add_vlan(ipr: Any, parent_index: int, vid: int, name: str, mtu: int) -> bool:
    """Create ``name`` as VLAN ``vid`` on ``parent_index``; False when the kernel cannot.

    ``ipr`` is an open pyroute2 IPRoute inside the node's namespace. Any other netlink error
    (a name clash, a bad MTU) is a real failure and propagates.
    """
    try:
        ipr.link("add", ifname=name, kind="vlan", link=parent_index, vlan_id=vid, mtu=mtu)
    except NetlinkError as exc:
        if exc.code in _UNSUPPORTED:
            return False
        raise
    return True


def add_altname(ipr: Any, index: int, altname: str) -> None:
    """Give the parent the sub-interface's name as an alternative, so lookups by name still work."""
    ipr.link("property_add", index=index, altname=altname)
