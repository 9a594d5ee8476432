"""The suppression gate before any journey trigger, and the frequency cap: set-based SQL.

Each candidate of ``_journey_cand`` gets the first reason that applies (None: it may enter):

``erased``            the donor was erased;
``<suppression>``     an active ``core.suppressions`` row of the donor (or of a donor merged into it)
                      on the journey's channel or every channel, for its destination or every one,
                      whose reason the journey lists, in this order: deceased, do_not_contact,
                      minor, do_not_solicit, in_memoriam_only (keeps the donor out of every journey
                      but in-memoriam ones), bounced, cleaned, complained, manual. ``deceased`` and
                      ``do_not_contact`` also read the donor's flags, ``minor`` the birth date
                      (younger than ``defaults.adult_age``);
``no_email``          a Mailchimp journey and the donor has no email address;
``no_consent``        ``core.consent_state`` of the journey's purpose and channel is missing,
                      expired, or not one of the statuses it accepts.

Then, for new entries only, ``frequency_cap``: the donor's entries (pending, triggered or
holdout) in the cap's window and scope, plus the candidates ranked before this one (priority,
then gift time), reach the cap.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from donor_sync.journeys.candidates import CANDIDATES_TABLE, RULES_TABLE
from donor_sync.journeys.rules import SUPPRESSION_ORDER

#: Reasons read from a donor flag or field as well as from core.suppressions.
_ALSO = {
    "deceased": "d.is_deceased",
    "do_not_contact": "d.do_not_contact",
    "minor": "(d.birth_date IS NOT NULL AND d.birth_date > (%(now)s::timestamptz AT TIME ZONE 'UTC')::date"
    " - make_interval(years => %(adult_age)s))",
}


def _reason_case() -> str:
    whens = ["WHEN d.erased_at IS NOT NULL THEN 'erased'"]
    for reason in SUPPRESSION_ORDER:
        hit = f"'{reason}' = ANY(s.reasons)"
        if reason in _ALSO:
            hit = f"({hit} OR {_ALSO[reason]})"
        if reason == "in_memoriam_only":
            hit = f"(r.entry_type <> 'in_memoriam' AND {hit})"
        whens.append(f"WHEN '{reason}' = ANY(r.suppressions) AND {hit} THEN '{reason}'")
    whens.append("WHEN r.needs_email AND d.email IS NULL THEN 'no_email'")
    whens.append("WHEN cs.status IS NULL OR NOT (cs.status = ANY(r.status_in)) THEN 'no_consent'")
    return "CASE " + " ".join(whens) + " END"


_GATE = f"""
UPDATE {CANDIDATES_TABLE} c SET reason = v.reason
FROM (
    SELECT c.gift_key, c.journey_id, {_reason_case()} AS reason
    FROM {CANDIDATES_TABLE} c
    JOIN {RULES_TABLE} r ON r.journey_id = c.journey_id
    JOIN core.donors d ON d.donor_id = c.donor_id
    LEFT JOIN LATERAL (
        SELECT coalesce(array_agg(DISTINCT s.reason_code::text), '{{}}') AS reasons
        FROM core.donors m JOIN core.suppressions s ON s.donor_id = m.donor_id
        WHERE (m.donor_id = d.donor_id OR m.merged_into = d.donor_id) AND s.lifted_at IS NULL
          AND s.channel IN ('all', r.channel) AND s.destination IN ('*', r.destination)
    ) s ON true
    LEFT JOIN core.consent_state cs
      ON cs.donor_id = d.donor_id AND cs.purpose = r.purpose AND cs.channel = r.channel
     AND (cs.expires_at IS NULL OR cs.expires_at > %(now)s)
) v
WHERE (c.gift_key, c.journey_id) = (v.gift_key, v.journey_id) AND c.reason IS DISTINCT FROM v.reason
"""

_CAP = f"""
UPDATE {CANDIDATES_TABLE} c SET reason = 'frequency_cap'
FROM (
    SELECT c.gift_key, c.journey_id, r.cap_max,
           row_number() OVER (
               PARTITION BY c.donor_id,
                            CASE WHEN r.cap_scope = 'journey' THEN c.journey_id ELSE r.destination END
               ORDER BY c.priority, c.gift_at, c.journey_id, c.gift_key) AS rank,
           (SELECT count(*) FROM sync.journey_enrollments e JOIN core.donors ed ON ed.donor_id = e.donor_id
            WHERE (ed.donor_id = c.donor_id OR ed.merged_into = c.donor_id)
              AND e.status IN ('pending', 'triggered', 'holdout')
              AND e.decided_at > %(now)s::timestamptz - make_interval(days => r.cap_days)
              AND CASE WHEN r.cap_scope = 'journey' THEN e.journey_id = c.journey_id
                       ELSE e.destination = r.destination END) AS used
    FROM {CANDIDATES_TABLE} c JOIN {RULES_TABLE} r ON r.journey_id = c.journey_id
    WHERE c.enrollment_id IS NULL AND c.reason IS NULL AND r.cap_max IS NOT NULL
) v
WHERE (c.gift_key, c.journey_id) = (v.gift_key, v.journey_id) AND v.used + v.rank > v.cap_max
"""


def apply_gate(conn: psycopg.Connection, *, now: datetime, adult_age: int) -> int:
    """Set each candidate's suppression reason; return how many candidates are suppressed."""
    conn.execute(_GATE, {"now": now, "adult_age": adult_age})
    row = conn.execute(f"SELECT count(*) FROM {CANDIDATES_TABLE} WHERE reason IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def apply_cap(conn: psycopg.Connection, *, now: datetime) -> int:
    """Mark new candidates over their frequency cap; return how many."""
    return conn.execute(_CAP, {"now": now}).rowcount
