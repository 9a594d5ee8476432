"""``donor-sync keys``: make development keys, rotate rings, re-encrypt encrypted columns, retire old keys.

``init`` makes the LOCAL development key file (``.local/privacy_keys.json``); nothing else does
(the demo and the local Airflow call it for you). ``rotate`` and ``retire`` change that file
only; for a production secrets backend they print the steps to follow there (docs/encryption.md).
``reencrypt`` works on the staging database with the key ring in effect (the privacy_keys
connection, the env var, or the local file). ``rotate``, ``reencrypt`` and ``retire`` are
audited (``keys.rotated``, ``keys.reencrypted``, ``keys.retired``); no key material is ever printed.
"""

from __future__ import annotations

import click

from donor_sync.cli_support import COUNT, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.privacy.keys import ENV_VAR, PURPOSES

_PURPOSES = click.Choice(list(PURPOSES))


@click.group("keys")
def keys_group() -> None:
    """Privacy key rings: make development keys, rotate, re-encrypt under the current key, retire old keys."""


def _env_overrides(purpose: str) -> bool:
    from donor_sync.privacy.keys import EnvKeys

    return EnvKeys().ring(purpose) is not None


@keys_group.command("init")
@_friendly_errors
def init_command() -> None:
    """Make the local DEVELOPMENT key file, with random keys for the rings it lacks (never for production).

    A deployment's keys are the privacy_keys connection or $DONOR_SYNC_PRIVACY_KEYS: keys made
    here are known to no worker, so hashes, seals and links made with them are useless there.
    """
    from donor_sync.privacy.keys import LocalKeyFile

    key_file = LocalKeyFile()
    added = key_file.init()
    if added:
        click.echo(f"{key_file.path}: new development key ring(s) {', '.join(added)}")
    else:
        click.echo(f"{key_file.path}: already holds every ring; unchanged")
    overriding = [p for p in PURPOSES if _env_overrides(p)]
    if overriding:
        click.echo(f"note: ${ENV_VAR} holds the {', '.join(overriding)} ring(s), which win over this file.")


@keys_group.command("rotate")
@click.argument("purpose", type=_PURPOSES)
@_friendly_errors
def rotate_command(purpose: str) -> None:
    """Add a new key to PURPOSE's ring in the local key file and make it current."""
    from donor_sync.privacy.crypto.rotation import PRODUCTION_STEPS, rotate_local_key
    from donor_sync.privacy.keys import LocalKeyFile

    key_file = LocalKeyFile()
    with connect_staging() as conn:
        previous, new = rotate_local_key(conn, purpose, key_file=key_file, actor=cli_actor())
    click.echo(
        f"{purpose}: new key {new} is current in {key_file.path} (previous {previous} kept for reading)"
    )
    if _env_overrides(purpose):
        click.echo(
            f"note: ${ENV_VAR} holds a {purpose} ring, which wins over the local file: it is unchanged."
        )
    if purpose == "encryption":
        click.echo("next: `donor-sync keys reencrypt`, then `donor-sync keys retire " + previous + "`")
    click.echo("")
    click.echo(PRODUCTION_STEPS.format(purpose=purpose))


@keys_group.command("reencrypt")
@click.option("--batch", type=COUNT, default=500, show_default=True, help="Rows per commit.")
@_friendly_errors
def reencrypt_command(batch: int) -> None:
    """Seal every encrypted column's values under the current encryption key (online, resumable)."""
    from donor_sync.db import connect, resolve_target
    from donor_sync.privacy.crypto.fields import field_crypto
    from donor_sync.privacy.crypto.rotation import ColumnReport, reencrypt

    crypto = field_crypto()

    def progress(column: ColumnReport) -> None:
        click.echo(
            f"  {column.column}: batch {column.batches}, {column.reencrypted} re-encrypted, "
            f"{column.sealed_plaintext} plaintext sealed, {column.failed} failed",
            err=True,
        )

    with connect(resolve_target().url) as conn:
        report = reencrypt(conn, crypto, batch=batch, actor=cli_actor(), progress=progress)
    click.echo(f"current key {report.key_id}:")
    for column in report.columns:
        click.echo(
            f"  {column.column}: {column.reencrypted} re-encrypted, {column.sealed_plaintext} plaintext "
            f"sealed, {column.failed} failed, {column.remaining} remaining"
        )
    if report.remaining:
        click.echo(
            f"{report.remaining} value(s) are not under {report.key_id} yet (rows locked by a writer, or "
            "values that do not open: see the failed counts); run it again",
            err=True,
        )
        raise SystemExit(1)


@keys_group.command("usage")
@_friendly_errors
def usage_command() -> None:
    """Count the encrypted columns' values by the key that seals them."""
    from donor_sync.privacy.crypto.fields import field_crypto
    from donor_sync.privacy.crypto.rotation import key_usage

    with connect_staging() as conn:
        usage = key_usage(conn, field_crypto())
    for column, counts in usage.items():
        listed = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "no values"
        click.echo(f"{column}: {listed}")


@keys_group.command("retire")
@click.argument("key_id")
@click.option("--purpose", type=_PURPOSES, default="encryption", show_default=True)
@_friendly_errors
def retire_command(key_id: str, purpose: str) -> None:
    """Remove KEY_ID from the local ring; refused while any value (or tombstone) still uses it."""
    from donor_sync.privacy.crypto.fields import field_crypto
    from donor_sync.privacy.crypto.rotation import retire_local_key
    from donor_sync.privacy.keys import LocalKeyFile

    key_file = LocalKeyFile()
    crypto = field_crypto() if purpose == "encryption" else None
    with connect_staging() as conn:
        retire_local_key(conn, key_id, purpose=purpose, key_file=key_file, crypto=crypto, actor=cli_actor())
    click.echo(f"{purpose}: key {key_id} retired from {key_file.path}; nothing uses it")
    if _env_overrides(purpose):
        click.echo(
            f"note: ${ENV_VAR} holds a {purpose} ring; remove {key_id} there (and in the secrets backend)."
        )
