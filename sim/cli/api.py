"""``cnilab api``: serve the mock Cloudflare CNI API (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path

import typer

from sim.cli.output import console, fail


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str = typer.Option("127.0.0.1", help="Address to listen on"),
        port: int = typer.Option(8787, help="TCP port"),
        db: Path | None = typer.Option(None, help="SQLite file (default: cnilab-api.sqlite3 or the config's db)"),
        config: Path | None = typer.Option(None, help="YAML/JSON settings: accounts, tokens, chaos, rate_limit"),
        lab: str | None = typer.Option(None, help="Running lab whose edge peer CNIs configure"),
    ) -> None:
        """Serve /client/v4/accounts/{account_id}/cni/... (usable by the official SDKs, curl, Terraform)."""
        import uvicorn

        from mock_api import create_app, load_settings
        from mock_api.config import DEV_ACCOUNT, DEV_EMAIL, DEV_KEY, DEV_TOKEN, SettingsError

        try:
            settings = load_settings(config, db=db, lab=lab)
        except SettingsError as exc:
            fail(str(exc))
        base = f"http://{host}:{port}/client/v4"
        console.print(f"cnilab mock CNI API on {base}  (OpenAPI: http://{host}:{port}/openapi.json)")
        console.print(f"database: {settings.db}" + (f"   lab: {settings.lab}" if settings.lab else ""))
        if settings.is_dev:
            console.print(f"development account {DEV_ACCOUNT}\n  token: {DEV_TOKEN}   "
                          f"(or X-Auth-Email: {DEV_EMAIL}  X-Auth-Key: {DEV_KEY})", highlight=False)
            console.print(f"  try: curl -H 'Authorization: Bearer {DEV_TOKEN}' "
                          f"{base}/accounts/{DEV_ACCOUNT}/cni/slots", highlight=False)
        try:
            application = create_app(settings)
        except (OSError, ValueError) as exc:
            fail(f"cannot start: {exc}")
        uvicorn.run(application, host=host, port=port, log_level="info")
