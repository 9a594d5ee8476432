"""Golden records' blocking keys in Postgres, and candidate lookup for new records.

Each live golden record's keys (:func:`donor_sync.identity.blocking_keys` of its prepared fields)
are stored in ``core.donor_match_keys`` as ``(donor_id, pass, key_hash)`` with a btree on
``(pass, key_hash)``. A new record is matched by hashing its own keys and looking them up
(:func:`fetch_candidates`): one indexed probe per key, each stopped after the pass's block-size cap
(a key shared by more golden records than the cap means nothing, as in the engine's blocking), so
the cost follows the new records, not the size of the base.

Keys are kept current by :func:`refresh_match_keys` whenever golden records change (resolve,
review approvals, unmerges); merged-away and erased donors have none.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from pandas.arrays import ArrowStringArray
from psycopg import sql

from donor_sync.identity import (
    PREPARED_COLUMNS,
    DedupRules,
    Nicknames,
    PreparedRecords,
    blocking_keys,
    key_column,
    prepare,
)
from donor_sync.identity.columns import NAME_PART_COLUMNS
from donor_sync.identity.prepare import GENERATIONS

log = logging.getLogger(__name__)

#: The standardized fields a record is matched on (staging.donors and core.donors share them).
MATCH_FIELDS: Final = (
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "is_organization",
    "organization_name",
    "email",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "birth_date",
)
#: core.donors columns read to match against a golden record
GOLDEN_FIELDS: Final = ("donor_id", *MATCH_FIELDS)
KEYS_TMP: Final = "__donor_sync__match_keys"


def blocking_version(rules: DedupRules) -> str:
    """Return a short hash of the blocking passes (stored keys are valid for this version only)."""
    text = json.dumps(rules.blocking.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_frame(golden: pd.DataFrame, id_column: str = "donor_id") -> pd.DataFrame:
    """Return golden-record (or staged) columns as the engine's input fields.

    :param golden: columns named as core.donors / staging.donors (any subset of :data:`GOLDEN_FIELDS`).
    """
    if len(golden) < _ROWWISE:
        return _identity_rows(golden.to_dict("records"), id_column)

    def col(name: str) -> pd.Series:
        if name in golden.columns:
            values = golden[name]
            return values.astype(object).where(values.notna(), None)
        return pd.Series(None, index=golden.index, dtype=object)

    organization = (
        golden["is_organization"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if "is_organization" in golden.columns
        else np.zeros(len(golden), dtype=bool)
    )
    first, last = col("first_name"), col("last_name")
    no_person = first.isna() & last.isna()
    full = col("organization_name").where(pd.Series(organization, index=golden.index) & no_person)
    return pd.DataFrame(
        {
            "record_id": golden[id_column].astype(str),
            "first_name": first,
            "last_name": last,
            "full_name": full,
            "email": col("email"),
            "phone": col("phone"),
            "street": col("address_line1"),
            "street2": col("address_line2"),
            "city": col("city"),
            "state": col("region"),
            "postal_code": col("postal_code"),
            "country": col("country_code"),
            "birth_date": col("birth_date"),
            "middle_name": col("middle_name"),
            "name_suffix": col("name_suffix"),
        }
    )


#: golden / staging column -> the engine's input field
_FIELD_OF: Final = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "address_line1": "street",
    "address_line2": "street2",
    "city": "city",
    "region": "state",
    "postal_code": "postal_code",
    "country_code": "country",
    "birth_date": "birth_date",
    "middle_name": "middle_name",
    "name_suffix": "name_suffix",
}
#: below this many records :func:`identity_frame` works row by row (pandas costs more)
_ROWWISE: Final = 512


def _identity_rows(records: list[dict[str, Any]], id_column: str) -> pd.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in ("record_id", "full_name", *_FIELD_OF.values())}
    for record in records:
        columns["record_id"].append(str(record[id_column]))
        values = {field: _text(record.get(column)) for column, field in _FIELD_OF.items()}
        for field, value in values.items():
            columns[field].append(value)
        person = values["first_name"] is not None or values["last_name"] is not None
        flag = record.get("is_organization")
        organization = isinstance(flag, bool | np.bool_) and bool(flag)
        columns["full_name"].append(
            None if person or not organization else _text(record.get("organization_name"))
        )
    order = ["record_id", "first_name", "last_name", "full_name", *list(_FIELD_OF.values())[2:]]
    return pd.DataFrame({name: pd.Series(columns[name], dtype=object) for name in order})


#: how :func:`donor_sync.identity.blocking_keys` joins a pass's column values
KEY_SEPARATOR: Final = "\x1f"
#: below this many records :func:`long_keys` builds keys in plain Python (pandas costs more)
SMALL: Final = 64


def _long_keys_small(prepared: PreparedRecords, rules: DedupRules) -> pd.DataFrame:
    records = prepared.frame.to_dict("records")
    rows: list[int] = []
    passes: list[int] = []
    keys: list[str] = []
    for index, blocking_pass in enumerate(rules.blocking.passes):
        for row, record in enumerate(records):
            parts = [record[c] for c in blocking_pass.columns]
            if any(p is None or p is pd.NA for p in parts):
                continue
            rows.append(row)
            passes.append(index)
            keys.append(KEY_SEPARATOR.join(str(p) for p in parts))
    return pd.DataFrame(
        {"row": np.array(rows, dtype=np.int64), "pass": np.array(passes, dtype=np.int16), "key": keys}
    )


def long_keys(prepared: PreparedRecords, rules: DedupRules) -> pd.DataFrame:
    """Return each record's blocking keys as rows: ``row`` (record position), ``pass`` (index), ``key``.

    The keys are :func:`donor_sync.identity.blocking_keys`' (a few records are done in plain Python).
    """
    if len(prepared) < SMALL:
        return _long_keys_small(prepared, rules)
    keys = blocking_keys(prepared, rules.blocking)
    parts = []
    for index, blocking_pass in enumerate(rules.blocking.passes):
        values = keys[key_column(blocking_pass)]
        present = values.notna().to_numpy(dtype=bool)
        rows = np.flatnonzero(present)
        parts.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "pass": np.full(len(rows), index, dtype=np.int16),
                    "key": values.to_numpy(dtype=object)[present],
                }
            )
        )
    if not parts:
        return pd.DataFrame({"row": [], "pass": [], "key": []})
    return pd.concat(parts, ignore_index=True)


def read_golden(
    conn: psycopg.Connection, donor_ids: Collection[object], *, live_only: bool = True
) -> pd.DataFrame:
    """Return the matching fields of these golden records (live ones only by default)."""
    live = " AND merged_into IS NULL AND erased_at IS NULL" if live_only else ""
    query = sql.SQL("SELECT {} FROM core.donors WHERE donor_id = ANY(%s::uuid[])" + live).format(
        sql.SQL(", ").join(map(sql.Identifier, GOLDEN_FIELDS))
    )
    rows = conn.execute(query, (list(donor_ids),)).fetchall()
    frame = pd.DataFrame(rows, columns=list(GOLDEN_FIELDS))
    frame["donor_id"] = frame["donor_id"].astype(str)
    if "birth_date" in frame.columns:
        frame["birth_date"] = frame["birth_date"].map(lambda d: None if d is None else d.isoformat())
    return frame


def write_match_keys(
    conn: psycopg.Connection,
    golden: pd.DataFrame,
    rules: DedupRules,
    *,
    nicknames: Nicknames,
) -> int:
    """Compute and insert the keys of these golden records (their old keys must be gone). Not committed.

    :param golden: :data:`GOLDEN_FIELDS` of live golden records.
    :return: the number of key rows written.
    """
    if golden.empty:
        return 0
    prepared = prepare(identity_frame(golden), nicknames=nicknames)
    keys = long_keys(prepared, rules)
    if keys.empty:
        return 0
    donor_ids = golden["donor_id"].astype(str).to_numpy(dtype=object)
    out = pd.DataFrame(
        {"donor_id": donor_ids[keys["row"].to_numpy()], "pass": keys["pass"], "key": keys["key"]}
    )
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (donor_id uuid, pass smallint, key text) ON COMMIT DROP"
        ).format(sql.Identifier(KEYS_TMP))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(KEYS_TMP)))
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, header=False)
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (donor_id, pass, key) FROM STDIN (FORMAT csv)").format(sql.Identifier(KEYS_TMP))
        ) as copy,
    ):
        copy.write(buffer.getvalue())
    conn.execute(
        sql.SQL(
            "INSERT INTO core.donor_match_keys (donor_id, pass, key_hash)"
            " SELECT donor_id, pass, hashtextextended(key, 0) FROM {} ON CONFLICT (donor_id, pass)"
            " DO UPDATE SET key_hash = EXCLUDED.key_hash"
        ).format(sql.Identifier(KEYS_TMP))
    )
    return len(out)


def refresh_match_keys(
    conn: psycopg.Connection, donor_ids: Collection[object], rules: DedupRules, *, nicknames: Nicknames
) -> int:
    """Replace the stored keys of these donors by their golden records' current keys. Not committed.

    Merged-away and erased donors end with no keys.

    :return: the number of key rows written.
    """
    if not donor_ids:
        return 0
    ids = list(donor_ids)
    conn.execute("DELETE FROM core.donor_match_keys WHERE donor_id = ANY(%s::uuid[])", (ids,))
    written = write_match_keys(conn, read_golden(conn, ids), rules, nicknames=nicknames)
    conn.execute(
        "INSERT INTO core.donor_match_keys_version (rules_version) VALUES (%s)"
        " ON CONFLICT (singleton) DO NOTHING",
        (blocking_version(rules),),
    )
    return written


def stored_version(conn: psycopg.Connection) -> str | None:
    """Return the blocking-rules version the stored keys were built with (None: never built)."""
    row = conn.execute("SELECT rules_version FROM core.donor_match_keys_version").fetchone()
    return None if row is None else str(row[0])


def rebuild_match_keys(
    conn: psycopg.Connection, rules: DedupRules, *, nicknames: Nicknames, chunk: int = 200_000
) -> int:
    """Rebuild every live golden record's keys (after the blocking rules changed). Not committed.

    :return: the number of key rows written.
    """
    conn.execute("TRUNCATE core.donor_match_keys")
    written = 0
    last = "00000000-0000-0000-0000-000000000000"
    query = sql.SQL(
        "SELECT {} FROM core.donors WHERE merged_into IS NULL AND erased_at IS NULL AND donor_id > %s"
        " ORDER BY donor_id LIMIT %s"
    ).format(sql.SQL(", ").join(map(sql.Identifier, GOLDEN_FIELDS)))
    while True:
        rows = conn.execute(query, (last, chunk)).fetchall()
        if not rows:
            break
        frame = pd.DataFrame(rows, columns=list(GOLDEN_FIELDS))
        frame["donor_id"] = frame["donor_id"].astype(str)
        frame["birth_date"] = frame["birth_date"].map(lambda d: None if d is None else d.isoformat())
        written += write_match_keys(conn, frame, rules, nicknames=nicknames)
        last = str(rows[-1][0])
    conn.execute(
        "INSERT INTO core.donor_match_keys_version (rules_version, built_at) VALUES (%s, now())"
        " ON CONFLICT (singleton) DO UPDATE SET rules_version = EXCLUDED.rules_version, built_at = now()",
        (blocking_version(rules),),
    )
    log.info("match keys rebuilt: %s key rows", written)
    return written


def _caps(rules: DedupRules) -> list[int]:
    return [p.max_block_size or rules.blocking.max_block_size for p in rules.blocking.passes]


#: candidate lookup: each distinct key probed once through the index, stopped after cap + 1 rows
_CANDIDATES_SQL: Final = """
WITH probe AS (
    SELECT t.row, t.pass, hashtextextended(t.key, 0) AS key_hash
    FROM unnest(%(rows)s::int[], %(passes)s::smallint[], %(keys)s::text[]) AS t(row, pass, key)
), distinct_keys AS (
    SELECT DISTINCT p.pass, p.key_hash, (%(caps)s::int[])[p.pass + 1] AS cap FROM probe p
), hits AS (
    SELECT k.pass, k.key_hash, m.donor_id, count(*) OVER (PARTITION BY k.pass, k.key_hash) AS block, k.cap
    FROM distinct_keys k
    CROSS JOIN LATERAL (
        SELECT mk.donor_id FROM core.donor_match_keys mk
        WHERE mk.pass = k.pass AND mk.key_hash = k.key_hash LIMIT k.cap + 1
    ) m
)
SELECT p.row, h.donor_id::text, bit_or(1::bigint << p.pass) AS passes
FROM probe p JOIN hits h ON h.pass = p.pass AND h.key_hash = p.key_hash
WHERE h.block <= h.cap
GROUP BY p.row, h.donor_id
ORDER BY p.row, h.donor_id
"""


def fetch_candidates(conn: psycopg.Connection, keys: pd.DataFrame, rules: DedupRules) -> pd.DataFrame:
    """Return the live golden records sharing a key with each new record.

    :param keys: :func:`long_keys` of the new records.
    :return: columns ``row`` (new record position), ``donor_id`` (text) and ``passes`` (bit mask).
    """
    if keys.empty:
        return pd.DataFrame({"row": pd.Series([], dtype=np.int64), "donor_id": [], "passes": []})
    rows = conn.execute(
        _CANDIDATES_SQL,
        {
            "rows": keys["row"].astype(int).tolist(),
            "passes": keys["pass"].astype(int).tolist(),
            "keys": keys["key"].astype(str).tolist(),
            "caps": _caps(rules),
        },
    ).fetchall()
    return pd.DataFrame(rows, columns=["row", "donor_id", "passes"])


def candidate_golden(conn: psycopg.Connection, candidates: pd.DataFrame) -> pd.DataFrame:
    """Return the golden records named by :func:`fetch_candidates`' ``donor_id`` column."""
    return read_golden(conn, sorted(set(candidates["donor_id"])))


