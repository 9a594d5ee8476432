"""Resolve staged donor records to golden donors: deterministic rules, then probabilistic matching.

:func:`resolve_donors` takes the unresolved ``staging.donors`` rows of some batches, keeps the
latest version of each source record ``(source, source_id)``, and decides which donor each one is:

1. **Same source id** -- a record already in ``core.donor_sources`` stays with its donor; its
   attributes are refreshed when this version is newer.
2. **Within the batch** -- the new records are deduplicated among themselves with the engine
   (:func:`donor_sync.identity.resolve`: scored, banded, clustered without chaining).
3. **Against existing golden records** -- each new record's blocking keys are looked up in
   ``core.donor_match_keys`` (:mod:`~donor_sync.resolve.match_store`) and the pairs found are
   scored by the engine. A cluster of new records joins the golden record it shares a normalized
   email with (``deterministic``, unless the household rule says otherwise) or its strongest
   ``auto_merge`` link, unless one of its records was compared with that donor and found
   different (household, or below ``clustering.cannot_link_below``). ``review`` pairs go to
   ``sync.review_queue`` (never a pair rejected before), ``household`` pairs are linked in
   ``core.households``, never merged; everything else becomes a new donor.

Every record gets its ``core.donor_sources`` row (role ``source``, attributes = its standardized
fields) and a current ``core.cluster_map`` row whose ``decision_id`` is shared by all rows of one
decision; golden records of the donors touched are recomputed set-based
(:mod:`~donor_sync.resolve.survivorship`) and their match keys refreshed; ``staging.donors`` gets
``donor_id`` and ``resolved_at``. Logs carry counts only.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from donor_sync.identity import (
    AUTO_MERGE,
    HOUSEHOLD,
    REVIEW,
    CandidatePairs,
    DedupRules,
    MatchModel,
    Nicknames,
    PreparedRecords,
    candidate_pairs,
    load_nicknames,
    load_rules,
    prepare,
    resolve,
)
from donor_sync.privacy.keys import KeySource
from donor_sync.resolve import match_store
from donor_sync.resolve.survivorship import SurvivorshipRules, load_survivorship, recompute_golden

log = logging.getLogger(__name__)

RECORDS_TMP: Final = "__donor_sync__resolve_records"
DECISIONS_TMP: Final = "__donor_sync__resolve_decisions"

#: what a source's donor id names (core.donor_sources.id_kind); other sources: source_id
ID_KINDS: Final[dict[str, str]] = {
    "stripe": "customer",
    "donorbox": "donor",
    "classy": "supporter",
    "bank_cheque": "csv_id",
    "event_platform": "csv_id",
}
#: staging.donors columns that are bookkeeping, not the record's attributes
_NOT_ATTRIBUTES: Final = (
    "staging_donor_id",
    "raw_record_id",
    "batch_id",
    "source",
    "source_id",
    "source_updated_at",
    "standardized_at",
    "resolved_at",
    "donor_id",
)


@dataclass(frozen=True)
class ResolveRules:
    """Everything resolve reads from include/mappings: dedup rules, nicknames, survivorship."""

    dedup: DedupRules
    nicknames: Nicknames
    survivorship: SurvivorshipRules

    @functools.cached_property
    def scoring(self) -> DedupRules:
        """Return the dedup rules without term-frequency adjustments, for scoring (an adapter).

        The engine takes a value's frequency from the records it is given; in incremental matching
        that is one batch plus its candidates (a shared surname among three records would look
        common and count for almost nothing), so scoring uses each level's u instead.
        """
        data = self.dedup.model_dump(mode="json", exclude_none=True)
        for comparison in data["comparisons"]:
            for level in comparison["levels"]:
                if level.get("term_frequency"):
                    level["term_frequency"] = False
        return DedupRules.model_validate(data)

    @property
    def version(self) -> str:
        """Return a short hash of the dedup rules (review_queue.rules_version, cluster_map.decided_by)."""
        text = json.dumps(self.dedup.model_dump(mode="json"), sort_keys=True)
        return "dedup:" + hashlib.sha256(text.encode()).hexdigest()[:12]


def load_resolve_rules() -> ResolveRules:
    """Load the shipped dedup rules, nickname table and survivorship rules."""
    return ResolveRules(load_rules(), load_nicknames(), load_survivorship())


@dataclass
class ResolveCounts:
    """What one :func:`resolve_donors` call did (counts only: safe to log and to record as metrics)."""

    staged_rows: int = 0
    source_records: int = 0
    known_records: int = 0
    new_records: int = 0
    new_donors: int = 0
    deterministic: int = 0
    auto_merged: int = 0
    review_queued: int = 0
    household_links: int = 0
    donors_touched: int = 0
    golden_changed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as plain data."""
        return asdict(self)


