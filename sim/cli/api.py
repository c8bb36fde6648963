"""``cnilab api``: serve the mock Cloudflare CNI API (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer
from cnilab.sim.cli.output import console, fail


def exposure_problem(host: str, is_dev: bool, insecure_dev: bool) -> str | None:
    """Why serving on ``host`` must be refused, or None.

    The development token is printed in the README: off loopback it would let anyone on the network
    drive the lab's edge peer. A configured credential, or an explicit opt-in, is required there.
    """
    from cnilab.sim.dashboard.app import is_loopback

    if is_loopback(host) or not is_dev or insecure_dev:
        return None
    return (f"refusing to serve on {host!r} with the built-in development credentials (published in the "
            "README): anyone who can reach this address could use them. Configure accounts and tokens "
            "(--config FILE), or pass --insecure-dev-credentials to do it anyway")


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option("127.0.0.1", help="Address to listen on"),
        port: int = typer.Option(8787, help="TCP port"),
        db: Path | None = typer.Option(None, help="SQLite file (default: cnilab-api.sqlite3 or the config's db)"),
        config: Path | None = typer.Option(None, help="YAML/JSON settings: accounts, tokens, chaos, rate_limit"),
        lab: str | None = typer.Option(None, help="Running lab whose edge peer CNIs configure"),
        insecure_dev_credentials: bool = typer.Option(
            False, "--insecure-dev-credentials",
            help="Allow the published development token on a non-loopback address"),
        access_log: bool = typer.Option(False, "--access-log", help="Log every request (costs throughput)"),
    ) -> None:
        """Serve /client/v4/accounts/{account_id}/cni/... (usable by the official SDKs, curl, Terraform)."""
        import uvicorn
        from cnilab.mock_api import create_app, load_settings
        from cnilab.mock_api.config import DEV_ACCOUNT, DEV_EMAIL, DEV_KEY, DEV_TOKEN, SettingsError

        try:
            settings = load_settings(config, db=db, lab=lab)
        except SettingsError as exc:
            fail(str(exc))
        problem = exposure_problem(host, settings.is_dev, insecure_dev_credentials)
        if problem:
            fail(problem)
        base = f"http://{host}:{port}/client/v4"
        console.print(f"cnilab mock CNI API on {base}  (OpenAPI: http://{host}:{port}/openapi.json, "
                      f"lab controls: http://{host}:{port}/lab/v1/openapi.json)")
        console.print(f"database: {settings.db}" + (f"   lab: {settings.lab}" if settings.lab else ""))
        if settings.is_dev:
            if insecure_dev_credentials and exposure_problem(host, True, False):
                console.print(f"[bold red]warning:[/] serving the published development credentials on {host}; "
                              "anyone who can reach it can use them", highlight=False)
            console.print(f"development account {DEV_ACCOUNT}\n  token: {DEV_TOKEN}   "
                          f"(or X-Auth-Email: {DEV_EMAIL}  X-Auth-Key: {DEV_KEY})", highlight=False)
            console.print(f"  try: curl -H 'Authorization: Bearer {DEV_TOKEN}' "
                          f"{base}/accounts/{DEV_ACCOUNT}/cni/slots", highlight=False)
        try:
            application = create_app(settings)
        except (OSError, ValueError) as exc:
            fail(f"cannot start: {exc}")
        uvicorn.run(application, host=host, port=port, log_level="info", access_log=access_log)
