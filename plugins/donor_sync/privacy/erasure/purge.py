"""The local purge of an erasure: raw, staging, core and sync lose the donor's PII, in one transaction.

What happens where (docs/erasure.md has the table and the reasons):

* **raw** -- every raw record of the donor's source records (found through staging rows' raw
  record ids, the source rows' last raw record, every version of the source objects by source id,
  the gifts' source objects, open quarantine rows, and any payload holding one of the donor's
  emails or phones) keeps its row and id (reconciliation counts stay whole); its payload becomes
  ``{"erased": true, "request_id", "raw_record_id"}``. Webhook bodies likewise; CSV rows keep ids
  and lose every cell.
* **staging** -- the donor's staged rows keep ids and lose every PII column; the gifts' tribute
  (third-party PII) and URLs go; quarantine rows of those raw records are deleted.
* **core** -- ``core.donors`` keeps the row (gifts are financial records) with PII blanked and
  ``erased_at`` set; source and destination rows, match keys and consent state are deleted;
  suppressions keep reason code, scope and dates (evidence of why contact stopped, no PII) and lose
  their note and source reference; consent events (append-only, no PII by design) are kept unless
  their evidence holds one of the donor's identifiers, then deleted under ``allow_purge``;
  households named after the donor are renamed after a remaining member or blanked.
* **sync** -- outbox rows and dead letters of the donor (or whose payload holds an identifier) keep
  their ids and lose their payloads; open letters are discarded; pending pushes canceled; the
  destination state is marked deleted; push-log messages holding an identifier are cleared; open
  review pairs with the donor are superseded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from donor_sync.privacy.erasure.subject import SubjectFacts

#: staging.donors columns that are bookkeeping, kept by the purge (every other column is blanked).
STAGING_DONOR_KEEP = frozenset(
    {
        "staging_donor_id",
        "raw_record_id",
        "batch_id",
        "source",
        "source_id",
        "source_updated_at",
        "is_organization",
        "address_validated",
        "standardized_at",
        "resolved_at",
        "donor_id",
    }
)
#: core.donors columns kept: ids, flags, giving aggregates, life-cycle times (no PII).
CORE_DONOR_KEEP = frozenset(
    {
        "donor_id",
        "is_organization",
        "email_verified",
        "address_validated",
        "is_deceased",
        "do_not_contact",
        "giving_currency",
        "gift_count",
        "lifetime_giving",
        "fiscal_year_giving",
        "largest_gift",
        "first_gift_date",
        "last_gift_date",
        "recurring_status",
        "rfm_segment",
        "aggregates_updated_at",
        "merged_into",
        "merged_at",
        "erased_at",
        "created_at",
        "updated_at",
    }
)
#: Standardized gift fields that name or reach a person other than through ids.
GIFT_PII = ("tribute_name", "tribute_notify", "landing_url", "referrer_url")


def like_patterns(values: Sequence[str], min_length: int = 5) -> list[str]:
    """Return ILIKE patterns finding each value anywhere in a text (wildcards escaped).

    Values shorter than ``min_length`` are left out: in a table-wide sweep they would match
    other donors' data.
    """
    out = []
    for v in values:
        if len(v) >= min_length:
            escaped = v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(f"%{escaped}%")
    return out


def _blank_assignments(
    conn: psycopg.Connection, schema: str, table: str, keep: frozenset[str]
) -> sql.Composed:
    """Return ``col = NULL`` (or the empty default of NOT NULL jsonb/array columns) for every other column."""
    rows = conn.execute(
        "SELECT column_name, is_nullable, data_type, column_default, is_generated FROM"
        " information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    parts = []
    for name, nullable, data_type, default, generated in rows:
        if name in keep or generated == "ALWAYS":
            continue
        if nullable == "YES":
            parts.append(sql.SQL("{} = NULL").format(sql.Identifier(name)))
        elif data_type == "jsonb" and default:
            parts.append(sql.SQL("{} = DEFAULT").format(sql.Identifier(name)))
        elif data_type == "ARRAY":
            parts.append(sql.SQL("{} = '{{}}'").format(sql.Identifier(name)))
    return sql.SQL(", ").join(parts)


def _ids(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> set[int]:
    return {int(r[0]) for r in conn.execute(query, params).fetchall() if r[0] is not None}


def stub_raw(conn: psycopg.Connection, raw_ids: Sequence[int], request_id: UUID) -> dict[str, int]:
    """Replace the payloads of these raw records (API, webhook and CSV rows) by an erasure stub.

    Rows and ids stay, so reconciliation still counts them. Idempotent.
    """
    ids = sorted(set(raw_ids))
    counts = {"raw_records": 0, "webhook_events": 0, "csv_rows": 0}
    if not ids:
        return counts
    rid = str(request_id)
    counts["raw_records"] = conn.execute(
        "UPDATE raw.records SET payload = jsonb_build_object('erased', true, 'request_id', %(rid)s::text,"
        " 'raw_record_id', raw_record_id)"
        " WHERE raw_record_id = ANY(%(ids)s) AND NOT (payload @> '{\"erased\": true}'::jsonb)",
        {"ids": ids, "rid": rid},
    ).rowcount
    counts["webhook_events"] = conn.execute(
        "UPDATE raw.webhook_inbox SET body = jsonb_build_object('erased', true, 'request_id', %(rid)s::text)"
        " WHERE webhook_event_id IN (SELECT webhook_event_id FROM raw.records WHERE raw_record_id ="
        " ANY(%(ids)s))"
        " AND NOT (body @> '{\"erased\": true}'::jsonb)",
        {"ids": ids, "rid": rid},
    ).rowcount
    files = conn.execute(
        "SELECT csv_file_id FROM raw.csv_files f WHERE to_regclass('raw.csv_file_' || f.csv_file_id) IS NOT"
        " NULL"
        " AND EXISTS (SELECT 1 FROM unnest(%s::bigint[]) i WHERE i BETWEEN f.first_raw_record_id AND"
        " f.last_raw_record_id)",
        (ids,),
    ).fetchall()
    for (file_id,) in files:
        counts["csv_rows"] += _blank_csv_rows(conn, int(file_id), ids)
    return counts


def _blank_csv_rows(conn: psycopg.Connection, file_id: int, ids: Sequence[int]) -> int:
    table = f"csv_file_{file_id}"
    cells = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' AND table_name ="
            " %s"
            " AND column_name ~ '^c[0-9]+$' ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]
    sets = [sql.SQL("{} = NULL").format(sql.Identifier(c)) for c in [*cells, "raw_line", "encoding_errors"]]
    notnull = sql.SQL(" OR ").join(
        sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in [*cells, "raw_line"]
    )
    return conn.execute(
        sql.SQL("UPDATE raw.{} SET {} WHERE raw_record_id = ANY(%s) AND ({})").format(
            sql.Identifier(table), sql.SQL(", ").join(sets), notnull
        ),
        (list(ids),),
    ).rowcount


def _csv_rows_matching(conn: psycopg.Connection, patterns: list[str], external_ids: list[str]) -> set[int]:
    """CSV rows whose cells hold a pattern, or whose id cell is one of the donor's source ids."""
    found: set[int] = set()
    if external_ids:
        found |= _ids(
            conn,
            "SELECT raw_record_id FROM raw.csv_rows WHERE source_id = ANY(%(ids)s)",
            {"ids": external_ids},
        )
    if not patterns:
        return found
    for (file_id,) in conn.execute(
        "SELECT csv_file_id FROM raw.csv_files f WHERE to_regclass('raw.csv_file_' || f.csv_file_id) IS NOT"
        " NULL"
    ).fetchall():
        found |= _ids(
            conn,
            sql.SQL("SELECT raw_record_id FROM raw.{} t WHERE t::text ILIKE ANY(%(p)s)")
            .format(sql.Identifier(f"csv_file_{file_id}"))
            .as_string(conn),
            {"p": patterns},
        )
    return found


