"""Helpers for the Salesforce connector tests: PEM helpers, outbox records and views of the
emulator's state."""

from __future__ import annotations

from typing import Any

import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from donor_sync.delivery.connectors.salesforce.client import default_retry
from donor_sync.delivery.contracts import Operation, OutboundRecord, RecordRef
from sandbox.common.runner import Running
from sandbox.emulators.salesforce import SalesforceEmulator

CLIENT_ID = "donor-sync-consumer-key"
CLIENT_SECRET = "donor-sync-consumer-secret"
USER = "integration@donor-sync.test"


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def fast_retry(attempts: int = 3) -> tenacity.Retrying:
    return default_retry(attempts=attempts, wait=tenacity.wait_none())


def record(
    outbox_id: int,
    key: str,
    payload: dict[str, Any],
    *,
    entity: str = "contact",
    operation: Operation = Operation.UPSERT,
    attempts: int = 0,
    remote_id: str | None = None,
    set_if_empty: frozenset[str] = frozenset(),
    remote_refs: dict[RecordRef, str] | None = None,
) -> OutboundRecord:
    return OutboundRecord(
        outbox_id=outbox_id,
        entity=entity,
        record_key=key,
        operation=operation,
        payload=payload,
        attempts=attempts,
        remote_id=remote_id,
        set_if_empty=set_if_empty,
        remote_refs=remote_refs or {},
    )


def salesforce(sf: Running) -> SalesforceEmulator:
    """The running emulator, typed as the Salesforce one."""
    assert isinstance(sf.emulator, SalesforceEmulator)
    return sf.emulator


def rows(sf: Running, sobject: str) -> list[dict[str, Any]]:
    """The emulator's live records of ``sobject`` (not those in its recycle bin)."""
    emulator = salesforce(sf)
    with emulator.lock:
        return [dict(r) for r in emulator.store.tables[sobject].values()]


def requests_to(sf: Running, pattern: str, method: str | None = None) -> list[dict[str, Any]]:
    """Requests the emulator served whose path contains ``pattern``."""
    return [
        r
        for r in sf.emulator.request_log
        if pattern in r["path"] and (method is None or r["method"] == method)
    ]
