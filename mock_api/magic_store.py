"""Persistence of Magic objects (cf_interconnects, gre_tunnels, routes): one SQLite table beside the
CNI tables, bodies stored as JSON in the API's own shape, ordered by insertion."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

Kind = Literal["cf_interconnect", "gre_tunnel", "route"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS magic_objects (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  account TEXT NOT NULL,
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (account, kind, id)
);
CREATE TABLE IF NOT EXISTS magic_seeded (account TEXT NOT NULL, lab TEXT NOT NULL, PRIMARY KEY (account, lab));
"""


class MagicStore:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def list(self, account: str, kind: Kind) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT body FROM magic_objects WHERE account=? AND kind=? ORDER BY seq",
                                      (account, kind)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def get(self, account: str, kind: Kind, id_: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM magic_objects WHERE account=? AND kind=? AND id=?",
                                     (account, kind, id_)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, account: str, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._conn.execute("INSERT INTO magic_objects (account, kind, id, body) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (account, kind, id) DO UPDATE SET body=excluded.body",
                               (account, kind, body["id"], json.dumps(body)))
        return body

    def delete(self, account: str, kind: Kind, id_: str) -> bool:
        with self._lock:
            cur = self._conn.execute("DELETE FROM magic_objects WHERE account=? AND kind=? AND id=?",
                                     (account, kind, id_))
        return cur.rowcount > 0

    def seeded(self, account: str, lab: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM magic_seeded WHERE account=? AND lab=?",
                                      (account, lab)).fetchone() is not None

    def mark_seeded(self, account: str, lab: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO magic_seeded VALUES (?, ?)", (account, lab))