@dataclass(frozen=True)
class _Decision:
    """Where one cluster of new records goes."""

    donor_id: str
    decision: str  # new_donor | deterministic | auto_merge
    score: float | None
    explanation: dict[str, Any]


def _explanation(pair: pd.Series, rules: DedupRules, model: MatchModel, **extra: Any) -> dict[str, Any]:
    """Return a pair's explanation: band, rule, passes, probability, per-field level and weight."""
    contributions = {
        c.name: {"level": int(pair[f"{c.name}_level"]), "weight": round(float(pair[f"{c.name}_weight"]), 4)}
        for c in rules.comparisons
    }
    return {
        "band": str(pair["band"]),
        "rule": str(pair["rule"]) if pair["rule"] else None,
        "passes": int(pair["passes"]),
        "match_weight": round(float(pair["match_weight"]), 4),
        "prior_weight": round(model.prior_weight, 4),
        "contributions": contributions,
        **extra,
    }


def _load_records(conn: psycopg.Connection, batch_ids: Sequence[int]) -> int:
    """Fill the records temp table with the latest unresolved version of each source record."""
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (rec int PRIMARY KEY, source text, source_id text,"
            " raw_record_id bigint, source_updated_at timestamptz, attributes jsonb, known_donor uuid,"
            " known_source_id bigint) ON COMMIT DROP"
        ).format(sql.Identifier(RECORDS_TMP))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(RECORDS_TMP)))
    cur = conn.execute(
        sql.SQL(
            "INSERT INTO {tmp} SELECT row_number() OVER (ORDER BY v.source, v.source_id)::int, v.source,"
            " v.source_id, v.raw_record_id, v.source_updated_at,"
            " jsonb_strip_nulls(to_jsonb(v) - %(drop)s::text[]), ds.donor_id, ds.donor_source_id"
            " FROM (SELECT DISTINCT ON (s.source, s.source_id) s.* FROM staging.donors s"
            "       WHERE s.batch_id = ANY(%(batches)s) AND s.resolved_at IS NULL"
            "       ORDER BY s.source, s.source_id, s.source_updated_at DESC NULLS LAST, s.raw_record_id"
            " DESC) v"
            " LEFT JOIN core.donor_sources ds ON ds.system = v.source AND ds.external_id = v.source_id"
        ).format(tmp=sql.Identifier(RECORDS_TMP)),
        {"batches": list(batch_ids), "drop": list(_NOT_ATTRIBUTES)},
    )
    return cur.rowcount


def _new_records(conn: psycopg.Connection) -> pd.DataFrame:
    """Return the records not yet known as identity input (``record_id`` = rec as text) plus ``rec``."""
    fields = match_store.MATCH_FIELDS
    buffer = io.BytesIO()
    select = sql.SQL(", ").join(
        sql.SQL("attributes ->> {} AS {}").format(sql.Literal(f), sql.Identifier(f)) for f in fields
    )
    query = sql.SQL(
        "COPY (SELECT rec, {} FROM {} WHERE known_donor IS NULL ORDER BY rec) TO STDOUT (FORMAT csv, HEADER)"
    ).format(select, sql.Identifier(RECORDS_TMP))
    with conn.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    frame = pd.read_csv(buffer, dtype=str, keep_default_na=False, na_values=[""])
    if frame.empty:
        return frame
    frame["is_organization"] = frame["is_organization"].map({"true": True, "false": False})
    frame["rec"] = frame["rec"].astype(int)
    frame["record_id"] = "r" + frame["rec"].astype(str)
    return frame


def _union_find(n: int, pairs: list[tuple[int, int]]) -> list[int]:
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [root(x) for x in range(n)]