def raw_records_of(conn: psycopg.Connection, facts: SubjectFacts) -> set[int]:
    """Return every raw record id holding the subject's data (see the module docstring)."""
    ids = list(facts.donor_ids)
    sources = [(s, e) for s, e, role in facts.source_ids if role == "source"]
    systems = [s for s, _ in sources]
    externals = [e for _, e in sources]
    patterns = like_patterns([*facts.emails, *facts.phones])
    params = {"ids": ids, "systems": systems, "externals": externals, "p": patterns}
    found = _ids(
        conn,
        """
        WITH src AS (SELECT * FROM unnest(%(systems)s::text[], %(externals)s::text[])
                                     AS s(system, external_id)),
             gifts AS (SELECT gift_id FROM core.gifts WHERE donor_id = ANY(%(ids)s::uuid[]))
        SELECT raw_record_id FROM staging.donors
         WHERE donor_id = ANY(%(ids)s::uuid[]) OR (source, source_id) IN (SELECT system, external_id FROM src)
        UNION SELECT raw_record_id FROM staging.gifts
         WHERE gift_id IN (SELECT gift_id FROM gifts)
            OR (source, source_donor_id) IN (SELECT system, external_id FROM src)
        UNION SELECT last_raw_record_id FROM core.donor_sources WHERE donor_id = ANY(%(ids)s::uuid[])
        UNION SELECT last_raw_record_id FROM core.gift_sources WHERE gift_id IN (SELECT gift_id FROM gifts)
        UNION SELECT r.raw_record_id FROM raw.records r JOIN src ON r.source = src.system
                                                       AND r.source_id = src.external_id
        UNION SELECT r.raw_record_id FROM raw.records r
                JOIN core.gift_sources gs ON gs.source = r.source AND gs.entity = r.entity
                                         AND gs.source_id = r.source_id
               WHERE gs.gift_id IN (SELECT gift_id FROM gifts)
        UNION SELECT raw_record_id FROM staging.quarantine
         WHERE (source, source_id) IN (SELECT system, external_id FROM src)
            OR (cardinality(%(p)s::text[]) > 0 AND reasons::text ILIKE ANY(%(p)s::text[]))
        UNION SELECT raw_record_id FROM raw.records
         WHERE cardinality(%(p)s::text[]) > 0 AND payload::text ILIKE ANY(%(p)s::text[])
        UNION SELECT r.raw_record_id FROM raw.records r JOIN raw.webhook_inbox w USING (webhook_event_id)
         WHERE cardinality(%(p)s::text[]) > 0 AND w.body::text ILIKE ANY(%(p)s::text[])
        """,
        params,
    )
    return found | _csv_rows_matching(conn, patterns, externals)


