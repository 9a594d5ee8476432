"""The producers: the facts of core turned into events, set-based, where the facts happen.

Each producer reads the facts it is given (ids) in one query, skips those whose event is already
in ``sync.events`` (so a re-run produces nothing new) and hands the events to
:func:`donor_sync.events.store.record_events` in the caller's transaction. Called by resolve
(gifts), merges, consent refreshes and the erasure cascade with one line each.

* ``donation.created``: a non-test gift in core with money taken (succeeded, partially refunded,
  refunded or disputed); a pending gift waits until it succeeds; failed or canceled gifts are
  never announced.
* ``donation.refunded``: each new refunded total of a gift (partial, then full: two events).
* ``donor.merged``: a decision that merged one live donor into another.
* ``consent.changed``: a live donor whose derived consent status changed somewhere.
* ``donor.erased``: an erasure request that froze its donors.

Gifts of erased donors are not announced; merged-away donors' gifts name the survivor.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.events.catalogue import Event
from donor_sync.events.settings import EventSettings
from donor_sync.events.store import RecordedEvents, record_events

__all__ = [
    "CREATED_STATUSES",
    "consent_events",
    "produce_consent_events",
    "produce_erasure_event",
    "produce_gift_events",
    "produce_merge_events",
]

#: Gift statuses that mean money was taken (a donation.created is due).
CREATED_STATUSES: tuple[str, ...] = ("succeeded", "partially_refunded", "refunded", "disputed")

_GIFTS = """
SELECT g.gift_key, g.gift_id::text, coalesce(d.merged_into, d.donor_id)::text, g.source, g.amount, g.currency,
       g.currency_exponent, g.amount_minor, g.gift_at, g.gift_date, g.status, g.payment_method, p.plan_key,
       g.installment_number, g.designation, g.campaign, g.is_anonymous, g.tribute_type, g.refunded_amount,
       g.refunded_at, c.need_created, r.refund_key
FROM unnest(%(donors)s::uuid[]) AS t(donor_id)
JOIN core.gifts g ON g.donor_id = t.donor_id
JOIN core.donors d ON d.donor_id = g.donor_id
LEFT JOIN core.donors s ON s.donor_id = d.merged_into
LEFT JOIN core.recurring_plans p ON p.recurring_plan_id = g.recurring_plan_id
CROSS JOIN LATERAL (SELECT NOT EXISTS (
    SELECT 1 FROM sync.events e WHERE e.fact_key = 'donation.created:' || g.gift_key AND e.version = 1)
    AS need_created) c
CROSS JOIN LATERAL (SELECT 'donation.refunded:' || g.gift_key || ':'
    || (g.refunded_amount * (10::numeric ^ g.currency_exponent))::bigint AS refund_key) r
WHERE NOT g.is_test AND g.status = ANY(%(statuses)s)
  AND d.erased_at IS NULL AND s.erased_at IS NULL
  AND (c.need_created OR (g.refunded_amount > 0 AND NOT EXISTS (
       SELECT 1 FROM sync.events e WHERE e.fact_key = r.refund_key AND e.version = 1)))
