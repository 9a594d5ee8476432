"""``donor-sync csv``: load the CSV drop folder, list export formats, check a format file.

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server (as for every command);
formats are read from ``include/mappings/csv_formats/``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.sources.csv_drop import CsvFileResult
    from donor_sync.sources.csv_drop.formats import CsvFormat


@click.group("csv")
def csv_group() -> None:
    """CSV drops: export files dropped in a folder, loaded once each into raw (a table per file), archived."""


@csv_group.command("load")
@click.option(
    "--drop",
    "drop_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Drop folder (default: <repo>/.local/csv_drop, created if missing).",
)
@click.option(
    "--quiet-period",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds a file must stay unchanged before it is read.",
)
@click.option(
    "--archive",
    "archive_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where loaded files go (default: <drop>/archive).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file instead of a table.")
@_friendly_errors
def csv_load(drop_dir: Path | None, quiet_period: float, archive_dir: Path | None, as_json: bool) -> None:
    """Load every ready file of the drop folder; exit 1 when a file was rejected."""
    from donor_sync.db import connect, resolve_target
    from donor_sync.sources.csv_drop import default_drop_dir, formats_dir, load_drop_folder, load_formats

    formats = load_formats(formats_dir())
    folder = drop_dir or default_drop_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with connect(resolve_target().url) as conn:
        results = load_drop_folder(
            conn,
            folder,
            formats,
            run_id=None,
            quiet_period=timedelta(seconds=quiet_period),
            archive_dir=archive_dir,
        )
    for result in results:
        click.echo(json.dumps(_as_json(result)) if as_json else _as_line(result))
    if not as_json:
        counts = {
            s: sum(r.status == s for r in results) for s in ("loaded", "duplicate", "rejected", "not_ready")
        }
        click.echo(
            f"{folder}: " + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items())
        )
    if any(r.status == "rejected" for r in results):
        sys.exit(1)


def _as_json(result: CsvFileResult) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(result).items()}


def _as_line(result: CsvFileResult) -> str:
    what = {
        "loaded": f"{result.rows:,} rows, {result.loaded:,} new, batch {result.batch_id}",
        "duplicate": result.detail or "",
        "rejected": result.error or "",
        "not_ready": result.detail or "",
    }[result.status]
    if result.status == "loaded" and result.encoding_errors:
        what += f", {result.encoding_errors:,} with encoding errors"
    if result.status == "loaded" and result.error:
        what += f" ({result.error})"
    return f"{result.status:<10} {result.path.name}  [{result.format or '-'}]  {what}"


@csv_group.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print the formats as JSON.")
@_friendly_errors
def csv_formats(as_json: bool) -> None:
    """List the export formats and which header feeds each intake field."""
    from donor_sync.sources.csv_drop import formats_dir, load_formats

    formats = load_formats(formats_dir())
    if as_json:
        click.echo(json.dumps({name: fmt.model_dump() for name, fmt in formats.items()}, indent=2))
        return
    for fmt in formats.values():
        click.echo(_describe(fmt))


def _describe(fmt: CsvFormat) -> str:
    rules = fmt.recognize
    lines = [
        f"{fmt.name}  (source {fmt.source}){': ' + fmt.description if fmt.description else ''}",
        f"  recognize: files {', '.join(rules.filenames) or 'any'}; "
        f"headers {', '.join(rules.headers) or 'any'}"
        + ("; needs a .done/.ok marker" if fmt.ready_marker else ""),
        f"  encoding {fmt.encoding}, delimiter {fmt.delimiter!r}, quote {fmt.quotechar!r}, "
        f"id column {fmt.id_column or '(file hash + line)'}",
        f"  dates {fmt.date_format} in {fmt.timezone}; decimal {fmt.decimal!r}, thousands {fmt.thousands!r}",
    ]
    width = max(len(field) for field in fmt.columns)
    lines += [f"    {field:<{width}} <- {header}" for field, header in fmt.columns.items()]
    return "\n".join(lines)


@csv_group.command("validate")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_friendly_errors
def csv_validate(files: tuple[Path, ...]) -> None:
    """Check export format YAML FILES (fields, intake field names, encodings, time zone)."""
    from donor_sync.errors import ConfigError
    from donor_sync.sources.csv_drop import load_format

    problems = []
    for path in files:
        try:
            fmt = load_format(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        click.echo(f"ok: {path} ({fmt.name}, source {fmt.source}, {len(fmt.columns)} mapped fields)")
    if problems:
        raise ConfigError("\n".join(problems))
