"""The repository behind the routers: SQLite, one file, safe under concurrent requests.

Why SQLite and these constraints: state must survive a restart, and two clients racing for the
same slot must see exactly one success. ``slot_id`` is UNIQUE, writes run in ``BEGIN IMMEDIATE``
transactions (one writer at a time, readers unaffected under WAL) and foreign keys refuse to drop
an interconnect that still hosts CNIs. Each thread keeps its own connection (sqlite3 connections
are not shareable across threads); the store object owns them and closes them all in ``close()``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnilab.sim.facts import load_facts
from pydantic import BaseModel, Field

SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS interconnects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  account TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('direct', 'gcp_partner')),
  slot_id TEXT UNIQUE,
  speed TEXT,
  region TEXT,
  pairing_key TEXT,
  owner TEXT,
  vpr_id TEXT NOT NULL,
  created REAL NOT NULL,
  cross_connect INTEGER NOT NULL DEFAULT 0,
  light_dbm REAL,
  swapped INTEGER NOT NULL DEFAULT 0,
  link_up INTEGER NOT NULL DEFAULT 1,
  lab TEXT,
  lab_link TEXT
);
CREATE INDEX IF NOT EXISTS interconnects_account ON interconnects(account, seq);
CREATE TABLE IF NOT EXISTS cnis (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  account TEXT NOT NULL,
  interconnect TEXT NOT NULL REFERENCES interconnects(name) ON DELETE RESTRICT,
  p2p_ip TEXT NOT NULL,
  cust_ip TEXT NOT NULL,
  conduit_name TEXT NOT NULL,
  description TEXT NOT NULL,
  mtu INTEGER NOT NULL,
  bgp TEXT,
  bgp_mode TEXT,
  tunnel_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cnis_account ON cnis(account, seq);
CREATE INDEX IF NOT EXISTS cnis_interconnect ON cnis(interconnect);
CREATE TABLE IF NOT EXISTS settings (
  account TEXT PRIMARY KEY,
  default_asn INTEGER NOT NULL
);
"""


class SlotTaken(Exception):
    """The slot already has an interconnect (UNIQUE constraint)."""


class InterconnectGone(Exception):
    """The interconnect a CNI is created on no longer exists (checked inside the write)."""


class P2pTaken(Exception):
    """Another CNI already uses this point-to-point network."""

    def __init__(self, network: str, cni: str) -> None:
        super().__init__(network, cni)
        self.network = network
        self.cni = cni


