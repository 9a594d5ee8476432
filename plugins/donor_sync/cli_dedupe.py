"""``donor-sync dedupe``: find duplicate donors in any CSV export.

``donor-sync dedupe INPUT.csv --out clusters.csv [--map SOURCE_COLUMN=FIELD ...] [--id COLUMN]
[--rules FILE]`` reads the CSV, maps its columns to the identity fields (a column already named
like a field is used without a ``--map``), runs :func:`donor_sync.identity.dedupe` with the rules
(``include/mappings/dedup.yaml`` by default) and writes one row per input record: ``record_id``,
``cluster_id`` (the id of the cluster's first record), ``band`` and ``score`` (match
probability) of the record's strongest link; a record with no candidate pair has an empty band.
Only counts are printed: never a donor's name, email or address.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from donor_sync.cli import main
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.errors import DonorSyncError

log = logging.getLogger(__name__)


class InputError(DonorSyncError):
    """The input CSV or the column mapping is unusable; the message names the file and column."""


def parse_mappings(mappings: tuple[str, ...]) -> dict[str, str]:
    """Return ``{source_column: field}`` from ``SOURCE_COLUMN=FIELD`` options.

    :raises InputError: naming the bad option.
    """
    from donor_sync.identity import FIELDS

    out: dict[str, str] = {}
    for item in mappings:
        column, sep, target = item.rpartition("=")
        if not sep or not column or not target:
            raise InputError(f"--map {item!r}: expected SOURCE_COLUMN=FIELD")
        if target not in FIELDS:
            raise InputError(f"--map {item!r}: unknown field {target!r}; fields are {', '.join(FIELDS)}")
        if target in out.values():
            raise InputError(f"--map {item!r}: field {target!r} is mapped twice")
        out[column] = target
    return out


def _read(path: Path) -> object:
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        try:
            return pd.read_csv(
                path, dtype=str, keep_default_na=False, encoding="cp1252", encoding_errors="replace"
            )
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read as CSV: {type(exc).__name__}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as CSV: {exc}") from exc


def load_input(path: Path, mappings: dict[str, str], id_column: str | None) -> tuple[object, str]:
    """Return the input mapped to identity fields (plus ``record_id``) and the id column's name.

    :raises InputError: unreadable file, missing mapped or id column, duplicate or empty ids.
    """
    import pandas as pd

    from donor_sync.identity import FIELDS

    raw = _read(path)
    assert isinstance(raw, pd.DataFrame)
    columns = [str(c) for c in raw.columns]
    for column, target in mappings.items():
        if column not in columns:
            raise InputError(
                f"{path}: column {column!r} (mapped to {target}) not found; columns: {', '.join(columns)}"
            )
    mapped = dict(mappings)
    for field in FIELDS:
        if field in columns and field not in mapped.values() and field not in mapped:
            mapped[field] = field
    if not mapped:
        raise InputError(
            f"{path}: no column maps to a field; use --map SOURCE_COLUMN=FIELD ({', '.join(FIELDS)})"
        )
    frame = pd.DataFrame({target: raw[column] for column, target in mapped.items()})
    if id_column is not None:
        if id_column not in columns:
            raise InputError(f"{path}: id column {id_column!r} not found; columns: {', '.join(columns)}")
        ids = raw[id_column].str.strip()
        if (ids == "").any():
            line = int((ids == "").to_numpy().argmax()) + 2
            raise InputError(f"{path}: line {line}: id column {id_column!r} is empty")
        duplicated = ids.duplicated()
        if duplicated.any():
            line = int(duplicated.to_numpy().argmax()) + 2
            raise InputError(f"{path}: line {line}: id column {id_column!r} repeats an earlier id")
        frame["record_id"] = ids
    else:
        frame["record_id"] = [str(i + 2) for i in range(len(raw))]  # the CSV line number
    return frame, id_column or "line"


@main.command("dedupe")
@click.argument("input_csv", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Clusters CSV."
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="SOURCE_COLUMN=FIELD",
    help="Map an input column to a field: first_name, last_name, full_name, email, phone, street, "
    "street2, city, state, postal_code, country, birth_date, external_id (repeatable).",
)
@click.option("--id", "id_column", default=None, help="The record id column (default: the CSV line number).")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Dedup rules YAML (default include/mappings/dedup.yaml).",
)
@_friendly_errors
def dedupe_command(
    input_csv: Path, out: Path, mappings: tuple[str, ...], id_column: str | None, rules_path: Path | None
) -> None:
    """Find duplicate donors in INPUT_CSV and write one row per record: its cluster, band and score."""
    import pandas as pd

    from donor_sync.identity import AUTO_MERGE, HOUSEHOLD, REVIEW, dedupe, load_rules

    rules = load_rules(rules_path)
    frame, _ = load_input(input_csv, parse_mappings(mappings), id_column)
    assert isinstance(frame, pd.DataFrame)
    result = dedupe(frame, rules)
    records = result.records
    table = pd.DataFrame(
        {
            "record_id": records["record_id"],
            "cluster_id": records["cluster_id"],
            "band": records["best_band"].astype(object).where(records["best_band"].notna(), ""),
            "score": records["best_probability"].round(6),
        }
    )
    try:
        table.to_csv(out, index=False)
    except OSError as exc:
        raise InputError(f"{out}: cannot write: {exc}") from exc
    bands = result.stats["bands"]
    clusters = result.stats["clusters"]
    click.echo(
        f"{len(records):,} records -> {clusters:,} donors ({len(records) - clusters:,} duplicates merged); "
        f"{bands[REVIEW]:,} pairs to review, {bands[HOUSEHOLD]:,} household links, "
        f"{bands[AUTO_MERGE]:,} automatic merges; wrote {out}"
    )
    log.info("dedupe: timings %s", result.timings)
