"""The ``donor-sync`` command line.

Every subcommand has ``--help``. Errors the user can act on print one line naming what went wrong
and exit with status 1; usage errors exit with 2. Long-running commands show progress on a terminal
and stay quiet otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import click

from donor_sync import __version__
from donor_sync.cli_support import friendly_errors as _friendly_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="donor-sync")
@click.option("-v", "--verbose", is_flag=True, help="Log what is happening (ids and hashes only, never PII).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    envvar="DONOR_SYNC_LOG_FORMAT",
    default="text",
    show_default=True,
    help="Log lines as text or one JSON object per line (also $DONOR_SYNC_LOG_FORMAT).",
)
@click.pass_context
def main(ctx: click.Context, verbose: bool, log_format: str) -> None:
    """Sync a nonprofit's donors and gifts from donation platforms into CRMs and email platforms."""
    from donor_sync.hooks.privacy_keys import install_for_cli
    from donor_sync.observability.logging import bind, configure

    configure(level=logging.INFO if verbose else logging.WARNING, log_format=log_format)
    # Keys as the tasks find them: the privacy_keys connection first (lazy: no I/O here).
    install_for_cli()
    import structlog

    structlog.contextvars.clear_contextvars()  # a command starts with no ids but its own
    bind(command=ctx.invoked_subcommand)


# -- db -------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The staging database: $DONOR_SYNC_DB_URL when set, else the embedded Postgres."""


@db.command("upgrade")
@_friendly_errors
def db_upgrade() -> None:
    """Start the database if needed, create it, and apply pending migrations."""
    from donor_sync.db import ensure_database, redact, resolve_target
    from donor_sync.db.migrations import upgrade
    from donor_sync.progress import note, step

    with step("staging database"):
        target = resolve_target()
        if target.embedded:
            ensure_database(target.url)
        note(redact(target.url) + (" (embedded)" if target.embedded else ""))
    with step("migrations"):
        applied = upgrade(target.url, on_apply=lambda m: note(f"applying {m.filename}"))
    click.echo(f"{len(applied)} migration(s) applied; database {redact(target.url)} is up to date")


@db.command("status")
@_friendly_errors
def db_status() -> None:
    """Show where the database is and which migrations are applied or pending."""
    from donor_sync.db import database_exists, redact, resolve_target
    from donor_sync.db.embedded import EmbeddedPostgres
    from donor_sync.db.migrations import status
    from donor_sync.db.url import database_name

    if not os.environ.get("DONOR_SYNC_DB_URL"):
        embedded = EmbeddedPostgres().status()
        state = "running" if embedded.running else ("stopped" if embedded.initialised else "not created")
        click.echo(f"embedded Postgres: {state} (data {embedded.data_dir}, port {embedded.port})")
        if not embedded.running:
            click.echo("run `donor-sync db upgrade` to start it")
            return
    target = resolve_target(start=False)
    if target.embedded and not database_exists(target.url):
        click.echo(f"database {database_name(target.url)} not created yet; run `donor-sync db upgrade`")
        return
    result = status(target.url)
    click.echo(f"database: {redact(target.url)}")
    for row in result.applied:
        click.echo(f"  applied  {row.version:04d}_{row.name}  {row.applied_at:%Y-%m-%d %H:%M:%S%z}")
    for migration in result.pending:
        click.echo(f"  pending  {migration.filename}")


@db.command("stop")
@_friendly_errors
def db_stop() -> None:
    """Stop the embedded Postgres cleanly (a configured server is left alone)."""
    from donor_sync.db.embedded import EmbeddedPostgres

    if os.environ.get("DONOR_SYNC_DB_URL"):
        click.echo("DONOR_SYNC_DB_URL is set: that server is not managed by donor-sync; nothing stopped")
        return
    stopped = EmbeddedPostgres().stop()
    click.echo("embedded Postgres stopped" if stopped else "embedded Postgres was not running")


@db.command("url")
@click.option("--reveal", is_flag=True, help="Include the password, if the URL has one.")
@click.option("--airflow-meta", is_flag=True, help="Print the Airflow metadata database's URL instead.")
@_friendly_errors
def db_url(reveal: bool, airflow_meta: bool) -> None:
    """Print the staging database's URL (starting the embedded server if needed)."""
    from donor_sync.db import redact, resolve_target
    from donor_sync.local_airflow import METADATA_DATABASE

    target = resolve_target()
    url = target.with_database(METADATA_DATABASE) if airflow_meta else target.url
    click.echo(url if reveal else redact(url))


# -- airflow --------------------------------------------------------------------------------------


@main.group()
def airflow() -> None:
    """Run the repo's local Airflow (AIRFLOW_HOME=.airflow, metadata in Postgres)."""


def _development_keys() -> None:
    """Make the development key file's missing rings (the demo's and the local Airflow's set-up)."""
    from donor_sync.privacy.keys import LocalKeyFile
    from donor_sync.progress import note, step

    with step("development privacy keys"):
        key_file = LocalKeyFile()
        added = key_file.init()
        note(f"{'made' if added else 'using'} {key_file.path}")