__all__: Sequence[str] = (
    "GOLDEN_FIELDS",
    "blocking_version",
    "candidate_golden",
    "fetch_candidates",
    "identity_frame",
    "long_keys",
    "read_golden",
    "rebuild_match_keys",
    "refresh_match_keys",
    "stored_version",
    "write_match_keys",
)


# -- a fast path for records that are already standardized ----------------------------------------

_NOT_NAME = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")
_HOUSE = re.compile(r"^(\d+[a-z]?)\b[\s,]*")
_E164 = re.compile(r"^\+\d{7,15}$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")


def _fold(text: str | None) -> str | None:
    if not text:
        return None
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    cleaned = _SPACES.sub(" ", _NOT_NAME.sub(" ", ascii_text.replace("'", ""))).strip()
    return cleaned or None


def _lower(text: str | None) -> str | None:
    if not text:
        return None
    value = _SPACES.sub(" ", text.lower()).strip()
    return value or None


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def standardized_fast_path(frame: pd.DataFrame) -> bool:
    """Return whether :func:`prepare_standardized` applies: person names given, phones in E.164."""
    if "full_name" in frame.columns and frame["full_name"].notna().any():
        return False
    phones = [_text(p) for p in frame["phone"]] if "phone" in frame.columns else []
    return all(p is None or _E164.match(p) for p in phones)