ORDER BY g.gift_key
"""


def _money(value: Decimal, exponent: int) -> str:
    return str(Decimal(value).quantize(Decimal(1).scaleb(-exponent)))


def _minor(value: Decimal, exponent: int) -> int:
    return int(Decimal(value).scaleb(exponent))


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def gift_events(rows: Iterable[Sequence[Any]], *, now: datetime) -> list[Event]:
    """Return the v1 events of gift rows as :data:`_GIFTS` selects them."""
    events: list[Event] = []
    for row in rows:
        (gift_key, gift_id, donor_id, source, amount, currency, exponent, amount_minor, gift_at, gift_date,
         status, payment_method, plan_key, installment, designation, campaign, anonymous, tribute,
         refunded, refunded_at, need_created, refund_key) = row  # fmt: skip
        common = {
            "gift_key": gift_key,
            "gift_id": gift_id,
            "donor_id": donor_id,
            "amount": _money(amount, exponent),
            "amount_minor": int(amount_minor),
            "currency": currency,
        }
        if need_created:
            data = {
                **common,
                "source": source,
                "gift_at": _ts(gift_at),
                "gift_date": gift_date.isoformat() if isinstance(gift_date, date) else str(gift_date),
                "status": status,
                "payment_method": payment_method,
                "recurring_plan_key": plan_key,
                "installment_number": installment,
                "designation": designation,
                "campaign": campaign,
                "is_anonymous": bool(anonymous),
                "tribute_type": tribute,
            }
            events.append(
                Event("donation.created", 1, f"donation.created:{gift_key}", gift_at, data, donor_id)
            )
        if refunded and Decimal(refunded) > 0:
            data = {
                **common,
                "refunded_amount": _money(refunded, exponent),
                "refunded_amount_minor": _minor(refunded, exponent),
                "fully_refunded": Decimal(refunded) >= Decimal(amount),
                "refunded_at": _ts(refunded_at) if refunded_at is not None else None,
                "status": status,
            }
            events.append(Event("donation.refunded", 1, refund_key, refunded_at or now, data, donor_id))
    return events


def produce_gift_events(
    conn: psycopg.Connection,
    donor_ids: Collection[UUID | str],
    *,
    run_id: Any = None,
    now: datetime | None = None,
    settings: EventSettings | None = None,
) -> RecordedEvents:
    """Announce the new gifts and refunds of ``donor_ids`` (resolve's touched donors); not committed."""
    if not donor_ids:
        return RecordedEvents()
    rows = conn.execute(
        _GIFTS, {"donors": sorted({str(d) for d in donor_ids}), "statuses": list(CREATED_STATUSES)}
    ).fetchall()
    # A refund already announced comes back with a row selected for its created event: the store skips it.
    return record_events(
        conn, gift_events(rows, now=now or datetime.now(UTC)), run_id=run_id, settings=settings
    )


def produce_merge_events(
    conn: psycopg.Connection,
    decision_ids: Collection[UUID | str],
    *,
    run_id: Any = None,
    settings: EventSettings | None = None,
) -> RecordedEvents:
    """Announce merge decisions that merged one donor into another; not committed."""
    if not decision_ids:
        return RecordedEvents()
    rows = conn.execute(
        "SELECT decision_id::text, survivor_id::text, merged_donor_id::text,"
        "       ARRAY(SELECT x::text FROM unnest(repointed) AS x ORDER BY 1), decision, decided_at"
        " FROM core.merge_decisions WHERE decision_id = ANY(%s::uuid[]) AND merged_donor_id IS NOT NULL"
        "   AND undone_at IS NULL ORDER BY decided_at, decision_id",
        ([str(d) for d in decision_ids],),
    ).fetchall()
    events = [
        Event(
            "donor.merged",
            1,
            f"donor.merged:{decision}",
            decided_at,
            {
                "decision_id": decision,
                "survivor_donor_id": survivor,
                "merged_donor_id": merged,
                "repointed_donor_ids": list(repointed),
                "decision": kind,
            },
            survivor,
        )
        for decision, survivor, merged, repointed, kind, decided_at in rows
    ]
    return record_events(conn, events, run_id=run_id, settings=settings)


def consent_events(
    changes: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *, now: datetime
) -> list[Event]:
    """Return the ``consent.changed`` events of per-donor status changes.

    The fact key hashes the donor's changes (including the deciding consent event ids), so the
    same change announced twice has one id and a later change to the same status another.
    """
    events: list[Event] = []
    for donor_id, detail in changes:
        items = [
            {"purpose": c["purpose"], "channel": c["channel"], "from": c.get("from"), "to": c.get("to")}
            for c in detail
        ]
        if not items:
            continue
        fingerprint = json.dumps(
            sorted(
                (
                    c["purpose"],
                    c["channel"],
                    c.get("from") or "",
                    c.get("to") or "",
                    str(c.get("consent_event_id")),
                )
                for c in detail
            )
        )
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:32]
        events.append(
            Event("consent.changed", 1, f"consent.changed:{donor_id}:{digest}", now,
                  {"donor_id": str(donor_id), "changes": items}, str(donor_id))
        )  # fmt: skip
    return events


def produce_consent_events(
    conn: psycopg.Connection,
    changes: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    *,
    now: datetime | None = None,
    run_id: Any = None,
    settings: EventSettings | None = None,
) -> RecordedEvents:
    """Announce consent changes of live donors (merged-away and erased ones are skipped); not committed.

    :param changes: ``(donor_id, [{purpose, channel, from, to, consent_event_id}, ...])`` as
        :func:`donor_sync.privacy.consent.state.refresh_consent_state` computes them.
    """
    if not changes:
        return RecordedEvents()
    live = {
        r[0]
        for r in conn.execute(
            "SELECT donor_id::text FROM core.donors WHERE donor_id = ANY(%s::uuid[])"
            " AND merged_into IS NULL AND erased_at IS NULL",
            ([str(d) for d, _ in changes],),
        ).fetchall()
    }
    chosen = [(str(d), detail) for d, detail in changes if str(d) in live]
    return record_events(
        conn, consent_events(chosen, now=now or datetime.now(UTC)), run_id=run_id, settings=settings
    )


def produce_erasure_event(
    conn: psycopg.Connection,
    request_id: UUID | str,
    donor_ids: Sequence[str],
    *,
    now: datetime | None = None,
    settings: EventSettings | None = None,
) -> RecordedEvents:
    """Announce an erasure (request id and donor ids only); not committed.

    The outbox rows carry no donor id, so the erasure's own freeze and purge leave them alone.
    """
    if not donor_ids:
        return RecordedEvents()
    event = Event(
        "donor.erased",
        1,
        f"donor.erased:{request_id}",
        now or datetime.now(UTC),
        {"request_id": str(request_id), "donor_ids": sorted({str(d) for d in donor_ids})},
        None,
    )
    return record_events(conn, [event], settings=settings)