def _prepared_airflow_env(*, with_settings: bool) -> dict[str, str]:
    from donor_sync.db import ensure_database, resolve_target
    from donor_sync.db.migrations import upgrade
    from donor_sync.local_airflow import METADATA_DATABASE, airflow_environment, import_settings, run_airflow
    from donor_sync.progress import step

    with step("staging database and migrations"):
        target = resolve_target()
        if target.embedded:
            ensure_database(target.url)
        upgrade(target.url)
    env = airflow_environment(target)
    with step("Airflow metadata database"):
        if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
            ensure_database(target.with_database(METADATA_DATABASE))
        run_airflow(["db", "migrate"], env, quiet=True)
    if with_settings:
        with step("connections, variables and pools from airflow_settings.yaml"):
            import_settings(env)
    return env


@airflow.command("settings")
@_friendly_errors
def airflow_settings() -> None:
    """Load airflow_settings.yaml (connections, variables, pools) into the local Airflow."""
    from donor_sync.local_airflow import load_settings

    _prepared_airflow_env(with_settings=True)
    settings = load_settings()
    click.echo(
        f"loaded {len(settings.airflow.connections)} connections, {len(settings.airflow.variables)} "
        f"variables and {len(settings.airflow.pools)} pools"
    )


@airflow.command("up")
@click.option("--port", default=8080, show_default=True, help="API server port.")
@_friendly_errors
def airflow_up(port: int) -> None:
    """Start Airflow standalone with the DAGs, connections and pools, at http://localhost:PORT."""
    from donor_sync.local_airflow import airflow_executable
    from donor_sync.paths import airflow_home

    env = _prepared_airflow_env(with_settings=True)
    _development_keys()
    env["AIRFLOW__API__PORT"] = str(port)
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    # Local sandbox: new DAGs start unpaused so a trigger from the UI runs at once.
    env.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False")
    click.echo(f"Airflow is starting at http://localhost:{port}")
    click.echo(f"  log in as `admin`, password: {_local_admin_password(airflow_home())}")
    click.echo("  stop with Ctrl-C; `make db-stop` then stops the embedded Postgres")
    # The emulators run beside Airflow in their own process; Ctrl-C reaches both.
    subprocess.Popen([sys.executable, "-m", "donor_sync", "sandbox", "up"], env=env)
    os.execve(airflow_executable(), ["airflow", "standalone"], env)  # noqa: S606


def _local_admin_password(home: Path) -> str:
    """Return the local admin's password, or where Airflow will print it on first start."""
    passwords = home / "simple_auth_manager_passwords.json.generated"
    try:
        return str(json.loads(passwords.read_text())["admin"])
    except (OSError, ValueError, KeyError):
        return f"printed below by Airflow on first start, then kept in {passwords}"


@airflow.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_friendly_errors
def airflow_run(args: tuple[str, ...]) -> None:
    """Run any `airflow` command with the repo's settings, e.g. `donor-sync airflow run -- dags list`."""
    from donor_sync.local_airflow import run_airflow

    env = _prepared_airflow_env(with_settings=False)
    result = run_airflow(list(args), env, check=False)
    sys.exit(result.returncode)


# -- sandbox --------------------------------------------------------------------------------------


@main.group()
def sandbox() -> None:
    """Local HTTPS emulators of the vendor APIs (sandbox/)."""


