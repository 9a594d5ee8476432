"""Pull back what Mailchimp learned about donors' email: unsubscribes, cleaned addresses, complaints.

Runs every ``donations_hourly`` run, before ``queue_mailchimp``, so a donor who unsubscribed in
Mailchimp is blocked by the consent gate before the next push. Reads, from the stream's
watermark (``sync.watermarks``: source ``mailchimp``, stream ``members_pullback``, 10-minute
overlap; the first run reads every such member), ``GET /lists/{id}/members?status=…
&since_last_changed=…`` for ``unsubscribed`` and ``cleaned``, paged by 1000.

A member is the donor whose Mailchimp member it is (``sync.destination_state``: entity
``member``, remote id = subscriber hash), else the live donor whose email has that hash (a
person who was in the audience before donor-sync); merges are followed, erased donors skipped.

* ``unsubscribed`` → opt-out events (source ``mailchimp``) for :data:`UNSUBSCRIBE_PURPOSES` on
  email, ``source_ref`` ``<hash>:unsubscribed:<last_changed>:<purpose>``, evidence ``{field:
  "status", remote_id: <hash>, changed_at, unsubscribe_reason, campaign_id}`` (no address).
  Skipped when donor-sync unsubscribed the member itself (its destination state is taken back:
  ``remote_deleted_at`` set): the donor was blocked already, and no opt-out is invented.
* ``unsubscribed`` with a complaint reason (abuse, spam) → also a ``complained`` suppression.
* ``cleaned`` → a ``cleaned`` suppression. Complaints and cleaned addresses are suppressions on
  channel ``email`` for **every** destination (``*``): a hard-bouncing or complaining address
  must not be mailed by Braze either. ``source_ref`` is the subscriber hash: when the donor's
  address changes, the pull-back lifts the suppression (the new address is not the one that
  bounced).

Each member seen is marked taken back in ``sync.destination_state`` (``remote_deleted_at``): the
member object's mirror action then never writes to it (Mailchimp keeps it out already), and a
donor who opts in again in donor-sync is re-created with ``status_if_new`` only, which leaves the
member as Mailchimp holds it (the push reports it ``consent_blocked``).

Everything is written in one transaction with the watermark; ``consent.pulled_back`` is audited
with the counts (ids and counts only).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient
from donor_sync.observability import audit
from donor_sync.privacy.consent.events import ConsentEvent, Evidence, record_events

log = logging.getLogger(__name__)

SOURCE = "mailchimp"
STREAM = "members_pullback"
ENTITY = "member"
#: What leaving the audience means: no more newsletters (marketing) nor appeals (fundraising) by email.
UNSUBSCRIBE_PURPOSES = ("marketing", "fundraising")
#: Words in Mailchimp's unsubscribe reason that mean the person complained (marked as spam).
COMPLAINT_WORDS = ("abuse", "spam", "complain")
PAGE = 1000
OVERLAP = timedelta(minutes=10)
_FIELDS = (
    "members.id,members.status,members.last_changed,members.unsubscribe_reason,"
    "members.unsubscribe_campaign_id,total_items"
)


@dataclass
class PullbackReport:
    """What one pull-back read and wrote (counts only)."""

    members_seen: int = 0
    unmatched: int = 0
    opt_outs_recorded: int = 0
    own_unsubscribes_skipped: int = 0
    suppressions_added: int = 0
    suppressions_lifted: int = 0
    taken_back: int = 0
    since: datetime | None = None
    cursor: datetime | None = None
    by_status: dict[str, int] = field(default_factory=dict)

    def as_details(self) -> dict[str, Any]:
        return {
            "members_seen": self.members_seen,
            "unmatched": self.unmatched,
            "opt_outs_recorded": self.opt_outs_recorded,
            "own_unsubscribes_skipped": self.own_unsubscribes_skipped,
            "suppressions_added": self.suppressions_added,
            "suppressions_lifted": self.suppressions_lifted,
            "members_taken_back": self.taken_back,
            **{f"seen_{k}": v for k, v in sorted(self.by_status.items())},
        }


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def changed_members(
    client: MailchimpClient, list_id: str, status: str, since: datetime | None
) -> Iterator[dict[str, Any]]:
    """Yield the audience's members with ``status`` changed after ``since`` (all when None)."""
    offset = 0
    while True:
        params: dict[str, Any] = {"status": status, "count": PAGE, "offset": offset, "fields": _FIELDS}
        if since is not None:
            params["since_last_changed"] = since.astimezone(UTC).isoformat(timespec="seconds")
        body = client.get(f"/lists/{list_id}/members", params=params) or {}
        page = [m for m in body.get("members", []) if isinstance(m, dict)]
        yield from page
        offset += len(page)
        if not page or offset >= int(body.get("total_items") or 0):
            return