class HasCnis(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class InterconnectRow(BaseModel):
    seq: int = 0
    name: str
    account: str
    type: str
    slot_id: str | None = None
    speed: str | None = None
    region: str | None = None
    pairing_key: str | None = None
    owner: str | None = None
    vpr_id: str
    created: float = 0.0
    cross_connect: bool = False
    light_dbm: float | None = Field(default_factory=lambda: float(load_facts().optics["nominal_rx_dbm"]))
    swapped: bool = False
    link_up: bool = True
    lab: str | None = None
    lab_link: str | None = None


class CniRow(BaseModel):
    seq: int = 0
    id: str
    account: str
    interconnect: str
    p2p_ip: str
    cust_ip: str
    conduit_name: str
    description: str
    mtu: int
    bgp: dict[str, Any] | None = None
    bgp_mode: str | None = None
    tunnel_id: str


_IC_COLS = [f for f in InterconnectRow.model_fields]
_CNI_COLS = [f for f in CniRow.model_fields]


# Rows were validated on the way in; reading them back builds the models without re-validating
# (that cost ~0.45 ms per 100-item page, issue 16). SQLite stores booleans as 0/1: convert those.
_IC_BOOLS = ("cross_connect", "swapped", "link_up")


def interconnect_from_row(row: sqlite3.Row) -> InterconnectRow:
    d = dict(row)
    for k in _IC_BOOLS:
        d[k] = bool(d[k])
    return InterconnectRow.model_construct(**d)


def cni_from_row(row: sqlite3.Row) -> CniRow:
    d = dict(row)
    d["bgp"] = json.loads(d["bgp"]) if d["bgp"] else None
    return CniRow.model_construct(**d)


def _network(p2p: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_interface(p2p).network


def _used_networks(c: sqlite3.Connection, except_id: str | None = None) -> dict[Any, str]:
    """Point-to-point networks in use -> the CNI using each (compared as networks, not strings)."""
    return {_network(r[0]): r[1] for r in c.execute("SELECT p2p_ip, id FROM cnis") if r[1] != except_id}


class Page(BaseModel):
    """One page of a list: the stored rows as read (``sqlite3.Row``) and the cursor of the next page.

    Rows stay raw so the routers can serve each one's body from a cache keyed by the row itself,
    which made the 100-item list ~3x faster (issue 16); ``*_from_row`` turn them into models.
    """

    items: list[Any]
    next: int | None


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path == ":memory:":
            raise ValueError("db: ':memory:' is not supported (each thread would see its own empty database)")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writes = 0
        with self._conn_ctx() as c:
            c.executescript(SCHEMA)

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _conn_ctx(self) -> Iterator[sqlite3.Connection]:
        yield self._conn()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction; rolled back on any exception."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._writes += 1

    def version(self) -> tuple[int, int, int]:
        """Changes whenever the data this thread reads may have changed.

        ``PRAGMA data_version`` moves when any *other* connection (another thread's, or another
        process such as a seeding script) commits; ``_writes`` covers this store's own commits.
        The numbering is per connection, so the connection is part of the value.
        """
        conn = self._conn()
        return id(conn), conn.execute("PRAGMA data_version").fetchone()[0], self._writes

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._all.clear()

    # -- pagination --------------------------------------------------------------------------
    @staticmethod
    def _page(rows: list[Any], limit: int) -> Page:
        more = len(rows) > limit
        rows = rows[:limit]
        return Page.model_construct(items=rows, next=rows[-1]["seq"] if more and rows else None)

    # -- interconnects -----------------------------------------------------------------------
    def create_interconnect(self, row: InterconnectRow) -> InterconnectRow:
        row = row.model_copy(update={"created": time.time()})
        cols = [c for c in _IC_COLS if c != "seq"]
        try:
            with self._write() as c:
                cur = c.execute(f"INSERT INTO interconnects ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                                [getattr(row, k) for k in cols])
        except sqlite3.IntegrityError as exc:
            if "slot_id" in str(exc):
                raise SlotTaken(row.slot_id) from None
            raise
        return row.model_copy(update={"seq": cur.lastrowid})

    def interconnect_row(self, account: str, name: str) -> sqlite3.Row | None:
        """The stored row as read (for the body cache); ``get_interconnect`` for the model."""
        return self._conn().execute("SELECT * FROM interconnects WHERE account=? AND name=?",
                                    (account, name)).fetchone()

    def get_interconnect(self, account: str, name: str) -> InterconnectRow | None:
        r = self.interconnect_row(account, name)
        return interconnect_from_row(r) if r else None

    def list_interconnects(self, account: str, site_slots: list[str] | None, type_: str | None,
                           cursor: int, limit: int) -> Page:
        q, args = "SELECT * FROM interconnects WHERE account=? AND seq>?", [account, cursor]
        if type_ is not None:
            q += " AND type=?"
            args.append(type_)
        if site_slots is not None:
            q += f" AND slot_id IN ({','.join('?' * len(site_slots))})"
            args += site_slots
        rows = self._conn().execute(q + " ORDER BY seq LIMIT ?", [*args, limit + 1]).fetchall()
        return self._page(rows, limit)

    def delete_interconnect(self, account: str, name: str) -> bool:
        with self._write() as c:
            n = c.execute("SELECT COUNT(*) FROM cnis WHERE interconnect=?", (name,)).fetchone()[0]
            if n:
                raise HasCnis(n)
            return c.execute("DELETE FROM interconnects WHERE account=? AND name=?", (account, name)).rowcount > 0

    def update_interconnect(self, name: str, **fields: Any) -> InterconnectRow | None:
        bad = set(fields) - set(_IC_COLS)
        if bad:
            raise KeyError(f"unknown interconnect column(s): {sorted(bad)}")
        with self._write() as c:
            c.execute(f"UPDATE interconnects SET {','.join(f'{k}=?' for k in fields)} WHERE name=?",
                      [*fields.values(), name])
            r = c.execute("SELECT * FROM interconnects WHERE name=?", (name,)).fetchone()
        return interconnect_from_row(r) if r else None

    def interconnect_by_name(self, name: str) -> InterconnectRow | None:
        r = self._conn().execute("SELECT * FROM interconnects WHERE name=?", (name,)).fetchone()
        return interconnect_from_row(r) if r else None

    def occupied_slots(self) -> dict[str, str]:
        rows = self._conn().execute("SELECT slot_id, account FROM interconnects WHERE slot_id IS NOT NULL")
        return {r["slot_id"]: r["account"] for r in rows}

    def interconnects_in_lab(self, lab: str) -> list[InterconnectRow]:
        rows = self._conn().execute("SELECT * FROM interconnects WHERE lab=? ORDER BY seq", (lab,))
        return [interconnect_from_row(r) for r in rows]

    # -- cnis --------------------------------------------------------------------------------
    def create_cni(self, row: CniRow, pool: str, preferred: tuple[str, str] | None = None) -> CniRow:
        """Insert a CNI, allocating its /31 inside the same transaction so two creates never share one.

        The interconnect is looked up inside the transaction too: a delete racing this create makes
        it ``InterconnectGone`` (a 404), never a foreign-key error.
        """
        cols = [c for c in _CNI_COLS if c != "seq"]
        with self._write() as c:
            if c.execute("SELECT 1 FROM interconnects WHERE account=? AND name=?",
                         (row.account, row.interconnect)).fetchone() is None:
                raise InterconnectGone(row.interconnect)
            used = _used_networks(c)
            if preferred and _network(preferred[0]) not in used:
                p2p, cust = preferred
            else:
                p2p, cust = _allocate(pool, used)
            row = row.model_copy(update={"p2p_ip": p2p, "cust_ip": cust})
            vals = [json.dumps(row.bgp) if k == "bgp" and row.bgp is not None else getattr(row, k) for k in cols]
            cur = c.execute(f"INSERT INTO cnis ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", vals)
        return row.model_copy(update={"seq": cur.lastrowid})

    def cni_row(self, account: str, cni_id: str) -> sqlite3.Row | None:
        """The stored row as read (for the body cache); ``get_cni`` for the model."""
        return self._conn().execute("SELECT * FROM cnis WHERE account=? AND id=?", (account, cni_id)).fetchone()

    def get_cni(self, account: str, cni_id: str) -> CniRow | None:
        r = self.cni_row(account, cni_id)
        return cni_from_row(r) if r else None

    def list_cnis(self, account: str, slot: str | None, tunnel_id: str | None, cursor: int, limit: int) -> Page:
        q = "SELECT cnis.* FROM cnis"
        args: list[Any] = []
        if slot is not None:
            q += " JOIN interconnects i ON i.name = cnis.interconnect AND i.slot_id=?"
            args.append(slot)
        q += " WHERE cnis.account=? AND cnis.seq>?"
        args += [account, cursor]
        if tunnel_id is not None:
            q += " AND (cnis.tunnel_id=? OR cnis.conduit_name=?)"
            args += [tunnel_id, tunnel_id]
        rows = self._conn().execute(q + " ORDER BY cnis.seq LIMIT ?", [*args, limit + 1]).fetchall()
        return self._page(rows, limit)

    def update_cni(self, row: CniRow) -> CniRow | None:
        """Save a changed CNI; ``P2pTaken`` if its /31 is another CNI's (checked inside the write)."""
        fields = ["p2p_ip", "cust_ip", "conduit_name", "description", "mtu", "bgp", "bgp_mode"]
        vals = [json.dumps(row.bgp) if k == "bgp" and row.bgp is not None else getattr(row, k) for k in fields]
        with self._write() as c:
            other = _used_networks(c, except_id=row.id).get(_network(row.p2p_ip))
            if other is not None:
                raise P2pTaken(str(_network(row.p2p_ip)), other)
            n = c.execute(f"UPDATE cnis SET {','.join(f'{k}=?' for k in fields)} WHERE account=? AND id=?",
                          [*vals, row.account, row.id]).rowcount
        return self.get_cni(row.account, row.id) if n else None

    def delete_cni(self, account: str, cni_id: str) -> CniRow | None:
        with self._write() as c:
            r = c.execute("SELECT * FROM cnis WHERE account=? AND id=?", (account, cni_id)).fetchone()
            if r:
                c.execute("DELETE FROM cnis WHERE seq=?", (r["seq"],))
        return cni_from_row(r) if r else None

    def cnis_on(self, interconnects: list[str]) -> list[CniRow]:
        if not interconnects:
            return []
        q = f"SELECT * FROM cnis WHERE interconnect IN ({','.join('?' * len(interconnects))}) ORDER BY seq"
        return [cni_from_row(r) for r in self._conn().execute(q, interconnects)]

    # -- settings ----------------------------------------------------------------------------
    def get_default_asn(self, account: str) -> int | None:
        r = self._conn().execute("SELECT default_asn FROM settings WHERE account=?", (account,)).fetchone()
        return r[0] if r else None

    def put_default_asn(self, account: str, asn: int) -> None:
        with self._write() as c:
            c.execute("INSERT INTO settings(account, default_asn) VALUES (?, ?) "
                      "ON CONFLICT(account) DO UPDATE SET default_asn=excluded.default_asn", (account, asn))


def _allocate(pool: str, used: dict[Any, str]) -> tuple[str, str]:
    net = ipaddress.ip_network(pool)
    plen = 31 if net.version == 4 else 127
    for sub in net.subnets(new_prefix=plen):
        p2p = f"{sub.network_address}/{plen}"
        if sub not in used:
            return p2p, f"{sub.network_address + 1}/{plen}"
    raise PoolExhausted(pool)


class PoolExhausted(Exception):
    pass
