"""The Mailchimp connector: donors as members of one audience, through the delivery engine.

Entity ``member`` (record key: the donor id; remote id: the subscriber hash, the MD5 of the
lower-cased address), pushed by operation:

``upsert`` / ``create`` / ``update``
    Up to :data:`~.settings.SUBSCRIBE_MAX_MEMBERS` records: one batch subscribe
    (``POST /lists/{id}``, ``update_existing: false``) creates the members Mailchimp does not
    hold, each with the ``status_if_new`` compiled from consent, its merge fields, GDPR
    permissions and tags. Mailchimp answers ``ERROR_CONTACT_EXISTS`` for the others, which are
    then updated one by one with ``PUT …/members/{hash}`` carrying ``status_if_new`` only (plus a
    tags call when tags are mapped), in parallel within the connection limit: an existing
    member's status is never sent, so an unsubscribed, cleaned or archived member stays so.
    Above the connection's ``batches_threshold`` due records, the same PUTs and tag updates go
    through ``/batches`` (asynchronous, polled, results read from the archive).
``archive`` (the mapping's mirror action: the donor may no longer receive email)
    ``unsubscribe`` (default): ``PATCH`` status ``unsubscribed``; ``archive``: Mailchimp's archive
    (``DELETE``). A member Mailchimp no longer holds, or already keeps out, counts as done.
``delete``
    Permanent delete (``actions/delete-permanent``): Mailchimp will refuse the address for good.
    Erasure uses it (:mod:`donor_sync.privacy.erasers.mailchimp`); a mapping should not.

Entity ``journey_trigger`` (customer-journey API triggers) goes to
``journey_triggers.push_journey_triggers`` when that module is installed, after the members.

Per-member refusals become failed :class:`RecordResult` values with a class (a member in
compliance state or a forgotten address: ``consent_blocked``; invalid merge fields or address:
``validation``); a call refused as a whole raises :class:`BatchRejectedError` (the engine splits
the batch), 401/403/404 and failures outlasting the retries :class:`DestinationUnavailableError`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from donor_sync.delivery.connectors.mailchimp import batches
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient
from donor_sync.delivery.connectors.mailchimp.members import (
    MemberBody,
    PayloadError,
    Verdict,
    classify_problem,
    classify_subscribe_error,
    member_body,
)
from donor_sync.delivery.connectors.mailchimp.settings import (
    REMOVE_BATCH,
    SUBSCRIBE_MAX_MEMBERS,
    MailchimpSettings,
)
from donor_sync.delivery.contracts import (
    DeliveryError,
    FailureClass,
    Operation,
    OutboundRecord,
    QuotaState,
    RecordResult,
)
from donor_sync.errors import ConfigError

log = logging.getLogger(__name__)

MAILCHIMP = "mailchimp"
MEMBER = "member"
JOURNEY_TRIGGER = "journey_trigger"
JOURNEY_MODULE = "donor_sync.delivery.connectors.mailchimp.journey_triggers"
WRITES = (Operation.UPSERT, Operation.CREATE, Operation.UPDATE)
#: Statuses of an existing member donor-sync never changes (it only ever unsubscribes).
KEPT_OUT = frozenset({"unsubscribed", "cleaned", "archived"})
_CONTACT_EXISTS = "ERROR_CONTACT_EXISTS"
#: Where the donor id goes on a member (the mapping's ``external_id``): merge field DONORID.
EXTERNAL_ID = "merge:DONORID"


def _failed(record: OutboundRecord, verdict: Verdict, *, http_status: int | None = None) -> RecordResult:
    return RecordResult(
        record.outbox_id,
        ok=False,
        error_class=verdict.error_class,
        error_code=verdict.code,
        message=verdict.message,
        http_status=http_status,
    )


def _unavailable(record: OutboundRecord, error: DeliveryError) -> RecordResult:
    return RecordResult(
        record.outbox_id,
        ok=False,
        error_class=error.error_class,
        error_code=error.error_code,
        message=str(error)[:500],
        http_status=error.http_status,
    )


def _kept_out(member: Any) -> Verdict | None:
    """Return why an existing member stays out of sends (unsubscribed, cleaned, archived), or None.

    donor-sync never changes such a member's status: the person must subscribe again through a
    Mailchimp form. The record is reported ``consent_blocked`` rather than landed, so the
    destination state never calls the member live and the pull-back never turns its unsubscribe
    into a new opt-out of a donor who opted in again in donor-sync.
    """
    status = member.get("status") if isinstance(member, dict) else None
    if status not in KEPT_OUT:
        return None
    return Verdict(
        FailureClass.CONSENT_BLOCKED,
        f"MEMBER_{str(status).upper()}",
        f"the member is {status} in Mailchimp and is never re-subscribed by donor-sync: the person "
        "must subscribe again through a Mailchimp form",
    )


def journeys_available() -> bool:
    """Whether the journey-trigger module is installed."""
    return importlib.util.find_spec(JOURNEY_MODULE) is not None


class MailchimpConnector:
    """One audience's member writes, as the push engine drives them (see the module docstring)."""

    destination = MAILCHIMP

    def __init__(
        self, client: MailchimpClient, settings: MailchimpSettings, *, external_id: str = EXTERNAL_ID
    ) -> None:
        self.client = client
        self.settings = settings
        #: The payload field the record key (donor id) is written to (the mapping's external_id).
        self.external_id = external_id
        self._permission_ids: dict[str, str] | None = (
            dict(settings.marketing_permissions) if settings.marketing_permissions else None
        )
        #: Members updated in place (not created) and addresses left out, for run metrics and tests.
        self.counts: dict[str, int] = {}

    # -- Connector protocol -----------------------------------------------------------------------
    def entity_order(self) -> Sequence[str]:
        """Members first; journey triggers (when installed) need the member to exist."""
        return [MEMBER, JOURNEY_TRIGGER] if journeys_available() else [MEMBER]

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Batch subscribe's 500, or a whole ``/batches`` job above the threshold; removals by 100."""
        if entity == MEMBER and operation in WRITES:
            if pending > self.settings.batches_threshold:
                return min(pending, self.settings.batches_max_operations)
            return SUBSCRIBE_MAX_MEMBERS
        return REMOVE_BATCH

    def quota(self) -> QuotaState | None:
        """Mailchimp reports no allowance (its limit is concurrency, not volume)."""
        return None

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """Write ``records`` and return one result per record, in order."""
        if not records:
            return []
        if entity == JOURNEY_TRIGGER and journeys_available():
            module = importlib.import_module(JOURNEY_MODULE)
            push_triggers: Callable[..., list[RecordResult]] = module.push_journey_triggers
            return push_triggers(self.client, records)
        if entity != MEMBER:
            raise ConfigError(f"mailchimp connector: unknown entity {entity!r} (known: {MEMBER})")
        if operation in WRITES:
            results = self._write(records)
        elif operation == Operation.ARCHIVE:
            results = self._parallel(records, self._archive_one)
        elif operation == Operation.DELETE:
            results = self._parallel(records, self._delete_one)
        else:
            verdict = Verdict(
                FailureClass.PERMANENT,
                "UNSUPPORTED_OPERATION",
                f"Mailchimp members do not support {operation}",
            )
            results = [_failed(r, verdict) for r in records]
        by_id = {r.outbox_id: r for r in results}
        return [by_id[r.outbox_id] for r in records]

    # -- setup ------------------------------------------------------------------------------------
    def ensure_merge_fields(self, specs: Mapping[str, str]) -> list[str]:
        """Create the merge fields ``{tag: type}`` the audience lacks; return the tags created.

        :raises ConfigError: a merge field exists with another type (naming the tag).
        """
        body = self.client.get(f"/lists/{self.settings.list_id}/merge-fields", params={"count": 1000}) or {}
        existing = {str(f["tag"]).upper(): str(f["type"]) for f in body.get("merge_fields", [])}
        created: list[str] = []
        for tag, kind in sorted(specs.items()):
            have = existing.get(tag.upper())
            if have is None:
                self.client.request(
                    "POST",
                    f"/lists/{self.settings.list_id}/merge-fields",
                    json={"tag": tag.upper(), "name": tag.title(), "type": kind, "required": False},
                )
                created.append(tag.upper())
            elif have != kind and not (kind == "text" and have in ("text", "dropdown", "radio", "phone")):
                raise ConfigError(
                    f"mailchimp audience {self.settings.list_id}: merge field {tag} is {have!r}, "
                    f"the mapping (include/mappings/destinations/mailchimp.yaml) sends {kind!r}"
                )
        if created:
            log.info("created Mailchimp merge fields %s", ", ".join(created))
        return created

    def permission_ids(self) -> dict[str, str]:
        """Return the audience's GDPR permission ids by text (connection extra, else read from a member)."""
        if self._permission_ids is None:
            body = self.client.get(
                f"/lists/{self.settings.list_id}/members",
                params={"count": 1, "fields": "members.marketing_permissions"},
            )
            found: dict[str, str] = {}
            for member in (body or {}).get("members", []):
                for permission in member.get("marketing_permissions") or []:
                    found[str(permission.get("text"))] = str(permission.get("marketing_permission_id"))
            if not found:
                log.warning(
                    "Mailchimp audience %s: no marketing permission ids known (set the connection's "
                    "marketing_permissions extra); permissions are left out until one is",
                    self.settings.list_id,
                )
                return {}
            self._permission_ids = found
        return self._permission_ids

    # -- writes -----------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _bodies(
        self, records: Sequence[OutboundRecord]
    ) -> tuple[list[tuple[OutboundRecord, MemberBody]], list[RecordResult]]:
        good: list[tuple[OutboundRecord, MemberBody]] = []
        bad: list[RecordResult] = []
        for record in records:
            try:
                body = member_body({**record.payload, self.external_id: record.record_key})
            except PayloadError as exc:
                bad.append(_failed(record, Verdict(FailureClass.VALIDATION, "INVALID_PAYLOAD", str(exc))))
                continue
            if body.incomplete_addresses:
                self._count("incomplete_addresses_left_out")
            good.append((record, body))
        return good, bad

    def _write(self, records: Sequence[OutboundRecord]) -> list[RecordResult]:
        good, results = self._bodies(records)
        permissions = self.permission_ids() if any(b.permissions for _, b in good) else {}
        if len(good) > SUBSCRIBE_MAX_MEMBERS:
            return results + self._via_batches(good, permissions)
        return results + self._via_subscribe(good, permissions)

    def _via_subscribe(
        self, items: Sequence[tuple[OutboundRecord, MemberBody]], permissions: Mapping[str, str]
    ) -> list[RecordResult]:
        first: dict[str, tuple[OutboundRecord, MemberBody]] = {}
        later: list[tuple[OutboundRecord, MemberBody]] = []
        for record, body in items:
            if body.hash in first or not body.status_if_new:
                later.append((record, body))  # a second donor of one address; or update only
            else:
                first[body.hash] = (record, body)
        results: list[RecordResult] = []
        if first:
            reply = (
                self.client.request(
                    "POST",
                    f"/lists/{self.settings.list_id}",
                    json={
                        "members": [b.subscribe_body(permissions) for _, b in first.values()],
                        "update_existing": False,
                    },
                ).body
                or {}
            )
            created = {str(m.get("id") or "") for m in reply.get("new_members", []) if isinstance(m, dict)}
            errors: dict[str, Mapping[str, Any]] = {}
            for error in reply.get("errors", []):
                if isinstance(error, dict) and error.get("email_address"):
                    errors[member_body({"email_address": error["email_address"]}).hash] = error
            for member_hash, (record, body) in first.items():
                error = errors.get(member_hash)
                if member_hash in created:
                    results.append(
                        RecordResult(record.outbox_id, ok=True, remote_id=member_hash, created=True)
                    )
                    self._count("members_created")
                elif error is not None and error.get("error_code") == _CONTACT_EXISTS:
                    later.append((record, body))
                elif error is not None:
                    results.append(_failed(record, classify_subscribe_error(error)))
                else:
                    later.append((record, body))  # neither created nor refused: update it by PUT
        return results + self._parallel_items(later, self._update_one(permissions))

    def _update_one(
        self, permissions: Mapping[str, str]
    ) -> Callable[[OutboundRecord, MemberBody], RecordResult]:
        list_id = self.settings.list_id

        def update(record: OutboundRecord, body: MemberBody) -> RecordResult:
            path = f"/lists/{list_id}/members/{body.hash}"
            reply = self.client.request("PUT", path, json=body.put_body(permissions), accept=(400,))
            if reply.status >= 400:
                return _failed(record, classify_problem(reply.status, reply.body), http_status=reply.status)
            kept_out = _kept_out(reply.body)
            if kept_out is not None:
                return _failed(record, kept_out)
            tags = body.tags_body()
            if tags is not None:
                tagged = self.client.request("POST", f"{path}/tags", json=tags, accept=(400, 404))
                if tagged.status >= 400:
                    verdict = classify_problem(tagged.status, tagged.body)
                    return _failed(record, verdict, http_status=tagged.status)
            self._count("members_updated")
            return RecordResult(record.outbox_id, ok=True, remote_id=body.hash, created=False)

        return update

    def _via_batches(
        self, items: Sequence[tuple[OutboundRecord, MemberBody]], permissions: Mapping[str, str]
    ) -> list[RecordResult]:
        list_id = self.settings.list_id
        operations: list[batches.Operation] = []
        for record, body in items:
            path = f"/lists/{list_id}/members/{body.hash}"
            operations.append(
                batches.Operation(f"{record.outbox_id}.put", "PUT", path, body.put_body(permissions))
            )
            tags = body.tags_body()
            if tags is not None:
                operations.append(batches.Operation(f"{record.outbox_id}.tags", "POST", f"{path}/tags", tags))
        answers = batches.run_batch(
            self.client,
            operations,
            poll_s=self.settings.batch_poll_s,
            timeout_s=self.settings.batch_timeout_s,
        )
        results: list[RecordResult] = []
        for record, body in items:
            put = answers.get(f"{record.outbox_id}.put")
            tag_answer = answers.get(f"{record.outbox_id}.tags")
            if put is None or (body.tags_body() is not None and tag_answer is None):
                verdict = Verdict(
                    FailureClass.TRANSIENT, "MISSING_FROM_RESPONSE", "the batch results did not include it"
                )
                results.append(_failed(record, verdict))
            elif put.status >= 400:
                results.append(
                    _failed(record, classify_problem(put.status, put.body), http_status=put.status)
                )
            elif _kept_out(put.body) is not None:
                results.append(_failed(record, _kept_out(put.body)))  # type: ignore[arg-type]
            elif tag_answer is not None and tag_answer.status >= 400:
                verdict = classify_problem(tag_answer.status, tag_answer.body)
                if tag_answer.status == 404:  # operations of one batch may run in any order: try again
                    verdict = Verdict(
                        FailureClass.TRANSIENT, "TAGS_BEFORE_MEMBER", "tags ran before the member existed"
                    )
                results.append(_failed(record, verdict, http_status=tag_answer.status))
            else:
                results.append(RecordResult(record.outbox_id, ok=True, remote_id=body.hash))
        self._count("members_via_batches", len(items))
        return results

    # -- removals ---------------------------------------------------------------------------------
    def _member_hash(self, record: OutboundRecord) -> str | None:
        if record.remote_id:
            return record.remote_id
        email = record.payload.get("email_address") if record.payload else None
        return member_body({"email_address": email}).hash if isinstance(email, str) and email else None

    def _archive_one(self, record: OutboundRecord) -> RecordResult:
        member_hash = self._member_hash(record)
        if member_hash is None:
            return RecordResult(record.outbox_id, ok=True)  # never landed: nothing to take back
        path = f"/lists/{self.settings.list_id}/members/{member_hash}"
        if self.settings.mirror_archive == "archive":
            reply = self.client.request("DELETE", path, accept=(400, 404, 405))
            done = reply.status < 400 or reply.status in (404, 405)  # gone, or cleaned/pending
        else:
            reply = self.client.request("PATCH", path, json={"status": "unsubscribed"}, accept=(400, 404))
            title = reply.body.get("title") if isinstance(reply.body, dict) else None
            done = reply.status < 400 or reply.status == 404 or title == "Member In Compliance State"
        if not done:
            return _failed(record, classify_problem(reply.status, reply.body), http_status=reply.status)
        self._count(
            "members_archived" if self.settings.mirror_archive == "archive" else "members_unsubscribed"
        )
        return RecordResult(record.outbox_id, ok=True, remote_id=member_hash)

    def _delete_one(self, record: OutboundRecord) -> RecordResult:
        member_hash = self._member_hash(record)
        if member_hash is None:
            return RecordResult(record.outbox_id, ok=True)
        path = f"/lists/{self.settings.list_id}/members/{member_hash}/actions/delete-permanent"
        reply = self.client.request("POST", path, accept=(404,))
        self._count("members_deleted_permanently", int(reply.status != 404))
        return RecordResult(record.outbox_id, ok=True, remote_id=member_hash)

    # -- concurrency ------------------------------------------------------------------------------
    def _parallel(
        self, records: Sequence[OutboundRecord], call: Callable[[OutboundRecord], RecordResult]
    ) -> list[RecordResult]:
        def guarded(record: OutboundRecord) -> RecordResult:
            try:
                return call(record)
            except DeliveryError as error:
                return _unavailable(record, error)

        return self._map(guarded, records)

    def _parallel_items(
        self,
        items: Sequence[tuple[OutboundRecord, MemberBody]],
        call: Callable[[OutboundRecord, MemberBody], RecordResult],
    ) -> list[RecordResult]:
        def guarded(item: tuple[OutboundRecord, MemberBody]) -> RecordResult:
            try:
                return call(*item)
            except DeliveryError as error:
                return _unavailable(item[0], error)

        return self._map(guarded, items)

    def _map(self, call: Callable[[Any], RecordResult], items: Iterable[Any]) -> list[RecordResult]:
        batch = list(items)
        if len(batch) <= 1:
            return [call(i) for i in batch]
        with ThreadPoolExecutor(max_workers=min(self.settings.max_connections, len(batch))) as pool:
            return list(pool.map(call, batch))


def connector_from_connection(
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    *,
    retry: Callable[[], Any] | None = None,
) -> MailchimpConnector:
    """Return the connector of a ``mailchimp`` connection's fields (host, password = API key, extras).

    :raises ConfigError: a missing key or ``list_id``, or an extra out of range (naming it).
    """
    import threading

    from donor_sync.delivery.connectors.mailchimp.client import client_from_connection
    from donor_sync.delivery.connectors.mailchimp.settings import settings_from_extra

    settings = settings_from_extra(extra)
    client = (
        client_from_connection(host, password, extra, retry=retry)
        if retry is not None
        else client_from_connection(host, password, extra)
    )
    client.slots = threading.BoundedSemaphore(settings.max_connections)
    return MailchimpConnector(client, settings)