def _is_complaint(member: Mapping[str, Any]) -> bool:
    reason = str(member.get("unsubscribe_reason") or "").lower()
    return any(word in reason for word in COMPLAINT_WORDS)


def _donors(conn: psycopg.Connection, hashes: list[str]) -> dict[str, tuple[str, bool]]:
    """Subscriber hash -> (live donor id, taken back by donor-sync) for the hashes known here."""
    rows = conn.execute(
        """
        WITH h AS (SELECT DISTINCT unnest(%(h)s::text[]) AS hash),
        by_state AS (
            SELECT DISTINCT ON (h.hash) h.hash, s.donor_id, s.remote_deleted_at IS NOT NULL AS own
            FROM h JOIN sync.destination_state s
              ON s.destination = %(d)s AND s.entity = %(e)s AND s.remote_id = h.hash
            WHERE s.donor_id IS NOT NULL
            ORDER BY h.hash, s.remote_deleted_at IS NULL DESC, s.last_pushed_at DESC NULLS LAST
        ),
        by_email AS (
            SELECT DISTINCT ON (h.hash) h.hash, d.donor_id, false AS own
            FROM h JOIN core.donors d ON md5(lower(btrim(d.email))) = h.hash
            WHERE d.email IS NOT NULL AND h.hash NOT IN (SELECT hash FROM by_state)
            ORDER BY h.hash, d.merged_into IS NULL DESC, d.updated_at DESC
        ),
        found AS (SELECT * FROM by_state UNION ALL SELECT * FROM by_email)
        SELECT f.hash, coalesce(d.merged_into, d.donor_id)::text, f.own
        FROM found f JOIN core.donors d ON d.donor_id = f.donor_id
        JOIN core.donors live ON live.donor_id = coalesce(d.merged_into, d.donor_id)
        WHERE live.erased_at IS NULL
        """,
        {"h": hashes, "d": SOURCE, "e": ENTITY},
    ).fetchall()
    return {str(h): (str(donor), bool(own)) for h, donor, own in rows}


def _suppress(conn: psycopg.Connection, rows: list[tuple[str, str, str]], *, actor: str) -> int:
    """Add active email suppressions ``(donor, reason, hash)`` for every destination; return how many."""
    if not rows:
        return 0
    added = conn.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, channel, destination, source, source_ref,"
        " note, created_by)"
        " SELECT f.donor_id, f.reason, 'email', '*', %s, f.hash, 'reported by Mailchimp', %s"
        " FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS f(donor_id, reason, hash)"
        " ON CONFLICT (donor_id, reason_code, channel, destination) WHERE lifted_at IS NULL DO NOTHING",
        [SOURCE, actor, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
    ).rowcount
    return max(added, 0)


def _lift_changed_addresses(conn: psycopg.Connection, *, actor: str, now: datetime) -> int:
    """Lift Mailchimp's cleaned/complained suppressions of donors whose address changed since."""
    lifted = conn.execute(
        "UPDATE core.suppressions s SET lifted_at = %s, lifted_by = %s,"
        " lift_reason = 'the donor''s email address changed'"
        " FROM core.donors d WHERE d.donor_id = s.donor_id AND s.source = %s AND s.lifted_at IS NULL"
        " AND s.reason_code IN ('cleaned', 'complained') AND s.source_ref IS NOT NULL"
        " AND d.email IS NOT NULL AND md5(lower(btrim(d.email))) <> s.source_ref",
        [now, actor, SOURCE],
    ).rowcount
    return max(lifted, 0)


def _mark_out(conn: psycopg.Connection, hashes: list[str], *, now: datetime) -> int:
    """Record that Mailchimp keeps these members out of sends (``remote_deleted_at``), so the
    member object's mirror action never writes to them and a re-read knows them."""
    if not hashes:
        return 0
    marked = conn.execute(
        "UPDATE sync.destination_state SET remote_deleted_at = %s"
        " WHERE destination = %s AND entity = %s AND remote_id = ANY(%s) AND remote_deleted_at IS NULL",
        [now, SOURCE, ENTITY, hashes],
    ).rowcount
    return max(marked, 0)