def _households(conn: psycopg.Connection, ids: list[str]) -> int:
    """Take the donors out of their households; rename or blank the households they named."""
    households = [
        r[0]
        for r in conn.execute(
            "DELETE FROM core.household_members WHERE donor_id = ANY(%s::uuid[]) RETURNING household_id",
            (ids,),
        ).fetchall()
    ]
    if not households:
        return 0
    conn.execute(
        "UPDATE core.households SET name = NULL, address_line1 = NULL, address_line2 = NULL, city = NULL,"
        " region = NULL, postal_code = NULL, country_code = NULL WHERE household_id = ANY(%s::uuid[])",
        (households,),
    )
    # A remaining member becomes primary when the erased one was, and names and places the household.
    conn.execute(
        "UPDATE core.household_members m SET role = 'primary' FROM ("
        "  SELECT DISTINCT ON (household_id) household_id, donor_id FROM core.household_members"
        "   WHERE household_id = ANY(%(h)s::uuid[]) ORDER BY household_id, role = 'primary' DESC, donor_id) p"
        " WHERE m.donor_id = p.donor_id AND NOT EXISTS (SELECT 1 FROM core.household_members x"
        "   WHERE x.household_id = p.household_id AND x.role = 'primary')",
        {"h": households},
    )
    conn.execute(
        "UPDATE core.households h SET name = CASE WHEN d.last_name IS NOT NULL THEN d.last_name || '"
        " Household' END,"
        " address_line1 = d.address_line1, address_line2 = d.address_line2, city = d.city, region = d.region,"
        " postal_code = d.postal_code, country_code = d.country_code"
        " FROM core.household_members m JOIN core.donors d USING (donor_id)"
        " WHERE m.household_id = h.household_id AND m.role = 'primary' AND h.household_id = ANY(%s::uuid[])",
        (households,),
    )
    return len(set(households))


