"""Suspicious-data checks that stage a record with a review flag instead of failing it.

- ``sql_like``: free text that looks like SQL injection (patterns in the rules file). The value is
  kept: every write is parameterized or COPY, so it is harmless here; the flag warns people
  exporting it elsewhere.
- ``outlier_amount``: a gift above the configured ceiling of its currency, or above
  ``multiple_of_median`` times the median gift of the same source and currency in the same chunk
  (computed only when the chunk holds ``min_sample`` such gifts). Cheap by design: no history scan;
  an hourly run of a few hundred gifts of a source still gets a median, a run of a handful is
  judged by the ceiling alone.
- ``email_shared``: one normalized email on different people. New donors are compared with each
  other and with every staged donor holding the same email, found through the
  ``lower(email)`` index (migration 0006): the cost follows the emails a run brings, not the size of
  staging. Names that differ only by spelling noise (rapidfuzz ratio at or above the threshold,
  or a first name that starts with the other: "Kate"/"Katherine", "J"/"John") are the same person;
  versions of one source record never count as different people. Nicknames that share no prefix
  ("Bob"/"Robert") do count as different: the flag asks for a look, it merges nothing. Only the
  incoming rows are flagged (staged rows are not rewritten).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql
from rapidfuzz import fuzz

from donor_sync.standardize.fields.result import STRING
from donor_sync.standardize.settings import EmailShared, OutlierAmount

FLAG_COLUMNS = ("row", "code", "field", "message")
#: Up to this many emails, staged donors are found by index probes (see _staged_with_emails).
PROBE_LIMIT = 20_000
EMAIL_SHARED_MESSAGE = "This email is also used by a different person (another name) in staging."
_EMAILS = "__donor_sync__emails"


def _flags(rows: Sequence[object], code: str, field: str, message: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series(list(rows), dtype=object),
            "code": pd.Series([code] * len(rows), dtype=STRING),
            "field": pd.Series([field] * len(rows), dtype=STRING),
            "message": pd.Series([message] * len(rows), dtype=STRING),
        }
    )


def empty_flags() -> pd.DataFrame:
    """Return a flags frame without rows."""
    return _flags([], "", "", "")


def sql_like(text: pd.DataFrame, patterns: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """Flag text columns that match any SQL-injection pattern (unique values only, RE2 in pyarrow)."""
    if not patterns:
        return empty_flags()
    combined = "(?i)(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"
    found: list[pd.DataFrame] = []
    for column in columns:
        if column not in text.columns:
            continue
        codes, uniques = pd.factorize(text[column], use_na_sentinel=True)
        if not len(uniques):
            continue
        hit = np.asarray(
            pc.match_substring_regex(
                pa.array(np.asarray(uniques, dtype=object), type=pa.large_string()), combined
            ).fill_null(False),
            dtype=bool,
        )
        rows = np.flatnonzero((codes >= 0) & hit[np.maximum(codes, 0)])
        if len(rows):
            found.append(
                _flags(
                    text.index[rows].tolist(),
                    "sql_like",
                    column,
                    "Text looks like SQL injection; kept as written (review_flags.sql_like_patterns).",
                )
            )
    return pd.concat(found, ignore_index=True) if found else empty_flags()


def outlier_amounts(
    rows: pd.Index, amount: pd.Series, currency: pd.Series, source: pd.Series, config: OutlierAmount
) -> pd.DataFrame:
    """Flag gifts above their currency's ceiling or far above their source's median in this chunk.

    :param amount: amounts in major units (floats: a threshold needs no exactness).
    """
    if not config.enabled or not len(rows):
        return empty_flags()
    values = amount.loc[rows].astype(np.float64)
    cur = currency.loc[rows].astype(str)
    codes, uniques = pd.factorize(cur)
    per_currency = np.array([float(config.ceiling.get(c, config.ceiling["default"])) for c in uniques])
    ceiling = pd.Series(per_currency[codes] if len(uniques) else np.array([]), index=values.index)
    above_ceiling = values > ceiling
    groups = pd.DataFrame({"value": values, "key": source.loc[rows].astype(str) + "|" + cur})
    stats = groups.groupby("key")["value"].agg(["median", "count"])
    median = groups["key"].map(stats["median"])
    count = groups["key"].map(stats["count"])
    far = (count >= config.min_sample) & (values > median * float(config.multiple_of_median))
    flagged = (above_ceiling | far).fillna(False).to_numpy(dtype=bool)
    return _flags(
        rows[flagged].tolist(),
        "outlier_amount",
        "amount",
        "Gift far above what is usual for its currency or source (review_flags.outlier_amount).",
    )


def _fold(values: pd.Series) -> pd.Series:
    """Return names lower-cased with everything but a-z removed (vectorized), '' when missing."""
    return values.astype(STRING).str.lower().str.replace(r"[^a-z]", "", regex=True).fillna("")


def _same_part(a: str, b: str, threshold: float, *, prefix: bool) -> bool:
    if not a or not b:
        return True  # nothing to tell them apart by
    if prefix and (a.startswith(b) or b.startswith(a)):
        return True
    return fuzz.ratio(a, b) >= threshold


def _same_person(a: tuple[str, str, str], b: tuple[str, str, str], threshold: float) -> bool:
    if a[2] or b[2]:  # organizations: by their name
        return _same_part(a[2], b[2], threshold, prefix=False)
    return _same_part(a[0], b[0], threshold, prefix=True) and _same_part(a[1], b[1], threshold, prefix=False)


def shared_emails(
    conn: psycopg.Connection, incoming: pd.DataFrame, config: EmailShared
) -> tuple[pd.DataFrame, set[int]]:
    """Flag incoming donors whose email is also on a different person (in this chunk or staged).

    Vectorized down to the emails that two different source records share; only those are
    compared name by name.

    :param incoming: one row per new donor: ``row`` (an int, the flag's target), raw_record_id,
        source, source_id, email, first_name, last_name, organization_name.
    :return: the flags of incoming rows, and the raw_record_ids of staged donors that share an
        email with a different incoming person (they get the flag too, so the outcome does not
        depend on which record arrived first).
    """
    if not config.enabled or not len(incoming):
        return empty_flags(), set()
    new = incoming[incoming["email"].notna()]
    if not len(new):
        return empty_flags(), set()
    new_keys = np.asarray(
        pc.utf8_lower(pa.array(new["email"].astype(object), type=pa.large_string())), dtype=object
    )
    existing = _staged_with_emails(conn, list(pd.unique(new_keys)))
    existing = existing[~existing["raw_record_id"].isin(new["raw_record_id"])]
    columns = ["source", "source_id", "first_name", "last_name", "organization_name"]
    people = pd.concat(
        [
            new[columns].assign(email_key=new_keys, row=new["row"].to_numpy(dtype=object), staged=None),
            existing[columns].assign(
                email_key=existing["email_key"].to_numpy(dtype=object),
                row=None,
                staged=existing["raw_record_id"].to_numpy(dtype=object),
            ),
        ],
        ignore_index=True,
    )
    email_code = pd.factorize(people["email_key"].to_numpy(dtype=object))[0]
    record_code = pd.factorize(
        (people["source"].astype(str) + "\x1f" + people["source_id"].astype(str)).to_numpy(dtype=object)
    )[0]
    # An email can be shared only if at least two different source records hold it.
    pairs = pd.DataFrame({"email": email_code, "record": record_code}).drop_duplicates()
    records_per_email = np.bincount(pairs["email"].to_numpy(), minlength=email_code.max() + 1)
    candidates = np.flatnonzero(records_per_email[email_code] > 1)
    if not len(candidates):
        return empty_flags(), set()
    people = people.iloc[candidates]
    order = np.argsort(email_code[candidates], kind="stable")
    emails = email_code[candidates][order].tolist()
    records = record_code[candidates][order].tolist()
    names = list(
        zip(
            _fold(people["first_name"]).to_numpy(dtype=object)[order].tolist(),
            _fold(people["last_name"]).to_numpy(dtype=object)[order].tolist(),
            _fold(people["organization_name"]).to_numpy(dtype=object)[order].tolist(),
            strict=True,
        )
    )
    rows = people["row"].to_numpy(dtype=object)[order].tolist()
    staged = people["staged"].to_numpy(dtype=object)[order].tolist()
    flagged, also = _different_people(
        emails, records, names, rows, staged=staged, threshold=config.same_name_similarity
    )
    if not flagged:
        return empty_flags(), set()
    return _flags(flagged, "email_shared", "email", EMAIL_SHARED_MESSAGE), also


def _different_people(
    emails: list[int],
    records: list[int],
    names: list[tuple[str, str, str]],
    rows: list[object],
    *,
    staged: list[object],
    threshold: float,
) -> tuple[list[object], set[int]]:
    """Walk rows sorted by email; return the incoming rows whose email a different person holds,
    and the staged rows of those different people.
    """
    flagged: list[object] = []
    also: set[int] = set()
    same: dict[tuple[tuple[str, str, str], tuple[str, str, str]], bool] = {}
    start = 0
    while start < len(emails):
        end = start
        while end < len(emails) and emails[end] == emails[start]:
            end += 1
        for i in range(start, end):
            if rows[i] is None:
                continue
            shared = False
            for j in range(start, end):
                if records[j] == records[i]:
                    continue
                pair = (names[i], names[j])
                if pair not in same:
                    same[pair] = _same_person(names[i], names[j], threshold)
                if not same[pair]:
                    shared = True
                    if staged[j] is not None:
                        also.add(int(str(staged[j])))
            if shared:
                flagged.append(rows[i])
        start = end
    return flagged, also


def flag_staged_donors(
    conn: psycopg.Connection, raw_record_ids: set[int], code: str, field: str, message: str
) -> None:
    """Add a review flag to staged donor rows that do not have it yet (they stay unresolved if they were)."""
    flag = json.dumps([{"code": code, "field": field, "message": message}])
    conn.execute(
        "UPDATE staging.donors SET review_flags = review_flags || %(flag)s::jsonb"
        " WHERE raw_record_id = ANY(%(ids)s) AND NOT review_flags @> %(flag)s::jsonb",
        {"flag": flag, "ids": sorted(raw_record_ids)},
    )


def _staged_with_emails(conn: psycopg.Connection, emails: list[str]) -> pd.DataFrame:
    """Return staged donors holding any of ``emails`` (lower-cased).

    An hourly run brings few emails: each is looked up through the lower(email) index (a LATERAL
    probe, so the planner cannot prefer a scan of all of staging: measured 10 ms against 480 ms for
    1,000 emails and 1,000,000 staged donors). A bulk load (more than :data:`PROBE_LIMIT` emails)
    lets the planner choose, and it scans once instead of probing a hundred thousand times.
    """
    columns = [
        "raw_record_id",
        "email_key",
        "source",
        "source_id",
        "first_name",
        "last_name",
        "organization_name",
    ]
    conn.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (email text)").format(sql.Identifier(_EMAILS)))
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(_EMAILS)))
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} (email) FROM STDIN").format(sql.Identifier(_EMAILS))) as copy,
    ):
        buffer = io.StringIO()
        for email in emails:
            buffer.write(email.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") + "\n")
        copy.write(buffer.getvalue())
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(_EMAILS)))
    select = (
        "SELECT d.raw_record_id, lower(d.email), d.source, d.source_id, d.first_name, d.last_name,"
        " d.organization_name FROM {} e"
    )
    if len(emails) <= PROBE_LIMIT:
        query = sql.SQL(
            select + " CROSS JOIN LATERAL (SELECT * FROM staging.donors d0"
            " WHERE lower(d0.email) = e.email AND d0.email IS NOT NULL OFFSET 0) d"
        )
    else:
        query = sql.SQL(
            select + " JOIN staging.donors d ON lower(d.email) = e.email WHERE d.email IS NOT NULL"
        )
    rows = conn.execute(query.format(sql.Identifier(_EMAILS))).fetchall()
    return pd.DataFrame(rows, columns=columns)
