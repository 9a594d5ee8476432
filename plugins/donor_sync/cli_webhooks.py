"""``donor-sync webhooks``: run the webhook receiver on its own (outside Airflow's API server).

Secrets come from ``--secrets-file`` (YAML ``{name: secret | [secrets]}``, chmod 600) and then
from ``$DONOR_SYNC_WEBHOOK_SECRET_<NAME>``; the staging database is ``$DONOR_SYNC_DB_URL`` or the
embedded server.
"""

from __future__ import annotations

from pathlib import Path

import click

from donor_sync.cli import main
from donor_sync.cli_support import friendly_errors as _friendly_errors

DEFAULT_PORT = 8780


@main.group()
def webhooks() -> None:
    """The inbound webhook receiver (Stripe, Donorbox, Classy and other configured sources)."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port to listen on.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Endpoint settings (default: include/mappings/webhooks.yaml).",
)
@click.option(
    "--secrets-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file of signing secrets by name (else $DONOR_SYNC_WEBHOOK_SECRET_<NAME>).",
)
@click.option(
    "--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None, help="TLS certificate."
)
@click.option(
    "--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None, help="TLS private key."
)
@_friendly_errors
def serve(
    *,
    host: str,
    port: int,
    config_path: Path | None,
    secrets_file: Path | None,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
) -> None:
    """Serve POST /<source> for every configured endpoint until interrupted."""
    import uvicorn

    from donor_sync.db import redact, resolve_target
    from donor_sync.errors import ConfigError
    from donor_sync.web.webhooks.app import create_app
    from donor_sync.web.webhooks.config import load_settings
    from donor_sync.web.webhooks.secret_sources import ChainedSecrets, EnvSecrets, FileSecrets, SecretSource

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    settings = load_settings(config_path)
    sources: list[SecretSource] = [FileSecrets(secrets_file)] if secrets_file else []
    target = resolve_target()
    app = create_app(settings, ChainedSecrets(*sources, EnvSecrets()), conninfo=target.url)
    scheme = "https" if ssl_certfile else "http"
    click.echo(
        f"webhooks: {scheme}://{host}:{port}/{{{','.join(settings.endpoints)}}} -> {redact(target.url)}",
        err=True,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        # The app resolves X-Forwarded-For itself, from webhooks.yaml's trusted_proxies only.
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )
