"""What every ``donor-sync`` subcommand shares: the error handling, the database, who is acting."""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from donor_sync.errors import DonorSyncError

if TYPE_CHECKING:
    import psycopg

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn donor-sync's own errors into one clear line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
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
