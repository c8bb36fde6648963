"""Run the mock on 127.0.0.1 in a background thread, for tests and benchmarks.

``with serve(settings) as url:`` starts uvicorn on a free port and always stops it, so a failing
test never leaves a server (or its SQLite connections) behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cnilab.mock_api.app import create_app
from cnilab.mock_api.config import ApiSettings
from cnilab.mock_api.lab_bridge import LabBridge


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(settings: ApiSettings, bridge: LabBridge | None = None, timeout: float = 15.0) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a running server; stop it on exit."""
    app = create_app(settings, bridge)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, name=f"cnilab-api-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"mock API did not start on 127.0.0.1:{port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@dataclass(frozen=True)
class RunningApi:
    """Handle of a running mock: ``base_url`` is what the SDK's ``base_url`` takes (…/client/v4)."""

    url: str
    base_url: str
    token: str
    account: str
    settings: ApiSettings


@contextlib.contextmanager
def running_api(db: Path | str, bridge: LabBridge | None = None, **overrides: Any) -> Iterator[RunningApi]:
    """A mock with the development account on a free port (used by cnilab.sim.pytest_plugin's ``cni_api``)."""
    from cnilab.mock_api.config import DEV_ACCOUNT, DEV_TOKEN, load_settings

    settings = load_settings(db=db, **overrides)
    with serve(settings, bridge) as url:
        yield RunningApi(url=url, base_url=f"{url}/client/v4", token=DEV_TOKEN, account=DEV_ACCOUNT,
                         settings=settings)
