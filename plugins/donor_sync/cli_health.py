"""``donor-sync health``: a run's health figures, the data quality scorecard's trend, its docs page.

* ``health show [--run RUN_ID | --dag DAG_ID] [--json] [--collect]``: a run's health snapshot as
  recorded (record counts, push success, latency, API calls and quota, breakers, dead letters,
  webhooks, events, journeys, consent, suppressions, scorecard); the latest run by default, or the
  latest of ``--dag``. ``--collect`` computes and records the figures first (what the DAGs' last
  task does).
* ``health scorecard [--dag DAG_ID] [--limit N] [--json]``: the latest runs' scorecards, oldest first.
* ``health docs [--write | --check]``: docs/data-quality.md, generated from quality.yaml.

Ids, names, counts and ratios only: nothing printed carries a donor's PII.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC
from typing import TYPE_CHECKING
from uuid import UUID

import click

from donor_sync.cli_support import connect_staging, emit_generated_doc
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.errors import DonorSyncError

if TYPE_CHECKING:
    import psycopg


class RunNotFound(DonorSyncError):  # noqa: N818 - reads as the outcome the command reports
    """The run asked for does not exist (or the DAG has no run yet)."""


@click.group("health")
def health_group() -> None:
    """Run health: counts, latency, quota, breakers, dead letters, delivery rates, data quality."""


def _pick_run(conn: psycopg.Connection, run: str | None, dag_id: str | None) -> UUID:
    from donor_sync.observability.runs import latest_run_id

    if run is not None:
        try:
            return UUID(run)
        except ValueError:
            raise click.BadParameter(f"{run!r} is not a run id (a uuid)", param_hint="--run") from None
    if dag_id is not None:
        found = latest_run_id(conn, dag_id)
        if found is None:
            raise RunNotFound(f"no run of {dag_id} in sync.runs")
        return found
    row = conn.execute("SELECT run_id FROM sync.runs ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        raise RunNotFound("no run in sync.runs yet")
    return UUID(str(row[0]))


@health_group.command("show")
@click.option("--run", "run", default=None, help="A sync run id (sync.runs.run_id).")
@click.option("--dag", "dag_id", default=None, help="The latest run of this DAG.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--collect", is_flag=True, help="Compute and record the run's health figures first.")
@_friendly_errors
def show_command(run: str | None, dag_id: str | None, as_json: bool, collect: bool) -> None:
    """Show a run's health snapshot (the latest run unless --run or --dag)."""
    from donor_sync.observability.metrics import collect_run_health, format_health, load_health

    if run is not None and dag_id is not None:
        raise click.UsageError("give --run or --dag, not both")
    with connect_staging() as conn:
        run_id = _pick_run(conn, run, dag_id)
        try:
            snapshot = (
                collect_run_health(conn, run_id, task_id="cli:health")
                if collect
                else load_health(conn, run_id)
            )
        except LookupError as exc:
            raise RunNotFound(str(exc)) from None
    click.echo(json.dumps(snapshot.to_dict(), indent=2) if as_json else format_health(snapshot))


@health_group.command("scorecard")
@click.option("--dag", "dag_id", default=None, help="Only this DAG's runs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=30, show_default=True, help="Runs shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def scorecard_command(dag_id: str | None, limit: int, as_json: bool) -> None:
    """Show the latest runs' data quality scorecards, oldest first."""
    from donor_sync.observability.quality import scorecard_trend

    with connect_staging() as conn:
        points = scorecard_trend(conn, dag_id=dag_id, limit=limit)
    if as_json:
        rows = [
            {**dataclasses.asdict(p), "run_id": str(p.run_id), "started_at": p.started_at.isoformat()}
            for p in points
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not points:
        click.echo("no scorecard recorded yet")
        return

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    click.echo(
        f"{'started (UTC)':<17} {'dag':<20} {'run id':<36} {'score':>7} {'complete':>9} {'valid':>7}"
        f" {'dupes':>7} {'consent':>8}"
    )
    for p in points:
        click.echo(
            f"{p.started_at.astimezone(UTC):%Y-%m-%d %H:%M} {p.dag_id:<20} {p.run_id!s:<36} {pct(p.score):>7}"
            f" {pct(p.completeness):>9} {pct(p.validity):>7} {pct(p.duplicate_rate):>7}"
            f" {pct(p.consent_coverage):>8}"
        )


@health_group.command("docs")
@click.option("--write", is_flag=True, help="Write docs/data-quality.md.")
@click.option("--check", is_flag=True, help="Fail when docs/data-quality.md is stale.")
@_friendly_errors
def docs_command(write: bool, check: bool) -> None:
    """Print (or write, or check) docs/data-quality.md, generated from the models and quality.yaml."""
    from donor_sync.observability.quality.doc import doc_path, render

    emit_generated_doc(
        render(), doc_path(), regenerate="donor-sync health docs --write", write=write, check=check
    )
