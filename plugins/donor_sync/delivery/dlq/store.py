"""The dead-letter queue: list, show, edit, replay and discard records a destination would not take.

A dead letter holds the payload as last attempted, the error, its class and the remediation.
After a fix, a person (``donor-sync dlq``) or the ``dlq_replay`` DAG:

* **edits** it: a corrected payload is kept beside the original (``edited_payload``);
* **replays** it: the payload -- the edited one when there is one -- goes back to the outbox as a
  new pending row, and the letter is marked ``replayed`` or ``edited`` with that row's id;
* **discards** it, with a note saying why.

Every action is idempotent (replaying a replayed letter does nothing and says so) and writes
``sync.audit_log`` (``dlq.replayed``, ``dlq.edited``, ``dlq.discarded``; object type
``dead_letter``; details hold ids, classes, field names and counts, never values). A replay never
bypasses privacy: letters the consent gate blocked, and letters of erased or merged-away donors,
are refused (the next run queues what the gate allows).

Functions work in the caller's transaction; the caller commits.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.delivery.contracts import EVENT_SUBSCRIBERS, FailureClass
from donor_sync.errors import DonorSyncError
from donor_sync.events.settings import DESTINATION_PREFIX
from donor_sync.privacy.crypto.fields import open_value, seal

log = logging.getLogger(__name__)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
#: entities whose record key is a donor id
DONOR_KEYED_ENTITIES = frozenset({"contact"})

STATUSES = ("open", "replayed", "edited", "discarded")
ACTIONS = ("replay", "edit", "discard")


class DeadLetterError(DonorSyncError):
    """A dead-letter action cannot be done (unknown letter, refused replay, invalid payload...)."""


@dataclass(frozen=True)
class DeadLetter:
    """One ``sync.dead_letters`` row. ``payload`` holds donor data: show it, never log it."""

    dead_letter_id: int
    outbox_id: int | None
    destination: str
    entity: str
    record_key: str
    donor_id: UUID | None
    operation: str
    payload: dict[str, Any]
    edited_payload: dict[str, Any] | None
    error_class: str
    error_code: str | None
    message: str | None
    remediation: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str
    replay_outbox_id: int | None
    resolved_by: str | None
    resolved_at: datetime | None
    note: str | None

    @property
    def replay_payload(self) -> dict[str, Any]:
        """The payload a replay sends: the edited one when there is one."""
        return self.edited_payload if self.edited_payload is not None else self.payload


@dataclass(frozen=True)
class ActionResult:
    """What one action did to one letter; ``changed`` is False when there was nothing to do."""

    dead_letter_id: int
    action: str
    changed: bool
    status: str
    message: str
    replay_outbox_id: int | None = None


@dataclass
class SelectionReport:
    """What :func:`replay_selection` did to the letters it selected."""

    action: str
    results: list[ActionResult] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)

    @property
    def selected(self) -> int:
        """Letters the selection matched."""
        return len(self.results) + len(self.refused)

    @property
    def changed(self) -> int:
        """Letters the action changed."""
        return sum(1 for r in self.results if r.changed)

    def summary(self) -> str:
        """Return a one-line account (counts only)."""
        done = {"replay": "replayed", "edit": "edited and replayed", "discard": "discarded"}[self.action]
        unchanged = len(self.results) - self.changed
        return (
            f"{self.selected} dead letter(s) selected: {self.changed} {done}, {unchanged} already resolved, "
            f"{len(self.refused)} refused"
        )


#: encrypted at rest (include/mappings/privacy/encryption.yaml): sealed when written, opened when read
_PAYLOAD = "sync.dead_letters.payload"
_EDITED = "sync.dead_letters.edited_payload"
_COLUMNS = (
    "dead_letter_id, outbox_id, destination, entity, record_key, donor_id, operation, payload,"
    " edited_payload,"
    " error_class, error_code, message, remediation, attempts, first_failed_at, last_failed_at, status,"
    " replay_outbox_id, resolved_by, resolved_at, note"
)


def _letter(row: Sequence[Any]) -> DeadLetter:
    """Build a letter from a row of ``_COLUMNS``, opening its encrypted payloads (encryption.yaml)."""
    letter_id = row[0]
    values = list(row)
    values[7] = open_value(_PAYLOAD, values[7], letter_id)
    values[8] = open_value(_EDITED, values[8], letter_id)
    return DeadLetter(*values)


def _filters(
    destination: str | None,
    error_class: str | None,
    statuses: Sequence[str] | None,
    ids: Sequence[int] | None,
) -> tuple[str, dict[str, Any]]:
    if error_class is not None and error_class not in {c.value for c in FailureClass}:
        raise DeadLetterError(
            f"unknown error class {error_class!r}; one of {', '.join(c.value for c in FailureClass)}"
        )
    unknown = sorted(set(statuses or ()) - set(STATUSES))
    if unknown:
        raise DeadLetterError(f"unknown status {', '.join(unknown)}; one of {', '.join(STATUSES)}")
    where = (
        "(%(destination)s::text IS NULL OR destination = %(destination)s"
        " OR (%(destination)s = %(subscribers)s AND starts_with(destination, %(prefix)s)))"
        " AND (%(error_class)s::text IS NULL OR error_class = %(error_class)s)"
        " AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s))"
        " AND (%(ids)s::bigint[] IS NULL OR dead_letter_id = ANY(%(ids)s))"
    )
    params = {
        "destination": destination,
        "subscribers": EVENT_SUBSCRIBERS,
        "prefix": DESTINATION_PREFIX,
        "error_class": error_class,
        "statuses": list(statuses) if statuses else None,
        "ids": list(ids) if ids else None,
    }
    return where, params


def list_dead_letters(
    conn: psycopg.Connection,
    *,
    destination: str | None = None,
    error_class: str | None = None,
    statuses: Sequence[str] | None = ("open",),
    ids: Sequence[int] | None = None,
    limit: int = 100,
) -> list[DeadLetter]:
    """Return dead letters, oldest failure first; open ones unless ``statuses`` says otherwise.

    :param destination: one destination, or ``webhooks``
        (:data:`~donor_sync.delivery.contracts.EVENT_SUBSCRIBERS`) for every event subscriber's
        (``webhook_<name>``).
    :param statuses: None or empty for every status.
    """
    where, params = _filters(destination, error_class, statuses, ids)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM sync.dead_letters WHERE {where}"
        " ORDER BY first_failed_at, dead_letter_id LIMIT %(limit)s",
        {**params, "limit": limit},
    ).fetchall()
    return [_letter(row) for row in rows]


def count_dead_letters(
    conn: psycopg.Connection,
    *,
    destination: str | None = None,
    error_class: str | None = None,
    statuses: Sequence[str] | None = ("open",),
) -> int:
    """Count dead letters matching the filters."""
    where, params = _filters(destination, error_class, statuses, None)
    row = conn.execute(f"SELECT count(*) FROM sync.dead_letters WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def get_dead_letter(conn: psycopg.Connection, dead_letter_id: int, *, for_update: bool = False) -> DeadLetter:
    """Return one dead letter.

    :raises DeadLetterError: when there is none with that id.
    """
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM sync.dead_letters WHERE dead_letter_id = %s{lock}", (dead_letter_id,)
    ).fetchone()
    if row is None:
        raise DeadLetterError(f"no dead letter {dead_letter_id}")
    return _letter(row)


def _audit(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    letter: DeadLetter,
    details: Mapping[str, Any],
    run_id: UUID | None,
) -> None:
    """Append one DLQ action to sync.audit_log (ids, classes, field names and counts only)."""
    base = {
        "dead_letter_id": letter.dead_letter_id,
        "destination": letter.destination,
        "entity": letter.entity,
        "error_class": letter.error_class,
        "outbox_id": letter.outbox_id,
    }
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details, run_id)"
        " VALUES (%s, %s, 'dead_letter', %s, %s::jsonb, %s)",
        (actor, action, str(letter.dead_letter_id), json.dumps({**base, **details}, default=str), run_id),
    )


def _already(letter: DeadLetter, action: str) -> ActionResult:
    where = f" as outbox row {letter.replay_outbox_id}" if letter.replay_outbox_id else ""
    return ActionResult(
        letter.dead_letter_id,
        action,
        changed=False,
        status=letter.status,
        message=f"dead letter {letter.dead_letter_id} was already {letter.status}{where} by "
        f"{letter.resolved_by}; nothing done",
        replay_outbox_id=letter.replay_outbox_id,
    )


# -- records the mapping could not render ---------------------------------------------------------

#: error_code of a record the mapping engine could not render (a bad value, a missing required one)
RENDER_ERROR = "RENDER_ERROR"


def dead_letter_render_errors(
    conn: psycopg.Connection, destination: str, errors: Sequence[Any], *, run_id: UUID | None = None
) -> int:
    """Record each record the mapping could not render as an open dead letter (class validation).

    So a record that cannot reach a destination is accounted for where a person looks for such
    records, not only in a log. One open letter per record: a record that fails again keeps its
    letter (``last_failed_at`` moves). ``errors`` are mapping RenderErrors (destination, entity,
    record_key, field; messages without values). Not committed. Returns letters opened.
    """
    opened = 0
    for error in errors:
        entity = getattr(error, "entity", None)
        key = getattr(error, "record_key", None)
        if not entity or not key:
            continue
        donor = key if _UUID.match(key) and entity in DONOR_KEYED_ENTITIES else None
        row = conn.execute(
            "INSERT INTO sync.dead_letters (destination, entity, record_key, donor_id, operation, payload,"
            " payload_sha256, error_class, error_code, message, remediation, attempts, first_failed_at,"
            " last_failed_at)"
            " VALUES (%s, %s, %s, %s, 'upsert', '{}'::jsonb, core.jsonb_sha256('{}'::jsonb), 'validation',"
            " %s, %s, %s, 0, now(), now())"
            " ON CONFLICT (destination, entity, record_key) WHERE status = 'open'"
            " DO UPDATE SET last_failed_at = now(), message = excluded.message"
            " RETURNING (xmax = 0)",
            [
                destination,
                entity,
                key,
                donor,
                RENDER_ERROR,
                str(error)[:500],
                FailureClass.VALIDATION.remediation,
            ],
        ).fetchone()
        opened += bool(row and row[0])
    if opened and run_id is not None:
        log.info("%s records of %s could not be rendered (dead letters)", opened, destination)
    return opened


# -- replay ---------------------------------------------------------------------------------------


def _refusal(conn: psycopg.Connection, letter: DeadLetter) -> str | None:  # noqa: PLR0911 - one reason each
    """Return why ``letter`` must not be replayed, or None."""
    if letter.error_code == RENDER_ERROR:
        return (
            f"dead letter {letter.dead_letter_id} could not be rendered by the mapping (no payload to "
            "send). Fix the mapping or the donor's data: the next run that renders the record queues it "
            "and closes this letter (after a mapping fix, `donor-sync outbox queue --full` re-renders all)"
        )
    if letter.error_class == FailureClass.CONSENT_BLOCKED.value:
        return (
            f"dead letter {letter.dead_letter_id} was blocked by consent or suppression; a replay would "
            "bypass the consent gate. Discard it with a note; if the donor's consent changed, the next "
            "run queues the record through the gate"
        )
    if letter.donor_id is None:
        return None
    row = conn.execute(
        "SELECT erased_at IS NOT NULL, merged_into FROM core.donors WHERE donor_id = %s", (letter.donor_id,)
    ).fetchone()
    if row is None:
        return None
    erased, merged_into = row
    if erased:
        return f"dead letter {letter.dead_letter_id} belongs to an erased donor; discard it"
    if merged_into is not None:
        return (
            f"dead letter {letter.dead_letter_id} belongs to donor {letter.donor_id}, merged into "
            f"{merged_into}; the survivor's record is queued by the next run. Discard this letter"
        )
    return None


def replay(
    conn: psycopg.Connection,
    dead_letter_id: int,
    *,
    actor: str,
    note: str | None = None,
    run_id: UUID | None = None,
) -> ActionResult:
    """Queue the letter's payload (or its edited payload) again as a pending outbox row.

    When a newer version of the record is already pending, that row is reused: a plain replay
    leaves its newer payload alone; an edited replay puts the correction in it.

    :raises DeadLetterError: unknown letter, or a replay privacy forbids.
    """
    letter = get_dead_letter(conn, dead_letter_id, for_update=True)
    if letter.status != "open":
        return _already(letter, "replay")
    refusal = _refusal(conn, letter)
    if refusal:
        raise DeadLetterError(refusal)
    edited = letter.edited_payload is not None
    payload = json.dumps(letter.replay_payload)
    row = conn.execute(
        """
        INSERT INTO sync.outbox (destination, entity, record_key, donor_id, operation, payload,
                                 payload_sha256,
                                 priority, depends_on, set_if_empty, run_id)
        SELECT %(destination)s, %(entity)s, %(record_key)s, %(donor_id)s, %(operation)s, %(payload)s::jsonb,
               core.jsonb_sha256(%(payload)s::jsonb),
               COALESCE(o.priority, 100), COALESCE(o.depends_on, '[]'::jsonb), COALESCE(o.set_if_empty, '{}'),
               %(run_id)s
        FROM (SELECT 1) AS one
        LEFT JOIN sync.outbox o ON o.outbox_id = %(outbox_id)s
        ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO NOTHING
        RETURNING outbox_id
        """,
        {
            "destination": letter.destination,
            "entity": letter.entity,
            "record_key": letter.record_key,
            "donor_id": letter.donor_id,
            "operation": letter.operation,
            "payload": payload,
            "run_id": run_id,
            "outbox_id": letter.outbox_id,
        },
    ).fetchone()
    reused = row is None
    if row is None:
        row = conn.execute(
            "SELECT outbox_id FROM sync.outbox WHERE destination = %s AND entity = %s AND record_key = %s"
            " AND state = 'pending' FOR UPDATE",
            (letter.destination, letter.entity, letter.record_key),
        ).fetchone()
        if row is None:
            raise DeadLetterError(f"dead letter {dead_letter_id}: could not queue it again; try once more")
        if edited:
            conn.execute(
                "UPDATE sync.outbox SET payload = %s::jsonb, payload_sha256 = core.jsonb_sha256(%s::jsonb),"
                " operation = %s, next_attempt_at = now() WHERE outbox_id = %s",
                (payload, payload, letter.operation, row[0]),
            )
    outbox_id: int = row[0]
    status = "edited" if edited else "replayed"
    conn.execute(
        "UPDATE sync.dead_letters SET status = %s, replay_outbox_id = %s, resolved_by = %s,"
        " resolved_at = now(),"
        " note = COALESCE(%s, note) WHERE dead_letter_id = %s",
        (status, outbox_id, actor, note, dead_letter_id),
    )
    _audit(
        conn,
        actor=actor,
        action="dlq.replayed",
        letter=letter,
        details={"replay_outbox_id": outbox_id, "edited": edited, "joined_pending_row": reused},
        run_id=run_id,
    )
    how = "its edited payload" if edited else "its payload"
    joined = " (joined the newer version already queued)" if reused else ""
    return ActionResult(
        dead_letter_id,
        "replay",
        changed=True,
        status=status,
        message=f"dead letter {dead_letter_id} replayed with {how} as outbox row {outbox_id}{joined}",
        replay_outbox_id=outbox_id,
    )


# -- edit -----------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """Read a command-line value: JSON when it parses (numbers, true, null, "quoted", {...}), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_edits(payload: Mapping[str, Any], assignments: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``payload`` with ``assignments`` set; a dotted path sets a nested field.

    ``properties.email`` sets ``payload["properties"]["email"]`` (HubSpot's shape), creating the
    object when missing. ``payload`` is not changed.

    :raises DeadLetterError: when a path runs through a value that is not an object.
    """
    result = copy.deepcopy(dict(payload))
    for path, value in assignments.items():
        parts = [path] if path in result else path.split(".")
        if not all(parts):
            raise DeadLetterError(f"invalid field path {path!r}")
        target: dict[str, Any] = result
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise DeadLetterError(f"cannot set {path!r}: {part!r} is not an object in the payload")
            target = nested
        target[parts[-1]] = value
    return result


def _changed_fields(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Return the dotted names of fields that differ (names only, for the audit log)."""
    if isinstance(before, dict) and isinstance(after, dict):
        names: list[str] = []
        for key in sorted(set(before) | set(after)):
            names.extend(_changed_fields(before.get(key), after.get(key), f"{prefix}{key}."))
        return names
    return [] if before == after else [prefix.rstrip(".")]


def edit(
    conn: psycopg.Connection,
    dead_letter_id: int,
    payload: Any,
    *,
    actor: str,
    note: str | None = None,
    run_id: UUID | None = None,
) -> ActionResult:
    """Keep a corrected payload for an open letter (the next replay sends it).

    :raises DeadLetterError: unknown or resolved letter, or a payload that is not a JSON object.
    """
    if not isinstance(payload, dict):
        raise DeadLetterError(f"an edited payload must be a JSON object, got {type(payload).__name__}")
    try:
        normalized = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise DeadLetterError(f"the edited payload is not valid JSON: {exc}") from exc
    letter = get_dead_letter(conn, dead_letter_id, for_update=True)
    if letter.status != "open":
        raise DeadLetterError(
            f"dead letter {dead_letter_id} is {letter.status}; only open letters can be edited"
            + (
                f" (it was queued again as outbox row {letter.replay_outbox_id})"
                if letter.replay_outbox_id
                else ""
            )
        )
    current = letter.replay_payload
    if normalized == current:
        return ActionResult(
            dead_letter_id, "edit", False, letter.status, f"dead letter {dead_letter_id}: no change"
        )
    fields_changed = _changed_fields(letter.payload, normalized)
    conn.execute(
        "UPDATE sync.dead_letters SET edited_payload = %s::jsonb, note = COALESCE(%s, note)"
        " WHERE dead_letter_id = %s",
        (json.dumps(seal(_EDITED, normalized, dead_letter_id)), note, dead_letter_id),
    )
    _audit(
        conn,
        actor=actor,
        action="dlq.edited",
        letter=letter,
        details={"fields": fields_changed, "field_count": len(fields_changed)},
        run_id=run_id,
    )
    return ActionResult(
        dead_letter_id,
        "edit",
        True,
        letter.status,
        f"dead letter {dead_letter_id}: payload edited ({', '.join(fields_changed) or 'no field'} "
        "differ from "
        "the original); replay it to send the correction",
    )


# -- discard --------------------------------------------------------------------------------------


def discard(
    conn: psycopg.Connection,
    dead_letter_id: int,
    *,
    actor: str,
    note: str,
    run_id: UUID | None = None,
) -> ActionResult:
    """Drop a letter on purpose, saying why.

    :raises DeadLetterError: unknown letter, or no note.
    """
    if not note or not note.strip():
        raise DeadLetterError("discarding a dead letter needs a note saying why")
    letter = get_dead_letter(conn, dead_letter_id, for_update=True)
    if letter.status != "open":
        return _already(letter, "discard")
    conn.execute(
        "UPDATE sync.dead_letters SET status = 'discarded', resolved_by = %s, resolved_at = now(), note = %s"
        " WHERE dead_letter_id = %s",
        (actor, note.strip(), dead_letter_id),
    )
    _audit(conn, actor=actor, action="dlq.discarded", letter=letter, details={}, run_id=run_id)
    return ActionResult(
        dead_letter_id, "discard", True, "discarded", f"dead letter {dead_letter_id} discarded"
    )


# -- selections (dlq_replay DAG, CLI) -------------------------------------------------------------


def replay_selection(
    conn: psycopg.Connection,
    *,
    destination: str | None = None,
    error_class: str | None = None,
    ids: Sequence[int] | None = None,
    action: str = "replay",
    actor: str,
    note: str | None = None,
    edits: Mapping[str, Any] | None = None,
    limit: int = 10_000,
    run_id: UUID | None = None,
) -> SelectionReport:
    """Replay, edit-and-replay or discard the letters chosen by destination, error class and ids.

    Without ``ids`` only open letters are selected; named ids are taken whatever their status, so
    the report says which were already resolved. A letter a replay must refuse is reported in
    ``refused`` and the others go on. The caller commits.

    :param destination: one destination, or ``webhooks`` for every event subscriber's
        (``webhook_<name>``), as :func:`list_dead_letters` takes it.
    :param action: ``replay``, ``edit`` (apply ``edits``, field path -> value, then replay) or
        ``discard`` (needs ``note``).
    :raises DeadLetterError: an unknown action, no selection at all, an edit without edits, a
        discard without a note.
    """
    if action not in ACTIONS:
        raise DeadLetterError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not destination and not ids:
        raise DeadLetterError("choose dead letters by destination (and error class) or by ids")
    if action == "edit" and not edits:
        raise DeadLetterError("an edit needs the fields to change")
    if action == "discard" and not (note and note.strip()):
        raise DeadLetterError("discarding dead letters needs a note saying why")
    statuses = None if ids else ("open",)
    letters = list_dead_letters(
        conn, destination=destination, error_class=error_class, statuses=statuses, ids=ids, limit=limit
    )
    missing = sorted(set(ids or ()) - {letter.dead_letter_id for letter in letters})
    report = SelectionReport(action)
    for dead_letter_id in missing:
        report.refused[dead_letter_id] = f"no dead letter {dead_letter_id}"
    for letter in letters:
        try:
            if action == "discard":
                report.results.append(
                    discard(conn, letter.dead_letter_id, actor=actor, note=note or "", run_id=run_id)
                )
                continue
            if action == "edit" and letter.status == "open" and edits:
                refusal = _refusal(conn, letter)
                if refusal:  # refuse before editing: an edit that cannot be sent helps nobody
                    raise DeadLetterError(refusal)
                corrected = apply_edits(letter.replay_payload, edits)
                edit(conn, letter.dead_letter_id, corrected, actor=actor, run_id=run_id)
            report.results.append(replay(conn, letter.dead_letter_id, actor=actor, note=note, run_id=run_id))
        except DeadLetterError as exc:
            report.refused[letter.dead_letter_id] = str(exc)
    return report