@dataclass
class _Plan:
    """Decisions of one call: per new record its cluster's decision; pairs for review and households."""

    record_decision: dict[int, _Decision] = field(default_factory=dict)  # rec -> decision
    reviews: dict[tuple[str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    households: dict[tuple[str, str], float] = field(default_factory=dict)


def _add_pair(store: dict[tuple[str, str], Any], a: str, b: str, value: Any, score: float) -> None:
    if a == b:
        return
    key = (min(a, b), max(a, b))
    current = store.get(key)
    if current is None or score > float(current[0] if isinstance(current, tuple) else current):
        store[key] = value


@dataclass
class _Scored:
    """The engine's verdicts for one call: clusters of new records and new-golden pairs."""

    n: int
    cluster_of: np.ndarray
    within: pd.DataFrame
    pairs: pd.DataFrame
    golden_ids: np.ndarray
    emails: np.ndarray

    def __post_init__(self) -> None:
        self.bands = self.pairs["band"].astype(str).to_numpy(dtype=object)
        self.weights = self.pairs["match_weight"].to_numpy(dtype=np.float64)
        self.probabilities = self.pairs["match_probability"].to_numpy(dtype=np.float64)
        self.lefts = self.pairs["left_row"].to_numpy(dtype=np.int64)
        self.rights = self.pairs["right_row"].to_numpy(dtype=np.int64)


def _score(
    new: pd.DataFrame, golden: pd.DataFrame, candidates: pd.DataFrame, rules: ResolveRules, model: MatchModel
) -> _Scored:
    """Run the engine: the new records among themselves, then each against its candidate golden records."""
    dedup = rules.scoring
    n = len(new)
    new_frame = new.drop(columns=["rec"])
    ident_new = match_store.identity_frame(new_frame.assign(donor_id=new_frame["record_id"]), "donor_id")
    both = pd.concat([ident_new, match_store.identity_frame(golden, "donor_id")], ignore_index=True)
    prepared_all = prepare(both, nicknames=rules.nicknames)
    prepared_new = PreparedRecords(prepared_all.frame.iloc[:n].reset_index(drop=True))
    within = resolve(
        prepared_new,
        candidate_pairs(prepared_new, dedup.blocking),
        dedup,
        nicknames=rules.nicknames,
        model=model,
        fit=False,
    )
    golden_row = {d: n + i for i, d in enumerate(golden["donor_id"].astype(str))}
    left = candidates["row"].to_numpy(dtype=np.int64)
    right = np.array([golden_row[d] for d in candidates["donor_id"]], dtype=np.int64)
    passes = candidates["passes"].to_numpy(dtype=np.int64)
    pass_names = tuple(p.name for p in dedup.blocking.passes)
    linked = resolve(
        prepared_all,
        CandidatePairs(left, right, passes, pass_names, {}),
        dedup,
        nicknames=rules.nicknames,
        model=model,
        fit=False,
    )
    return _Scored(
        n,
        pd.factorize(within.records["cluster_id"])[0],
        within.pairs,
        linked.pairs,
        golden["donor_id"].astype(str).to_numpy(dtype=object),
        prepared_all.frame["email"].to_numpy(dtype=object, na_value=None),
    )


def _evidence(scored: _Scored, pair_rows: list[int], cannot_below: float) -> dict[str, dict[str, Any]]:
    """Return per golden donor the strongest pairs of one cluster: same email, auto-merge, review."""
    evidence: dict[str, dict[str, Any]] = {}
    w = scored.weights
    for p in pair_rows:
        donor = str(scored.golden_ids[scored.rights[p] - scored.n])
        entry = evidence.setdefault(
            donor, {"email": -1, "best": -1, "household": False, "cannot": False, "review": -1}
        )
        left_email = scored.emails[scored.lefts[p]]
        same_email = left_email is not None and left_email == scored.emails[scored.rights[p]]
        band = scored.bands[p]
        if band == HOUSEHOLD:
            entry["household"] = True
        elif same_email and (entry["email"] < 0 or w[p] > w[entry["email"]]):
            entry["email"] = p
        if band == AUTO_MERGE and (entry["best"] < 0 or w[p] > w[entry["best"]]):
            entry["best"] = p
        if band in (REVIEW, AUTO_MERGE) and (entry["review"] < 0 or w[p] > w[entry["review"]]):
            entry["review"] = p
        if scored.probabilities[p] < cannot_below and not same_email:
            entry["cannot"] = True
    return evidence


def _choose(
    scored: _Scored, evidence: dict[str, dict[str, Any]], rules: DedupRules, model: MatchModel
) -> _Decision | None:
    """Return the golden donor a cluster joins (same email first, then the strongest auto-merge)."""
    eligible = [
        (1 if e["email"] >= 0 else 0, scored.weights[e["email"] if e["email"] >= 0 else e["best"]], donor)
        for donor, e in evidence.items()
        if not e["household"] and not e["cannot"] and (e["email"] >= 0 or e["best"] >= 0)
    ]
    if not eligible:
        return None
    _, _, target = max(eligible)
    chosen = evidence[target]
    p = chosen["email"] if chosen["email"] >= 0 else chosen["best"]
    if chosen["email"] >= 0:
        explanation = _explanation(scored.pairs.iloc[p], rules, model, rule="same_email")
        return _Decision(target, "deterministic", float(scored.probabilities[p]), explanation)
    explanation = _explanation(scored.pairs.iloc[p], rules, model)
    return _Decision(target, "auto_merge", float(scored.probabilities[p]), explanation)


def _plan(
    new: pd.DataFrame,
    *,
    golden: pd.DataFrame,
    candidates: pd.DataFrame,
    rules: ResolveRules,
    model: MatchModel,
    counts: ResolveCounts,
) -> _Plan:
    """Decide, in memory, where each new record goes (see the module docstring)."""
    dedup = rules.scoring
    # the same m, u and prior over the comparisons without term-frequency adjustments
    model = MatchModel(tuple(dedup.comparisons), model.m, model.u, model.prior, [*model.history])
    scored = _score(new, golden, candidates, rules, model)
    recs = new["rec"].to_numpy(dtype=np.int64)
    plan = _Plan()
    by_cluster: dict[int, list[int]] = {}
    for i, c in enumerate(scored.cluster_of.tolist()):
        by_cluster.setdefault(c, []).append(i)
    pair_rows: dict[int, list[int]] = {}
    for p, row in enumerate(scored.lefts.tolist()):
        pair_rows.setdefault(int(scored.cluster_of[row]), []).append(p)
    cluster_donor: dict[int, str] = {}
    for cluster, members in by_cluster.items():
        evidence = _evidence(scored, pair_rows.get(cluster, []), dedup.clustering.cannot_link_below)
        decision = _choose(scored, evidence, dedup, model)
        if decision is None:
            decision = _Decision(str(uuid.uuid4()), "new_donor", None, {"band": "new_donor"})
            counts.new_donors += 1
        elif decision.decision == "deterministic":
            counts.deterministic += len(members)
        else:
            counts.auto_merged += len(members)
        cluster_donor[cluster] = decision.donor_id
        for i in members:
            plan.record_decision[int(recs[i])] = decision
        for donor, e in evidence.items():
            if donor == decision.donor_id:
                continue
            if e["household"]:
                _add_pair(plan.households, decision.donor_id, donor, 1.0, 1.0)
            elif e["review"] >= 0:
                p = e["review"]
                probability = float(scored.probabilities[p])
                value = (probability, _explanation(scored.pairs.iloc[p], dedup, model))
                _add_pair(plan.reviews, decision.donor_id, donor, value, probability)
    _batch_links(plan, scored, cluster_donor, dedup, model)
    return plan


def _batch_links(
    plan: _Plan, scored: _Scored, cluster_donor: dict[int, str], rules: DedupRules, model: MatchModel
) -> None:
    """Add review and household pairs between clusters of the batch that were not merged."""
    within = scored.within
    bands = within["band"].astype(str).to_numpy(dtype=object)
    probabilities = within["match_probability"].to_numpy(dtype=np.float64)
    ends = zip(within["left_row"].tolist(), within["right_row"].tolist(), strict=True)
    for p, (a, b) in enumerate(ends):
        da, db = cluster_donor[int(scored.cluster_of[a])], cluster_donor[int(scored.cluster_of[b])]
        if da == db:
            continue
        if bands[p] == HOUSEHOLD:
            _add_pair(plan.households, da, db, 1.0, 1.0)
        elif bands[p] in (REVIEW, AUTO_MERGE):
            value = (float(probabilities[p]), _explanation(within.iloc[p], rules, model))
            _add_pair(plan.reviews, da, db, value, float(probabilities[p]))


def _write_decisions(conn: psycopg.Connection, plan: _Plan, decided_by: str, now: datetime) -> list[str]:
    """Write donors, donor_sources and cluster_map rows of the new records; return the donors touched."""
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {} (rec int PRIMARY KEY, donor_id uuid, decision text,"
            " decision_id uuid, score numeric, explanation jsonb) ON COMMIT DROP"
        ).format(sql.Identifier(DECISIONS_TMP))
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(DECISIONS_TMP)))
    decision_ids: dict[int, str] = {}
    rows = []
    for rec, d in sorted(plan.record_decision.items()):
        did = decision_ids.setdefault(id(d), str(uuid.uuid4()))
        rows.append((rec, d.donor_id, d.decision, did, d.score, json.dumps(d.explanation)))
    frame = pd.DataFrame(rows, columns=["rec", "donor_id", "decision", "decision_id", "score", "explanation"])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    with (
        conn.cursor() as cur,
        cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(DECISIONS_TMP))) as copy,
    ):
        copy.write(buffer.getvalue())
    params = {"now": now, "by": decided_by}
    conn.execute(
        sql.SQL(
            "INSERT INTO core.donors (donor_id, created_at) SELECT DISTINCT donor_id, %(now)s FROM {}"
            " WHERE decision = 'new_donor'"
        ).format(sql.Identifier(DECISIONS_TMP)),
        params,
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind, attributes,"
            " attributes_at, last_raw_record_id, first_seen_at, last_seen_at)"
            " SELECT d.donor_id, r.source, r.source_id, 'source',"
            " coalesce((%(kinds)s::jsonb) ->> r.source, 'source_id'), r.attributes, r.source_updated_at,"
            " r.raw_record_id, %(now)s, %(now)s FROM {d} d JOIN {r} r USING (rec)"
        ).format(d=sql.Identifier(DECISIONS_TMP), r=sql.Identifier(RECORDS_TMP)),
        {**params, "kinds": json.dumps(ID_KINDS)},
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO core.cluster_map (donor_source_id, donor_id, decision, decision_id, match_score,"
            " match_explanation, decided_by, valid_from)"
            " SELECT ds.donor_source_id, d.donor_id, d.decision, d.decision_id, d.score, d.explanation,"
            " %(by)s, %(now)s FROM {d} d JOIN {r} r USING (rec)"
            " JOIN core.donor_sources ds ON ds.system = r.source AND ds.external_id = r.source_id"
        ).format(d=sql.Identifier(DECISIONS_TMP), r=sql.Identifier(RECORDS_TMP)),
        params,
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO core.merge_decisions (decision_id, decision, survivor_id, decided_by, decided_at)"
            " SELECT DISTINCT decision_id, decision, donor_id, %(by)s, %(now)s::timestamptz FROM {}"
            " WHERE decision <> 'new_donor'"
        ).format(sql.Identifier(DECISIONS_TMP)),
        params,
    )
    return sorted({d.donor_id for d in plan.record_decision.values()})