@sandbox.command("up")
@click.option("--json", "as_json", is_flag=True, help="Print base URLs, admin URLs and the CA path as JSON.")
@click.option("--only", multiple=True, help="Start only these emulators (repeatable).")
@_friendly_errors
def sandbox_up(as_json: bool, only: tuple[str, ...]) -> None:
    """Start the emulators on their fixed ports and serve until interrupted (Ctrl-C)."""
    import signal
    import threading

    from donor_sync.sandbox_support import start_sandbox

    running = start_sandbox(list(only) or None)
    description = running.describe()
    if as_json:
        click.echo(json.dumps(description))
    else:
        click.echo(f"sandbox CA certificate: {description['ca_cert']}")
        for name, urls in description["emulators"].items():
            click.echo(f"  {name:<10} {urls['base_url']}   (admin {urls['admin_url']})")
        click.echo("serving; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


# -- demo and bench -------------------------------------------------------------------------------


@main.command()
@_friendly_errors
def demo() -> None:
    """Set everything up and run donations_hourly end to end on the embedded defaults."""
    from donor_sync.demo import run_demo
    from donor_sync.demo_inputs import DEMO_REFUNDS, deliver_refund_webhooks, drop_demo_csvs, webhook_receiver
    from donor_sync.paths import local_state_dir
    from donor_sync.progress import step
    from donor_sync.sandbox_support import demo_data_dir, load_demo_data, start_sandbox

    env = _prepared_airflow_env(with_settings=True)
    _development_keys()
    with step("sample data"):
        data_dir = demo_data_dir()
    with step("sandbox emulators"):
        running = start_sandbox()
    try:
        with step("sample data into the source emulators"):
            loaded = load_demo_data(running, data_dir)
        with step("sample CSV exports into the drop folder"):
            dropped = drop_demo_csvs(data_dir, local_state_dir() / "csv_drop")
        tls = running.tls
        with webhook_receiver(env["DONOR_SYNC_DB_URL"], tls.server_cert, tls.server_key) as url:
            with step("signed Stripe webhooks into the receiver"):
                deliveries = deliver_refund_webhooks(running, url)
            summary = run_demo(env)
    finally:
        running.stop()
    click.echo(f"sandbox: {len(running.emulators)} emulators; sample data {data_dir}")
    click.echo("  loaded " + ", ".join(f"{key} {count:,}" for key, count in sorted(loaded.items())))
    click.echo(
        f"  dropped {len(dropped)} CSV exports; {sum(deliveries.values())} webhook deliveries"
        f" ({DEMO_REFUNDS} refunds, each delivered twice) accepted by the receiver"
    )
    click.echo(summary)


@main.command()
@click.argument("names", nargs=-1)
@click.option(
    "--size", type=click.IntRange(min=1), default=None, help="Override each benchmark's default size."
)
@click.option(
    "--ci", is_flag=True, help="Each at its small CI_SIZE, into a temporary folder (README untouched)."
)
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the results here instead of bench/results (the README table is then left alone).",
)
@click.option("--render-only", is_flag=True, help="Run nothing: re-render the README table and plots.")
@_friendly_errors
def bench(
    names: tuple[str, ...], size: int | None, ci: bool, results_dir: Path | None, render_only: bool
) -> None:
    """Run the benchmarks in bench/ (all, or those NAMED), each in its own interpreter, and write
    their results (bench/results/*.json); then render the README's performance table and the
    scaling plots from every result. A failing benchmark does not stop the others: the run ends
    by naming it, with exit status 1."""
    from donor_sync import bench_runner

    run = None
    if not render_only:
        run = bench_runner.run_benchmarks(
            list(names), size=size, results_dir=results_dir, ci=ci, echo=click.echo
        )
        click.echo(bench_runner.summary(run))
    into_committed = run is None or run.results_dir == bench_runner.default_results_dir().resolve()
    if into_committed and (run is None or len(run.failed) < len(run.outcomes)):
        rendered = bench_runner.render()
        click.echo(rendered.stdout.rstrip())
        if rendered.returncode != 0:
            raise bench_runner.BenchmarkFailedError(
                f"rendering the README table failed: {rendered.stderr.strip()}"
            )
    elif run is not None:
        click.echo(f"results in {run.results_dir} (the README table is drawn from bench/results only)")
    if run is not None:
        bench_runner.raise_for_failures(run)


from donor_sync import cli_webhooks  # noqa: E402, F401 - registers `donor-sync webhooks`
from donor_sync.cli_csv import csv_group  # noqa: E402 - `donor-sync csv`

main.add_command(csv_group)
from donor_sync import cli_quarantine  # noqa: E402, F401 - registers `donor-sync quarantine`
from donor_sync.cli_review import review_group  # noqa: E402 - `donor-sync review`

main.add_command(review_group)
from donor_sync import cli_dedupe  # noqa: E402, F401 - registers `donor-sync dedupe`
from donor_sync.cli_mapping import mapping_group  # noqa: E402 - `donor-sync mapping`

main.add_command(mapping_group)

from donor_sync.cli_outbox import merges_group, outbox_group  # noqa: E402 - `donor-sync outbox`, `merges`

main.add_command(outbox_group)
main.add_command(merges_group)
from donor_sync.cli_dlq import dlq_group  # noqa: E402 - `donor-sync dlq`

main.add_command(dlq_group)
from donor_sync.cli_privacy_audit import audit_group, compliance_group  # noqa: E402 - `audit`, `compliance`

main.add_command(audit_group)
main.add_command(compliance_group)
from donor_sync.cli_privacy_keys import keys_group  # noqa: E402 - `donor-sync keys`
from donor_sync.cli_retention import retention_group  # noqa: E402 - `donor-sync retention`

main.add_command(keys_group)
main.add_command(retention_group)
from donor_sync.cli_privacy_requests import privacy_group  # noqa: E402 - `privacy erase|export|requests`

main.add_command(privacy_group)
from donor_sync import cli_privacy_profiles  # noqa: E402 - `privacy profiles validate`, `privacy docs`

cli_privacy_profiles.register(main)  # joins a `privacy` group registered above; keep it after them
from donor_sync import cli_privacy_consent  # noqa: E402 - `privacy link`, `consent show|set`

cli_privacy_consent.register(main)  # joins the `privacy` group too; keep it after the group's creation
from donor_sync.cli_journeys import journeys_group  # noqa: E402 - `donor-sync journeys`

main.add_command(journeys_group)
from donor_sync import cli_smoke  # noqa: E402, F401 - registers `donor-sync smoke`
from donor_sync.cli_health import health_group  # noqa: E402 - `donor-sync health`

main.add_command(health_group)
from donor_sync.cli_alerts import alerts_group  # noqa: E402 - `donor-sync alerts`

main.add_command(alerts_group)

if __name__ == "__main__":  # pragma: no cover
    main()