def _sealed_dead_letters(conn: psycopg.Connection, ids: list[str], values: Sequence[str]) -> list[int]:
    """Return ids of other donors' dead letters whose encrypted payloads hold one of ``values``.

    Payloads are encrypted at rest (include/mappings/privacy/encryption.yaml), so SQL cannot search
    them: letters not already found by donor id are opened here, one by one (dead letters are few).
    """
    from donor_sync.privacy.crypto.cipher import is_encrypted
    from donor_sync.privacy.crypto.fields import open_value

    needles = [v.lower() for v in values if len(v) >= 5]
    if not needles:
        return []
    found: list[int] = []
    rows = conn.execute(
        "SELECT dead_letter_id, payload, edited_payload FROM sync.dead_letters"
        " WHERE NOT (donor_id = ANY(%s::uuid[])) OR donor_id IS NULL",
        (ids,),
    ).fetchall()
    for letter_id, payload, edited in rows:
        texts = []
        for column, value in (("payload", payload), ("edited_payload", edited)):
            if value is not None and is_encrypted(value):
                opened = open_value(f"sync.dead_letters.{column}", value, letter_id)
                texts.append(json.dumps(opened, default=str, ensure_ascii=False).lower())
        if any(needle in text for text in texts for needle in needles):
            found.append(int(letter_id))
    return found


