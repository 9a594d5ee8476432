"""Progress for long-running commands: shown on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click


def interactive() -> bool:
    """Return whether standard error is a terminal."""
    return sys.stderr.isatty()


@contextmanager
def step(label: str) -> Iterator[None]:
    """Show ``label`` while the block runs and how long it took, on a terminal only."""
    if not interactive():
        yield
        return
    click.echo(click.style("→ ", fg="cyan") + label + " …", err=True)
    started = time.perf_counter()
    yield
    click.echo(click.style("  ✓ ", fg="green") + f"{label} ({time.perf_counter() - started:.1f}s)", err=True)


def note(message: str) -> None:
    """Print a progress note on a terminal only."""
    if interactive():
        click.echo("  " + message, err=True)