def _read_cursor(conn: psycopg.Connection) -> tuple[datetime | None, timedelta]:
    conn.execute(
        "INSERT INTO sync.watermarks (source, stream, overlap) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        [SOURCE, STREAM, OVERLAP],
    )
    row = conn.execute(
        "SELECT cursor_ts, overlap FROM sync.watermarks WHERE source = %s AND stream = %s FOR UPDATE",
        [SOURCE, STREAM],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def pull_back(
    conn: psycopg.Connection,
    client: MailchimpClient,
    list_id: str,
    *,
    actor: str,
    now: datetime | None = None,
    run_id: Any = None,
) -> PullbackReport:
    """Turn Mailchimp's unsubscribes, complaints and cleaned addresses into consent and suppressions.

    Commits once, with the watermark (a failed read leaves it where it was).
    """
    now = now or datetime.now(UTC)
    cursor, overlap = _read_cursor(conn)
    report = PullbackReport(since=cursor - overlap if cursor else None)
    members: list[dict[str, Any]] = []
    for status in ("unsubscribed", "cleaned"):
        found = list(changed_members(client, list_id, status, report.since))
        report.by_status[status] = len(found)
        members += found
    report.members_seen = len(members)
    donors = _donors(conn, sorted({str(m.get("id")) for m in members if m.get("id")}))
    events: list[ConsentEvent] = []
    suppressions: list[tuple[str, str, str]] = []
    highest = cursor
    for member in members:
        member_hash = str(member.get("id") or "")
        changed = _parse(member.get("last_changed")) or now
        highest = changed if highest is None or changed > highest else highest
        match = donors.get(member_hash)
        if match is None:
            report.unmatched += 1
            continue
        donor, own = match
        if member.get("status") == "cleaned":
            suppressions.append((donor, "cleaned", member_hash))
            continue
        if _is_complaint(member):
            suppressions.append((donor, "complained", member_hash))
        if own:
            report.own_unsubscribes_skipped += 1
            continue
        extras = {
            "unsubscribe_reason": member.get("unsubscribe_reason") or None,
            "campaign_id": member.get("unsubscribe_campaign_id") or None,
        }
        evidence = Evidence.model_validate(
            {
                "field": "status",
                "remote_id": member_hash,
                "changed_at": changed.isoformat(),
                **{k: v for k, v in extras.items() if v},
            }
        )
        events += [
            ConsentEvent(
                donor_id=donor,  # type: ignore[arg-type]  # pydantic parses the uuid text
                purpose=purpose,  # type: ignore[arg-type]
                channel="email",
                status="opt_out",
                source=SOURCE,
                source_ref=f"{member_hash}:unsubscribed:{changed.isoformat()}:{purpose}",
                occurred_at=changed,
                evidence=evidence,
                recorded_by=actor,
            )
            for purpose in UNSUBSCRIBE_PURPOSES
        ]
    result = record_events(conn, events, actor=actor, now=now, run_id=run_id)
    report.opt_outs_recorded = result.recorded
    report.suppressions_added = _suppress(conn, suppressions, actor=actor)
    report.suppressions_lifted = _lift_changed_addresses(conn, actor=actor, now=now)
    report.taken_back = _mark_out(conn, [h for h, _ in donors.items()], now=now)
    report.cursor = highest
    if highest is not None:
        conn.execute(
            "UPDATE sync.watermarks SET cursor_ts = greatest(coalesce(cursor_ts, %(c)s), %(c)s),"
            " run_id = coalesce(%(r)s::uuid, run_id), updated_at = now()"
            " WHERE source = %(s)s AND stream = %(t)s",
            {"c": highest, "r": str(run_id) if run_id else None, "s": SOURCE, "t": STREAM},
        )
    audit.record(
        conn,
        actor=actor,
        action="consent.pulled_back",
        object_type="destination",
        object_id=SOURCE,
        details=report.as_details(),
        run_id=run_id,
    )
    conn.commit()
    log.info(
        "mailchimp pull-back: %d members, %d opt-out events, %d suppressions added, %d lifted, %d unmatched",
        report.members_seen,
        report.opt_outs_recorded,
        report.suppressions_added,
        report.suppressions_lifted,
        report.unmatched,
    )
    return report
