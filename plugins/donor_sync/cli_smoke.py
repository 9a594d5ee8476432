"""``donor-sync smoke``: a post-deployment check of every real connection, without writing.

Connections are Airflow's, looked up as tasks look them up (``AIRFLOW_CONN_*``, the secrets
backend, the metadata database): run it where the scheduler or a worker runs, or give
``--settings-file airflow_settings.yaml`` to read them from that file (the local sandbox). Prints
a table (or ``--json``); the exit status is 0 only when no check failed. See docs/smoke.md.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from donor_sync.cli import main
from donor_sync.cli_support import friendly_errors as _friendly_errors


@main.command("smoke")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--receiver-url",
    default=None,
    help="The webhook receiver's base URL (default: $DONOR_SYNC_RECEIVER_URL, else Airflow's "
    "[api] base_url + /donor-sync-webhooks).",
)
@click.option(
    "--receiver-ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CA bundle the receiver's certificate is checked with.",
)
@click.option(
    "--post-slack", is_flag=True, help="Post one test message to the Slack alerts channel (off by default)."
)
@click.option(
    "--only",
    multiple=True,
    help="Check only this target (stripe, salesforce, receiver, slack...); repeatable.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=45.0,
    show_default=True,
    help="Seconds one check may take before it fails.",
)
@click.option(
    "--workers", type=click.IntRange(1, 16), default=4, show_default=True, help="Checks run at once."
)
@click.option(
    "--settings-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the connections from this airflow_settings.yaml (e.g. the sandbox's) instead of Airflow.",
)
@_friendly_errors
def smoke(
    *,
    as_json: bool,
    receiver_url: str | None,
    receiver_ca_bundle: Path | None,
    post_slack: bool,
    only: tuple[str, ...],
    timeout_s: float,
    workers: int,
    settings_file: Path | None,
) -> None:
    """Check each source's and destination's credentials, limits and mapped fields, the webhook
    receiver and the Slack webhook; read-only. Exit status 1 when any check fails."""
    from donor_sync.smoke import (
        Redactor,
        SmokeOptions,
        exit_status,
        plan_checks,
        render_json,
        render_table,
        run_checks,
    )
    from donor_sync.smoke.connections import (
        AirflowConnections,
        airflow_api_base_url,
        settings_file_environment,
    )

    if settings_file is not None:
        os.environ.update(settings_file_environment(settings_file))
    _keep_stdout_for_the_report()
    redactor = Redactor()
    options = SmokeOptions(
        receiver_url=receiver_url,
        receiver_verify=str(receiver_ca_bundle) if receiver_ca_bundle else True,
        post_slack=post_slack,
        only=frozenset(only),
    )
    try:
        checks = plan_checks(AirflowConnections(redactor), options, api_base_url=airflow_api_base_url())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    results = run_checks(checks, workers=workers, timeout_s=timeout_s, redact=redactor)
    click.echo(render_json(results) if as_json else render_table(results), nl=False)
    sys.exit(exit_status(results))


def _keep_stdout_for_the_report() -> None:
    """Load Airflow now and send its log handlers to stderr at the level the command line chose.

    Importing Airflow configures the root logger to print INFO records on stdout, which would
    mix vendor-client chatter into the table and break ``--json``.
    """
    root = logging.getLogger()
    level = root.level
    import airflow.sdk  # noqa: F401 - configures logging on import

    root.setLevel(level)
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            handler.setStream(sys.stderr)
