"""`cnilab dashboard`: serve the live lab view for a projector or a shared screen.

Loopback by default. Binding anywhere else needs a token; one is generated and printed when not
given, and the printed URL carries it (``?token=``) so the trainer just opens it; the page moves it
into sessionStorage and out of the address bar at once.
"""

from __future__ import annotations

import secrets

import typer
from cnilab.sim.cli.output import console, fail, lab_name_param


def resolve_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """The token to use and whether it was generated here (only for a non-loopback bind)."""
    from cnilab.sim.dashboard import is_loopback

    if token or is_loopback(host):
        return token, False
    return secrets.token_urlsafe(18), True


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard_cmd(
        lab: str | None = typer.Option(None, "--lab", help="Lab to show (default: the only running lab)",
                                         callback=lab_name_param),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; non-loopback needs a token"),
        port: int = typer.Option(8788, "--port", min=1, max=65535, help="TCP port"),
        token: str | None = typer.Option(None, "--token", envvar="CNILAB_DASHBOARD_TOKEN",
                                         help="Bearer token for actions (and reads when exposed)"),
    ) -> None:
        """Live web view of a running lab: links, BGP/BFD, traffic per path, faults and a timeline."""
        import uvicorn
        from cnilab.sim.dashboard import DashboardConfigError, create_app
        from cnilab.sim.state import LabNotFound

        token, generated = resolve_token(host, token)
        try:
            web = create_app(lab, token, host=host)
        except (DashboardConfigError, LabNotFound) as exc:
            fail(str(exc))
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        if generated:
            console.print(f"generated token (reads and actions need it): [bold]{token}[/]")
        console.print(f"dashboard of lab [bold]{web.title.split(': ', 1)[-1]}[/] at [link={url}]{url}[/link]  "
                      "(Ctrl-C to stop)", highlight=False)
        config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2, lifespan="on")
        try:
            uvicorn.Server(config).run()
        except OSError as exc:
            fail(f"cannot serve on {host}:{port}: {exc}")