def _refresh_known(conn: psycopg.Connection, now: datetime) -> list[str]:
    """Refresh attributes of records already known when this version is newer; return their donors."""
    rows = conn.execute(
        sql.SQL(
            "UPDATE core.donor_sources ds SET attributes = r.attributes, attributes_at = r.source_updated_at,"
            " last_raw_record_id = r.raw_record_id, last_seen_at = %(now)s"
            " FROM {} r WHERE ds.donor_source_id = r.known_source_id"
            " AND (ds.attributes_at IS NULL OR r.source_updated_at IS NULL OR r.source_updated_at >="
            " ds.attributes_at)"
            " AND (ds.attributes, ds.last_raw_record_id) IS DISTINCT FROM (r.attributes, r.raw_record_id)"
            " RETURNING ds.donor_id::text"
        ).format(sql.Identifier(RECORDS_TMP)),
        {"now": now},
    ).fetchall()
    return sorted({r[0] for r in rows})


def propose_reviews(
    conn: psycopg.Connection,
    reviews: dict[tuple[str, str], tuple[float, dict[str, Any]]],
    *,
    rules_version: str,
) -> int:
    """Queue donor pairs for review, canonical order; a pair decided before is never queued again.

    A pair counts as decided before when it, or the pair of the donors either side was merged into
    (merged_into: never chained), has a row already.

    :return: how many rows were added.
    """
    if not reviews:
        return 0
    lefts, rights, scores, explanations = [], [], [], []
    for (a, b), (score, explanation) in sorted(reviews.items()):
        lefts.append(a)
        rights.append(b)
        scores.append(score)
        explanations.append(json.dumps(explanation.get("contributions", {})))
    cur = conn.execute(
        "INSERT INTO sync.review_queue (left_donor_id, right_donor_id, score, contributions, band,"
        " rules_version)"
        " SELECT least(t.a, t.b), greatest(t.a, t.b), t.score, t.contributions, 'review', %(version)s"
        " FROM unnest(%(a)s::uuid[], %(b)s::uuid[], %(s)s::numeric[], %(c)s::jsonb[]) AS t(a, b, score,"
        " contributions)"
        " WHERE NOT EXISTS ("
        "   SELECT 1 FROM sync.review_queue q"
        "   JOIN core.donors l ON l.donor_id = q.left_donor_id JOIN core.donors r ON r.donor_id ="
        " q.right_donor_id"
        "   WHERE q.decision = 'reject' AND ("
        "     (coalesce(l.merged_into, l.donor_id), coalesce(r.merged_into, r.donor_id)) IN ((t.a, t.b),"
        " (t.b, t.a))))"
        " ON CONFLICT (left_donor_id, right_donor_id) DO NOTHING",
        {"a": lefts, "b": rights, "s": scores, "c": explanations, "version": rules_version},
    )
    return cur.rowcount