def purge_local(
    conn: psycopg.Connection, facts: SubjectFacts, request_id: UUID, *, now: datetime
) -> dict[str, int]:
    """Purge the subject's PII from raw, staging, core and sync (see the module docstring).

    Not committed: the caller commits it together with the ``staging`` receipt, so the purge and
    its receipt land at once or not at all. Idempotent.

    :return: rows changed per table (the ``staging`` receipt's counts).
    """
    ids = list(facts.donor_ids)
    rid = str(request_id)
    patterns = like_patterns([*facts.emails, *facts.phones])
    text_patterns = like_patterns([*facts.emails, *facts.phones, *facts.names])
    # The donor's own rows (consent evidence): any name part counts.
    own_patterns = like_patterns([*facts.emails, *facts.phones, *facts.names, *facts.name_parts], 2)
    actor = f"privacy:{rid}"
    counts: dict[str, int] = {}
    raw_ids = sorted(raw_records_of(conn, facts))
    counts.update(stub_raw(conn, raw_ids, request_id))

    counts["staging_donors"] = conn.execute(
        sql.SQL(
            "UPDATE staging.donors SET {} WHERE raw_record_id = ANY(%(raw)s) OR donor_id ="
            " ANY(%(ids)s::uuid[])"
        ).format(_blank_assignments(conn, "staging", "donors", STAGING_DONOR_KEEP)),
        {"raw": raw_ids, "ids": ids},
    ).rowcount
    counts["staging_gifts"] = conn.execute(
        "UPDATE staging.gifts SET tribute_name = NULL, tribute_notify = NULL, landing_url = NULL,"
        " referrer_url = NULL, review_flags = '[]'::jsonb"
        " WHERE raw_record_id = ANY(%(raw)s) OR gift_id IN (SELECT gift_id FROM core.gifts"
        "                                                 WHERE donor_id = ANY(%(ids)s::uuid[]))",
        {"raw": raw_ids, "ids": ids},
    ).rowcount
    counts["staging_quarantine"] = conn.execute(
        "DELETE FROM staging.quarantine WHERE raw_record_id = ANY(%s)", (raw_ids,)
    ).rowcount

    counts["core_gifts"] = conn.execute(
        "UPDATE core.gifts SET tribute_name = NULL, tribute_notify = NULL"
        " WHERE donor_id = ANY(%s::uuid[]) AND (tribute_name IS NOT NULL OR tribute_notify IS NOT NULL)",
        (ids,),
    ).rowcount
    counts["core_gift_sources"] = conn.execute(
        "UPDATE core.gift_sources SET attributes = attributes - %(keys)s::text[]"
        " WHERE gift_id IN (SELECT gift_id FROM core.gifts WHERE donor_id = ANY(%(ids)s::uuid[]))"
        " AND attributes ?| %(keys)s::text[]",
        {"ids": ids, "keys": list(GIFT_PII)},
    ).rowcount
    counts["core_households"] = _households(conn, ids)
    counts["core_donor_match_keys"] = conn.execute(
        "DELETE FROM core.donor_match_keys WHERE donor_id = ANY(%s::uuid[])", (ids,)
    ).rowcount
    counts["core_donor_sources"] = conn.execute(
        "DELETE FROM core.donor_sources WHERE donor_id = ANY(%s::uuid[])", (ids,)
    ).rowcount
    counts["core_consent_state"] = conn.execute(
        "DELETE FROM core.consent_state WHERE donor_id = ANY(%s::uuid[])", (ids,)
    ).rowcount
    counts["core_consent_events"] = 0
    if own_patterns:
        conn.execute("SET LOCAL donor_sync.allow_purge = 'on'")
        counts["core_consent_events"] = conn.execute(
            "DELETE FROM core.consent_events WHERE donor_id = ANY(%(ids)s::uuid[])"
            " AND (evidence::text ILIKE ANY(%(p)s) OR source_ref ILIKE ANY(%(p)s))",
            {"ids": ids, "p": own_patterns},
        ).rowcount
        conn.execute("SET LOCAL donor_sync.allow_purge = 'off'")
    counts["core_suppressions"] = conn.execute(
        "UPDATE core.suppressions SET note = NULL, source_ref = NULL, lift_reason = NULL"
        " WHERE donor_id = ANY(%s::uuid[]) AND (note IS NOT NULL OR source_ref IS NOT NULL OR lift_reason"
        " IS NOT NULL)",
        (ids,),
    ).rowcount
    counts["core_donors"] = conn.execute(
        sql.SQL(
            "UPDATE core.donors SET {}, erased_at = coalesce(erased_at, %(now)s) WHERE donor_id ="
            " ANY(%(ids)s::uuid[])"
        ).format(_blank_assignments(conn, "core", "donors", CORE_DONOR_KEEP)),
        {"ids": ids, "now": now},
    ).rowcount

    counts["sync_outbox"] = conn.execute(
        "UPDATE sync.outbox SET payload = '{}'::jsonb, payload_sha256 = core.jsonb_sha256('{}'::jsonb),"
        " error_message = NULL, state = CASE WHEN state = 'pending' THEN 'canceled' ELSE state END"
        " WHERE (donor_id = ANY(%(ids)s::uuid[]) OR (cardinality(%(p)s::text[]) > 0 AND payload::text ILIKE"
        " ANY(%(p)s)))"
        " AND state <> 'in_flight' AND payload <> '{}'::jsonb",
        {"ids": ids, "p": text_patterns},
    ).rowcount
    counts["sync_dead_letters"] = conn.execute(
        "UPDATE sync.dead_letters SET payload = '{}'::jsonb, payload_sha256 = core.jsonb_sha256('{}'::jsonb),"
        # an edited letter must keep an edited payload (CHECK): an empty one
        " edited_payload = CASE WHEN status = 'edited' THEN '{}'::jsonb END, message = NULL, note = NULL,"
        " status = CASE WHEN status = 'open' THEN 'discarded' ELSE status END,"
        " resolved_by = coalesce(resolved_by, %(actor)s), resolved_at = coalesce(resolved_at, %(now)s)"
        " WHERE (donor_id = ANY(%(ids)s::uuid[]) OR dead_letter_id = ANY(%(sealed)s::bigint[])"
        "        OR (cardinality(%(p)s::text[]) > 0 AND"
        "        (payload::text ILIKE ANY(%(p)s) OR edited_payload::text ILIKE ANY(%(p)s))))"
        " AND (payload <> '{}'::jsonb OR coalesce(edited_payload <> '{}'::jsonb, false) OR status = 'open')",
        {
            "ids": ids,
            "p": text_patterns,
            "actor": actor,
            "now": now,
            "sealed": _sealed_dead_letters(conn, ids, [*facts.emails, *facts.phones, *facts.names]),
        },
    ).rowcount
    counts["sync_destination_state"] = conn.execute(
        "UPDATE sync.destination_state SET remote_deleted_at = %(now)s"
        " WHERE donor_id = ANY(%(ids)s::uuid[]) AND remote_deleted_at IS NULL",
        {"ids": ids, "now": now},
    ).rowcount
    counts["sync_push_log"] = 0
    if patterns:
        counts["sync_push_log"] = conn.execute(
            "UPDATE sync.push_log SET message = NULL WHERE message ILIKE ANY(%s)", (patterns,)
        ).rowcount
    counts["sync_review_queue"] = conn.execute(
        "UPDATE sync.review_queue SET status = CASE WHEN status IN ('pending', 'deferred') THEN 'superseded'"
        " ELSE status END, note = NULL"
        " WHERE (left_donor_id = ANY(%(ids)s::uuid[]) OR right_donor_id = ANY(%(ids)s::uuid[]))"
        " AND (status IN ('pending', 'deferred') OR note IS NOT NULL)",
        {"ids": ids},
    ).rowcount
    return counts


def counts_json(counts: dict[str, int]) -> str:
    """Return the counts as the receipt's JSON."""
    return json.dumps(counts, sort_keys=True)