def prepare_standardized(frame: pd.DataFrame, *, nicknames: Nicknames) -> PreparedRecords:
    """Prepare records whose fields are already standardized (staging and golden records), fast.

    An adapter over the engine: :func:`donor_sync.identity.prepare` re-runs the field
    standardizers, which costs about 0.2 s per call whatever the number of records (pandas work
    on tiny frames); values staging already standardized (names parsed, email normalized, phone in
    E.164, address USPS-normalized) only need the engine's final folding, done here in plain
    Python. ``tests/resolve/test_donors_match_store.py`` checks it gives the same prepared columns
    as the engine on the sample data. Use :func:`standardized_fast_path` to know when it applies.

    :param frame: :func:`identity_frame` output.
    """
    import jellyfish

    rows: list[dict[str, str | None]] = []
    for record in frame.to_dict("records"):
        first, last = _fold(_text(record.get("first_name"))), _fold(_text(record.get("last_name")))
        email = _text(record.get("email"))
        email = email.lower() if email else None
        phone = _text(record.get("phone"))
        street = _lower(_text(record.get("street")))
        postal = _text(record.get("postal_code"))
        postal = postal.upper().replace(" ", "") or None if postal else None
        zip5 = postal[:5].lower() if postal else None
        city = _lower(_text(record.get("city")))
        number_match = _HOUSE.match(street) if street else None
        number = number_match.group(1) if number_match else None
        rest = _HOUSE.sub("", street, count=1) if street and number_match else street
        area = zip5 or city
        birth = _text(record.get("birth_date"))
        iso = _ISO_DATE.match(birth) if birth else None
        birth_digits = (
            f"{iso[1]}{int(iso[2]):02d}{int(iso[3]):02d}"
            if iso
            else (re.sub(r"\D", "", birth) or None if birth else None)
        )
        full = " ".join(p for p in (first, last) if p) or None
        suffix, middle = _text(record.get("name_suffix")), _fold(_text(record.get("middle_name")))
        rows.append(
            {
                "record_id": str(record["record_id"]),
                "generation": GENERATIONS.get(suffix.lower().replace(".", "").replace(" ", ""))
                if suffix
                else None,
                "middle_initial": middle[:1] if middle else None,
                "first_name": first,
                "last_name": last,
                "full_name": full,
                "first_initial": first[:1] if first else None,
                "first_formal": nicknames.formal(first) if first else None,
                "first_metaphone": (str(jellyfish.metaphone(first.replace(" ", ""))) or None)
                if first
                else None,
                "last_metaphone": (str(jellyfish.metaphone(last.replace(" ", ""))) or None) if last else None,
                "last_soundex": str(jellyfish.soundex(last.replace(" ", "")))
                if last and last.replace(" ", "")
                else None,
                "email": email,
                "email_user": re.sub(r"@.*$", "", email) if email else None,
                "phone": phone.lstrip("+") if phone else None,
                "street": street,
                "street_number": number,
                "street_name": rest or None,
                "address": f"{street} {area}" if street and area else None,
                "street2": _lower(_text(record.get("street2"))),
                "city": city,
                "state": _lower(_text(record.get("state"))),
                "postal_code": postal,
                "zip5": zip5,
                "country": _text(record.get("country")),
                "birth_date": birth_digits,
                "birth_year": birth_digits[:4] if birth_digits else None,
                "external_id": _lower(_text(record.get("external_id"))),
            }
        )
    data: dict[str, Any] = {"record_id": np.array([r["record_id"] for r in rows], dtype=object)}
    for column in (*PREPARED_COLUMNS, *NAME_PART_COLUMNS):
        values = pa.array([r[column] for r in rows], type=pa.large_string())
        data[column] = ArrowStringArray(pa.chunked_array([values], type=pa.large_string()))
    return PreparedRecords(pd.DataFrame(data, copy=False))