def link_households(
    conn: psycopg.Connection, pairs: Sequence[tuple[str, str]], *, linked_by: str, now: datetime
) -> int:
    """Link donor pairs as households (never merged): join an existing household or create one.

    Donors already in two different households are left as they are.

    :return: how many donors were added to a household.
    """
    if not pairs:
        return 0
    donors = sorted({d for pair in pairs for d in pair})
    index = {d: i for i, d in enumerate(donors)}
    roots = _union_find(len(donors), [(index[a], index[b]) for a, b in pairs])
    existing: dict[str, str] = dict(
        conn.execute(
            "SELECT donor_id::text, household_id::text FROM core.household_members WHERE donor_id ="
            " ANY(%s::uuid[])",
            (donors,),
        ).fetchall()
    )
    groups: dict[int, list[str]] = {}
    for d in donors:
        groups.setdefault(roots[index[d]], []).append(d)
    new_households: list[tuple[str, str]] = []  # (household_id, donor whose golden names it)
    members: list[tuple[str, str, str]] = []  # donor, household, role
    for group in groups.values():
        held = sorted({existing[d] for d in group if d in existing})
        if len(held) > 1:
            continue
        if held:
            household = held[0]
            role_taken = True
        else:
            household = str(uuid.uuid4())
            new_households.append((household, group[0]))
            role_taken = False
        for d in group:
            if d in existing:
                continue
            members.append((d, household, "member" if role_taken else "primary"))
            role_taken = True
    if new_households:
        conn.execute(
            "INSERT INTO core.households (household_id, name, address_line1, address_line2, city, region,"
            " postal_code, country_code, created_at)"
            " SELECT h.id, CASE WHEN d.last_name IS NOT NULL THEN d.last_name || ' Household' END,"
            " d.address_line1, d.address_line2, d.city, d.region, d.postal_code, d.country_code, %(now)s"
            " FROM unnest(%(h)s::uuid[], %(d)s::uuid[]) AS h(id, donor) JOIN core.donors d ON d.donor_id ="
            " h.donor",
            {"h": [h for h, _ in new_households], "d": [d for _, d in new_households], "now": now},
        )
    if members:
        conn.execute(
            "INSERT INTO core.household_members (donor_id, household_id, role, link_reason, linked_by,"
            " linked_at)"
            ' SELECT m.donor, m.household, m.role, \'{"rule": "household"}\'::jsonb, %(by)s, %(now)s'
            " FROM unnest(%(d)s::uuid[], %(h)s::uuid[], %(r)s::text[]) AS m(donor, household, role)"
            " ON CONFLICT (donor_id) DO NOTHING",
            {
                "d": [m[0] for m in members],
                "h": [m[1] for m in members],
                "r": [m[2] for m in members],
                "by": linked_by,
                "now": now,
            },
        )
    return len(members)


