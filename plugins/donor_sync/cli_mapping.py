"""``donor-sync mapping``: validate the destination field mappings and generate their reference.

``validate`` checks ``include/mappings/destinations/*.yaml`` (or the files named) offline and,
with ``--describe``, against each destination's metadata: fetched through the destination's
Airflow connection and cached in the staging database (``sync.describe_cache``), or read from
that cache alone with ``--cache-only``. Every problem is one line ``file:line: field: message``;
the exit status is 1 when there is any.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from donor_sync.cli_support import MAPPED_DESTINATION, connect_staging, emit_generated_doc
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.errors import ConfigError

if TYPE_CHECKING:
    from donor_sync.delivery.mapping.describe_cache import Fetch


def describe_fetcher(destination: str) -> Fetch:
    """Return the function fetching ``destination``'s metadata documents through its connector
    (credentials from the destination's Airflow connection)."""
    try:
        if destination == "salesforce":
            from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook

            return SalesforceNpspHook().get_connector().describe
        if destination == "hubspot":
            from donor_sync.hooks.hubspot import HubSpotHook

            return HubSpotHook().get_connector().describe
    except Exception as exc:  # the hook's Airflow connection lookup raises Airflow's own errors
        raise ConfigError(
            f"cannot reach {destination}'s metadata ({type(exc).__name__}: {exc}); "
            "check its Airflow connection, or validate against the cache with --cache-only"
        ) from exc
    raise ConfigError(f"no connector reads {destination!r} metadata; use --cache-only")


@click.group("mapping")
def mapping_group() -> None:
    """Destination field mappings (include/mappings/destinations): validate, list, document."""


@mapping_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--describe",
    is_flag=True,
    help="Also check against each destination's metadata (fields, writability, picklist values).",
)
@click.option(
    "--cache-only",
    is_flag=True,
    help="With --describe: use only metadata cached in the staging database (no vendor call).",
)
@click.option("--refresh", is_flag=True, help="With --describe: fetch metadata even when the cache is fresh.")
@click.option(
    "--max-age-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="With --describe: use cached metadata younger than this.",
)
@_friendly_errors
def validate_command(
    paths: tuple[Path, ...], describe: bool, cache_only: bool, refresh: bool, max_age_hours: float
) -> None:
    """Check mapping files (default: every shipped one); print each problem as file:line: field: message."""
    from donor_sync.delivery.mapping import (
        DescribeCache,
        check_against_describe,
        shipped_mapping_paths,
        validate_file,
    )
    from donor_sync.delivery.mapping.describe import needs_metadata

    files = list(paths) or shipped_mapping_paths()
    if not files:
        raise ConfigError("no mapping files found")
    problems = []
    valid = []
    for path in files:
        mapping, found = validate_file(path)
        problems += found
        if mapping is not None:
            valid.append(mapping)
    if describe and valid:
        with connect_staging() as conn:
            for mapping in valid:
                if not needs_metadata(mapping):  # Braze, Mailchimp: no field metadata to check against
                    continue
                fetch = None if cache_only else describe_fetcher(mapping.destination)
                lookup = DescribeCache(
                    conn,
                    mapping.destination,
                    fetch,
                    max_age=dt.timedelta(hours=max_age_hours),
                    refresh=refresh,
                )
                problems += check_against_describe(mapping, lookup)
    problems += _subscription_problems(valid)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        files_with = len({getattr(p, "file", str(p).split(":", 1)[0]) for p in problems})
        click.echo(f"{len(problems)} problem(s) in {files_with} of {len(files)} mapping file(s)")
        sys.exit(1)
    against = " and against the destination metadata" if describe else ""
    click.echo(f"{len(files)} mapping file(s) valid{against}")


def _subscription_problems(mappings: list[Any]) -> list[Any]:
    """HubSpot subscription statuses must agree with the subscription types consent pull-back reads."""
    found: list[Any] = []
    for mapping in mappings:
        if mapping.destination != "hubspot":
            continue
        from donor_sync.delivery.connectors.hubspot.subscriptions_write import check_mapping
        from donor_sync.privacy.consent.pullback import default_path, load_pullback_settings

        hubspot = load_pullback_settings().destinations.get("hubspot")
        subscriptions = hubspot.subscriptions if hubspot is not None else {}
        found += check_mapping(mapping, subscriptions, pullback_path=default_path())
    return found


@mapping_group.command("objects")
@click.argument("destination", type=MAPPED_DESTINATION)
@_friendly_errors
def objects_command(destination: str) -> None:
    """List a destination's objects in push order: entity, object, source rows, key, mode, priority."""
    from donor_sync.delivery.mapping import load_destination, push_order

    for info in push_order(load_destination(destination)):
        key = f"{info.key_field}->{info.external_id_field}" if info.external_id_field else info.key_field
        depends = ",".join(info.depends_on) or "-"
        click.echo(
            f"{info.entity:<26} {info.object_name or 'association':<30} {info.source_kind:<15} "
            f"{key:<30} {info.mode.value:<12} {info.priority:>4}  after {depends}"
        )


@mapping_group.command("docs")
@click.option("--write", is_flag=True, help="Rewrite docs/field-mappings.md.")
@click.option("--check", is_flag=True, help="Exit with status 1 when docs/field-mappings.md is stale.")
@_friendly_errors
def docs_command(write: bool, check: bool) -> None:
    """Print the field-mapping reference generated from the models and mapping files (or write it)."""
    from donor_sync.delivery.mapping import docs

    emit_generated_doc(
        docs.render(), docs.doc_path(), regenerate="donor-sync mapping docs --write", write=write, check=check
    )
