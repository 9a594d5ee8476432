"""Helpers for the Salesforce connector tests: an emulator with the Collections calls the sandbox
lacks, PEM helpers, outbox records and views of the emulator's state.

The sandbox emulator serves Collections *upsert* but not the sibling Collections calls the
connector also makes (``POST``/``PATCH``/``DELETE /composite/sobjects``: create, update by Id,
delete). :class:`NpspEmulator` adds them on top of the emulator's own DML rules until the sandbox
has them.
"""

from __future__ import annotations

from typing import Any

import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from donor_sync.delivery.connectors.salesforce.client import default_retry
from donor_sync.delivery.contracts import Operation, OutboundRecord, RecordRef
from sandbox.common.runner import Running
from sandbox.emulators.salesforce import SalesforceEmulator, dml
from sandbox.emulators.salesforce.objects import SOBJECTS, SfError, find_sobject

CLIENT_ID = "donor-sync-consumer-key"
CLIENT_SECRET = "donor-sync-consumer-secret"
USER = "integration@donor-sync.test"
PREFIX = "/services/data/v{version}/composite/sobjects"


class NpspEmulator(SalesforceEmulator):
    """The sandbox Salesforce emulator plus Collections create, update by Id and delete."""

    def routes(self, app: FastAPI) -> None:
        super().routes(app)

        def save(records: Any, update: bool) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            for record in records if isinstance(records, list) else []:
                try:
                    obj = find_sobject(str((record.get("attributes") or {}).get("type", "")))
                    if obj is None:
                        raise SfError("INVALID_TYPE", "sObject type is missing or unknown")
                    body = {k: v for k, v in record.items() if k != "attributes"}
                    if update:
                        record_id = str(body.pop("Id", ""))
                        dml.update(self.store, obj, record_id, body, self.lock_policy())
                    else:
                        if "Id" in body:
                            raise SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
                        record_id, _ = dml.insert(self.store, obj, body)
                    results.append({"id": record_id, "success": True, "errors": []})
                except SfError as exc:
                    results.append({"success": False, "errors": [exc.as_collection()]})
            return results

        @app.post(PREFIX)
        async def create(version: str, request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                return JSONResponse(save(body.get("records"), update=False))

        @app.patch(PREFIX)
        async def update(version: str, request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                return JSONResponse(save(body.get("records"), update=True))

        @app.delete(PREFIX)
        def delete(version: str, ids: str) -> JSONResponse:
            results: list[dict[str, Any]] = []
            with self.lock:
                for record_id in ids.split(","):
                    obj = next((o for o in SOBJECTS.values() if record_id in self.store.tables[o.name]), None)
                    try:
                        dml.delete(self.store, obj or SOBJECTS["Account"], record_id)
                        results.append({"id": record_id, "success": True, "errors": []})
                    except SfError as exc:
                        results.append({"id": record_id, "success": False, "errors": [exc.as_collection()]})
            return JSONResponse(results)


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


def rows(sf: Running, sobject: str) -> list[dict[str, Any]]:
    """The emulator's stored records of ``sobject``."""
    with sf.emulator.lock:
        return [dict(r) for r in sf.emulator.store.tables[sobject].values()]


def requests_to(sf: Running, pattern: str, method: str | None = None) -> list[dict[str, Any]]:
    """Requests the emulator served whose path contains ``pattern``."""
    return [
        r
        for r in sf.emulator.request_log
        if pattern in r["path"] and (method is None or r["method"] == method)
    ]