def _complete_households(conn: psycopg.Connection, donor_ids: Sequence[str]) -> None:
    """Name and place the touched donors' households still without them, from a member's golden record.

    A household is created before its new members' golden records are computed, so its name and
    address come from whichever member has them once they are (the primary member first).
    """
    if not donor_ids:
        return
    conn.execute(
        """
        UPDATE core.households h
           SET name = coalesce(h.name, m.last_name || ' Household'),
               address_line1 = coalesce(h.address_line1, m.address_line1),
               address_line2 = CASE WHEN h.address_line1 IS NULL THEN m.address_line2
                                    ELSE h.address_line2 END,
               city = CASE WHEN h.address_line1 IS NULL THEN m.city ELSE h.city END,
               region = CASE WHEN h.address_line1 IS NULL THEN m.region ELSE h.region END,
               postal_code = CASE WHEN h.address_line1 IS NULL THEN m.postal_code ELSE h.postal_code END,
               country_code = CASE WHEN h.address_line1 IS NULL THEN m.country_code ELSE h.country_code END
          FROM (
            SELECT DISTINCT ON (hm.household_id) hm.household_id, d.last_name, d.address_line1,
                   d.address_line2, d.city, d.region, d.postal_code, d.country_code
              FROM core.household_members hm JOIN core.donors d USING (donor_id)
             WHERE hm.household_id IN (SELECT household_id FROM core.household_members
                                        WHERE donor_id = ANY(%(donors)s::uuid[]))
               AND d.last_name IS NOT NULL
             ORDER BY hm.household_id, hm.role = 'primary' DESC, d.donor_id
          ) m
         WHERE h.household_id = m.household_id AND (h.name IS NULL OR h.address_line1 IS NULL)
        """,
        {"donors": list(donor_ids)},
    )


