"""What every ``donor-sync`` subcommand shares: the error handling, the database, who is acting."""

from __future__ import annotations

import functools
import getpass
import sys
from collections.abc import Callable
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
