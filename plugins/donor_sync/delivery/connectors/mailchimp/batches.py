"""Mailchimp ``/batches``: submit operations, poll the job, read its results archive.

``POST /batches`` takes operations (method, path, JSON body as a string, an ``operation_id``)
and runs them asynchronously: ``pending → preprocessing → started → finalizing → finished``.
The results are a gzipped tar of JSON arrays (``{status_code, operation_id, response}``) at
``response_body_url``, a signed storage URL fetched without the API key. A job that outlasts
the timeout is stopped (``DELETE /batches/{id}``) and its records are retried on the ladder:
every operation donor-sync sends is an idempotent PUT or tag update.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient
from donor_sync.delivery.contracts import DestinationUnavailableError, FailureClass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """One operation of a batch job."""

    operation_id: str
    method: str
    path: str
    body: Any = None

    def as_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"method": self.method, "path": self.path, "operation_id": self.operation_id}
        if self.body is not None:
            item["body"] = json.dumps(self.body)
        return item


@dataclass(frozen=True)
class OperationResult:
    """What Mailchimp answered to one operation."""

    status: int
    body: Any


def read_archive(data: bytes) -> dict[str, OperationResult]:
    """Return the results of a results archive by operation id."""
    out: dict[str, OperationResult] = {}
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            for item in json.loads(handle.read() or b"[]"):
                if not isinstance(item, dict) or item.get("operation_id") is None:
                    continue
                text = item.get("response") or ""
                try:
                    body = json.loads(text) if isinstance(text, str) and text.strip() else text or None
                except ValueError:
                    body = None
                out[str(item["operation_id"])] = OperationResult(int(item.get("status_code") or 0), body)
    return out


def run_batch(
    client: MailchimpClient,
    operations: Sequence[Operation],
    *,
    poll_s: float,
    timeout_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, OperationResult]:
    """Run ``operations`` as one batch job and return the results by operation id.

    :raises DestinationUnavailableError: the job did not finish in time (it is stopped), or
        Mailchimp refused it (e.g. 500 pending batches: rate limited).
    """
    if not operations:
        return {}
    job = client.request("POST", "/batches", json={"operations": [o.as_json() for o in operations]}).body
    batch_id = str((job or {}).get("id") or "")
    if not batch_id:
        raise DestinationUnavailableError(
            "Mailchimp POST /batches answered without a batch id",
            error_class=FailureClass.TRANSIENT,
            error_code="MALFORMED_RESPONSE",
        )
    log.info("Mailchimp batch %s submitted with %d operations", batch_id, len(operations))
    started = clock()
    while str(job.get("status")) != "finished":
        if clock() - started > timeout_s:
            client.request("DELETE", f"/batches/{batch_id}", accept=(404,))
            raise DestinationUnavailableError(
                f"Mailchimp batch {batch_id} did not finish within {timeout_s:.0f} s (stopped)",
                error_class=FailureClass.TRANSIENT,
                error_code="BATCH_TIMEOUT",
            )
        sleep(poll_s)
        job = client.get(f"/batches/{batch_id}") or {}
    url = str(job.get("response_body_url") or "")
    log.info(
        "Mailchimp batch %s finished: %s operations, %s errored",
        batch_id,
        job.get("finished_operations"),
        job.get("errored_operations"),
    )
    if not url:
        raise DestinationUnavailableError(
            f"Mailchimp batch {batch_id} finished without a results URL",
            error_class=FailureClass.TRANSIENT,
            error_code="MISSING_RESULTS",
        )
    return read_archive(client.download(url))