def _ensure_match_keys(conn: psycopg.Connection, rules: ResolveRules) -> None:
    """Rebuild the stored keys when they were built with other blocking rules."""
    stored = match_store.stored_version(conn)
    if stored is not None and stored != match_store.blocking_version(rules.dedup):
        log.warning("blocking rules changed since the match keys were built: rebuilding them")
        match_store.rebuild_match_keys(conn, rules.dedup, nicknames=rules.nicknames)


def resolve_donors(
    conn: psycopg.Connection,
    batch_ids: Sequence[int],
    *,
    rules: ResolveRules,
    now: datetime,
    actor: str,
    model: MatchModel | None = None,
    erased_keys: KeySource | None = None,
) -> ResolveCounts:
    """Resolve the unresolved staged donors of ``batch_ids`` to golden donors (see the module docstring).

    Staged donors of erased donors (a tombstone matches) are attached to the erased donor, blanked
    and never resolved further (:func:`donor_sync.privacy.erasure.tombstones.screen_staged_donors`).

    Idempotent: resolved rows are not read again, and a record already known keeps its donor.
    Not committed: the caller commits (the whole call is one transaction).

    :param rules: :func:`load_resolve_rules`.
    :param now: the time written on mappings, sources and resolved rows.
    :param actor: who runs it (``dag:<dag_id>.<task_id>``, ``cli:<user>``), for the audit log.
    :param model: the match model (default: the active model refitted from review decisions,
        else the rules' priors; :func:`donor_sync.resolve.match_models.load_active_model`).
    :param erased_keys: where the tombstone key ring comes from (default: the default key source).
    :return: counts (no PII).
    """
    import time

    from donor_sync.privacy.erasure.tombstones import screen_staged_donors
    from donor_sync.resolve.match_models import load_active_model

    counts = ResolveCounts()
    started = time.perf_counter()
    screen_staged_donors(conn, batch_ids, now=now, actor=actor, keys=erased_keys)
    model = model or load_active_model(conn, rules)
    _ensure_match_keys(conn, rules)
    counts.source_records = _load_records(conn, batch_ids)
    counts.staged_rows = int(
        conn.execute(
            "SELECT count(*) FROM staging.donors WHERE batch_id = ANY(%s) AND resolved_at IS NULL",
            (list(batch_ids),),
        ).fetchone()[0]  # type: ignore[index]
    )
    touched = set(_refresh_known(conn, now))
    new = _new_records(conn)
    counts.new_records = len(new)
    counts.known_records = counts.source_records - counts.new_records
    counts.timings["load"] = round(time.perf_counter() - started, 3)
    if len(new):
        t = time.perf_counter()
        ident = match_store.identity_frame(
            new.drop(columns=["record_id"]).assign(donor_id=new["record_id"]), "donor_id"
        )
        prepared = prepare(ident, nicknames=rules.nicknames)
        keys = match_store.long_keys(prepared, rules.dedup)
        candidates = match_store.fetch_candidates(conn, keys, rules.dedup)
        golden = match_store.read_golden(conn, sorted(set(candidates["donor_id"])))
        candidates = candidates[candidates["donor_id"].isin(set(golden["donor_id"]))]
        counts.timings["candidates"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        plan = _plan(new, golden=golden, candidates=candidates, rules=rules, model=model, counts=counts)
        counts.timings["score"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        touched |= set(_write_decisions(conn, plan, rules.version, now))
        counts.review_queued = propose_reviews(conn, plan.reviews, rules_version=rules.version)
        counts.household_links = link_households(
            conn, sorted(plan.households), linked_by=rules.version, now=now
        )
        counts.timings["write"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    counts.donors_touched = len(touched)
    counts.golden_changed = recompute_golden(conn, sorted(touched), rules.survivorship)
    _complete_households(conn, sorted(touched))
    match_store.refresh_match_keys(conn, sorted(touched), rules.dedup, nicknames=rules.nicknames)
    conn.execute(
        "UPDATE staging.donors s SET donor_id = ds.donor_id, resolved_at = %(now)s FROM core.donor_sources ds"
        " WHERE s.batch_id = ANY(%(batches)s) AND s.resolved_at IS NULL"
        " AND ds.system = s.source AND ds.external_id = s.source_id",
        {"batches": list(batch_ids), "now": now},
    )
    if counts.source_records:
        conn.execute(
            "INSERT INTO sync.audit_log (at, actor, action, object_type, object_id, details)"
            " VALUES (%s, %s, 'donors.resolved', 'batch', %s, %s)",
            (
                now,
                actor,
                ",".join(str(b) for b in sorted(batch_ids)),
                json.dumps({k: v for k, v in counts.as_dict().items() if k != "timings"}),
            ),
        )
    counts.timings["golden"] = round(time.perf_counter() - t, 3)
    log.info(
        "resolve donors: %s records (%s new), %s new donors, %s deterministic, %s auto-merged,"
        " %s queued for review, %s household links",
        counts.source_records,
        counts.new_records,
        counts.new_donors,
        counts.deterministic,
        counts.auto_merged,
        counts.review_queued,
        counts.household_links,
    )
    return counts


def match_record(
    conn: psycopg.Connection,
    record: dict[str, Any],
    *,
    rules: ResolveRules,
    model: MatchModel | None = None,
) -> pd.DataFrame:
    """Match one record against the live golden records: its blocking keys looked up, pairs scored.

    The incremental path of :func:`resolve_donors` for a single record (what ``bench/match_one.py``
    times); nothing is written.

    :param record: staging.donors / core.donors field names (first_name, last_name, email, phone,
        address_line1, city, region, postal_code, country_code, birth_date...).
    :return: one row per candidate golden record, strongest first: ``donor_id``, ``band``,
        ``match_probability``, ``match_weight``, ``household`` and per-comparison levels and weights.
    """
    from donor_sync.resolve.match_models import load_active_model

    model = model or load_active_model(conn, rules)
    scoring = rules.scoring
    model = MatchModel(tuple(scoring.comparisons), model.m, model.u, model.prior, [*model.history])
    new = match_store.identity_frame(pd.DataFrame([{**record, "donor_id": "new"}]))
    fast = match_store.standardized_fast_path(new)
    prepared = (
        match_store.prepare_standardized(new, nicknames=rules.nicknames)
        if fast
        else prepare(new, nicknames=rules.nicknames)
    )
    candidates = match_store.fetch_candidates(conn, match_store.long_keys(prepared, rules.dedup), rules.dedup)
    if candidates.empty:
        return pd.DataFrame({"donor_id": [], "band": [], "match_probability": [], "match_weight": []})
    golden = match_store.read_golden(conn, candidates["donor_id"].tolist())
    both = pd.concat([new, match_store.identity_frame(golden)], ignore_index=True)
    prepared_all = (
        match_store.prepare_standardized(both, nicknames=rules.nicknames)
        if match_store.standardized_fast_path(both)
        else prepare(both, nicknames=rules.nicknames)
    )
    position = {d: i + 1 for i, d in enumerate(golden["donor_id"])}
    candidates = candidates[candidates["donor_id"].isin(position)]
    right = candidates["donor_id"].map(position).to_numpy(dtype=np.int64)
    pairs = CandidatePairs(
        np.zeros(len(right), dtype=np.int64),
        right,
        candidates["passes"].to_numpy(dtype=np.int64),
        tuple(p.name for p in scoring.blocking.passes),
        {},
    )
    scored = resolve(prepared_all, pairs, scoring, nicknames=rules.nicknames, model=model, fit=False).pairs
    scored.insert(0, "donor_id", scored["right_id"])
    return scored.drop(columns=["left_id", "right_id"]).sort_values(
        "match_weight", ascending=False, ignore_index=True
    )
