"""What every ``donor-sync`` subcommand shares: the error handling, the database, who is acting."""

from __future__ import annotations

import functools
import getpass
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from donor_sync.errors import ConfigError, DonorSyncError

if TYPE_CHECKING:
    import psycopg

F = TypeVar("F", bound=Callable[..., Any])

#: Postgres' largest bigint: an id or count beyond it is a usage error (exit 2), not a database error.
BIGINT_MAX = 2**63 - 1
#: A row id argument (dead letter, quarantine row, review, merge): a positive bigint.
ROW_ID = click.IntRange(min=1, max=BIGINT_MAX)
#: A count option (--limit, --batch): at least one, at most a bigint.
COUNT = click.IntRange(min=1, max=BIGINT_MAX)


class _UuidText(click.ParamType[str]):
    """A uuid argument (a donor id), checked before any database call and passed on as canonical text."""

    name = "uuid"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return str(uuid.UUID(str(value).strip()))
        except ValueError:
            self.fail(f"{value!r} is not a uuid (donor ids look like 3f2b8c1e-...-9a0d)", param, ctx)


#: A donor id (or any other uuid) argument or option.
UUID_TEXT = _UuidText()


def mapped_destinations() -> list[str]:
    """Return the destinations with a field mapping (include/mappings/destinations/*.yaml)."""
    from donor_sync.delivery.mapping import shipped_mapping_paths

    return [path.stem for path in shipped_mapping_paths()]


def configured_destinations() -> list[str]:
    """Return every configured destination: the mapped ones and ``webhook_<name>`` per event subscriber.

    :raises ConfigError: events.yaml is invalid.
    """
    from donor_sync.events.settings import load_event_settings

    subscribers = [spec.destination for spec in load_event_settings().subscribers]
    return sorted({*mapped_destinations(), *subscribers})


class _DestinationName(click.ParamType[str]):
    """A destination name, refused as a usage error (exit 2) when donor-sync does not know it."""

    name = "destination"

    def __init__(self, *, mapped: bool) -> None:
        self.mapped = mapped

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            known = mapped_destinations() if self.mapped else configured_destinations()
        except ConfigError as exc:
            self.fail(f"cannot list the destinations: {exc}", param, ctx)
        if value in known:
            return str(value)
        what = "no mapping file for destination" if self.mapped else "unknown destination"
        self.fail(f"{what} {value!r}; known: {', '.join(known)}", param, ctx)


#: A destination with a field mapping (outbox plan and queue, mapping objects).
MAPPED_DESTINATION = _DestinationName(mapped=True)
#: Any configured destination, event subscribers' included (outbox push).
DESTINATION = _DestinationName(mapped=False)


def check_destination_filter(conn: psycopg.Connection, destination: str | None, table: str) -> None:
    """Refuse (exit 2) a ``--destination`` filter that names neither a configured destination nor
    one that ``table`` holds rows of (rows of a destination since removed are still listed).

    :param table: a fixed table name with a ``destination`` column, e.g. ``sync.dead_letters``.
    """
    if destination is None:
        return
    try:
        known = configured_destinations()
    except ConfigError:
        known = mapped_destinations()
    if destination in known:
        return
    from psycopg import sql

    schema, name = table.split(".")
    row = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE destination = %s)").format(
            sql.Identifier(schema, name)
        ),
        (destination,),
    ).fetchone()
    if not (row and row[0]):
        raise click.BadParameter(
            f"unknown destination {destination!r}; known: {', '.join(known)}", param_hint="'--destination'"
        )


def _check_text_arguments(values: dict[str, Any]) -> None:
    """Refuse (exit 2) an argument holding bytes that are not UTF-8 (Python decodes them to lone
    surrogates, which no file, database or API can take), naming the argument."""
    for name, value in values.items():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    ctx = click.get_current_context(silent=True)
                    param = next((p for p in ctx.command.params if p.name == name), None) if ctx else None
                    raise click.BadParameter(
                        "not UTF-8 text (the shell passed bytes in another encoding)",
                        ctx=ctx,
                        param=param,
                        param_hint=None if param else repr(name),
                    ) from None


def friendly_errors(func: F) -> F:
    """Turn donor-sync's own errors into one clear line and exit status 1 (and arguments that are
    not UTF-8 text into a usage error, exit status 2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _check_text_arguments(kwargs)
        try:
            return func(*args, **kwargs)
        except DonorSyncError as exc:
            click.echo(click.style("error: ", fg="red", bold=True) + str(exc), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def connect_staging() -> psycopg.Connection:
    """Open the staging database ($DONOR_SYNC_DB_URL, else the embedded server)."""
    from donor_sync.db import connect, resolve_target

    return connect(resolve_target().url)


def cli_actor() -> str:
    """Return who runs the command, as the audit log records it (``cli:<user>``)."""
    return f"cli:{getpass.getuser()}"


def emit_generated_doc(text: str, path: Path, *, regenerate: str, write: bool, check: bool) -> None:
    """Print a generated page, or write it (``--write``), or fail when the file is stale (``--check``).

    :param regenerate: the command that rewrites the page, named in the staleness message.
    """
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    elif check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            click.echo(f"{path} is stale: run `{regenerate}`")
            sys.exit(1)
        click.echo(f"{path} is current")
    else:
        click.echo(text, nl=False)
