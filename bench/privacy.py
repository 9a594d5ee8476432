"""Benchmark the privacy machinery over ``--size`` donors: consent state, the gate, the audit chain, erasure.

A fresh database gets ``--size`` golden donors (5% merged into another donor), each received once
as a Stripe customer (raw record, staged row and source cross-reference, so an erasure's purge
searches a realistic raw store) and each with a few consent events (every purpose and channel,
``all`` included, opt-outs newer and older than opt-ins, choices made at the same instant, about
12% with an expiry of which about half has passed), all synthesized with numpy and loaded with
COPY or set-based SQL (not timed). Then, timed:

1. **Consent state**: :func:`~donor_sync.privacy.consent.state.refresh_consent_state` over every
   donor (first run: every row written, ``consent.changed`` audited per donor), then again
   (nothing changed). 1,000 random donors and their merge families are re-derived with the pure
   reference :func:`~donor_sync.privacy.consent.state.derive` and compared row by row.
2. **The gate's cost**: the outbox run of ``salesforce`` with its shipped mapping over every donor
   (full scope), as a dry run -- :func:`~donor_sync.delivery.outbox.pipeline.prepare` in a
   rolled-back transaction, which is what ``plan_destination`` does (that function takes no
   ``gate=``) -- with the shipped gate and with a pass-through gate (every row allowed, as read),
   best of ``--repeats`` each, plus the time spent inside the gate's ``apply``. Then one real
   :func:`~donor_sync.delivery.outbox.queue_destination` (the outbox written), and after the
   erasures below one more dry run with tombstones present (the gate's tombstone check on).
3. **Erasure**: ``--erasures`` requests, each for one donor (two of them survivors of merges),
   processed alone by :func:`~donor_sync.privacy.requests.process.process_requests` with no
   destination eraser (freeze, tombstones, local purge, receipt). Then the no-resurrection
   screen: :func:`~donor_sync.privacy.erasure.tombstones.screen_staged_donors` over a new batch of
   10,000 staged donors among which the erased donors arrive again.
4. **Audit chain**: ``10 * --size`` audit rows inserted through the chain trigger (INSERT ...
   SELECT generate_series, 100,000 rows a statement), then
   :func:`~donor_sync.privacy.audit_chain.verify_chain` over the whole log.

Peak RSS is reported per phase for this process and for the session's Postgres backend (VmHWM,
reset before each phase, so a phase's peak is at least what the process already held; when the
server runs on this machine). Results go to
bench/results/privacy.json. Run from the repository root:
``.venv/bin/python bench/privacy.py --size 100000``.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _common import (
    add_common_arguments,
    bench_url,
    check,
    comparison,
    headline,
    metric,
    random_uuids,
    write_result,
)

from donor_sync.privacy.gate import DestinationGate, GateResult

DB_NAME = "ds_bench_privacy"
#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 300
DESTINATION = "salesforce"
ACTOR = "bench:privacy"
PURPOSES = np.array(["marketing", "fundraising", "profiling", "sharing"], dtype=object)
CHANNELS = np.array(["email", "sms", "phone", "mail", "all"], dtype=object)
STATUSES = np.array(["opt_in", "soft_opt_in", "opt_out"], dtype=object)
BASIS = {"opt_in": "consent", "soft_opt_in": "legitimate_interests", "opt_out": None}
AUDIT_CHUNK = 100_000


@dataclass(frozen=True)
class Options:
    """What one benchmark run does (defaults: the full run)."""

    size: int = 100_000
    seed: int = 29
    keep: bool = False
    db_name: str = DB_NAME
    #: donors re-derived by the pure reference (with their merge families)
    sample: int = 1_000
    erasures: int = 5
    screen_rows: int = 10_000
    #: dry runs per gate variant (the best is reported)
    repeats: int = 2
    #: audit rows inserted per donor
    audit_factor: int = 10


@dataclass
class Outcome:
    """What :func:`run` measured: the result file's parameters, metrics and comparisons."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)

    def value(self, name: str) -> dict[str, Any]:
        """Return the metric ``name`` (its whole entry)."""
        return next(m for m in self.metrics if m["name"] == name)

    def verdict(self, name: str) -> dict[str, Any]:
        """Return the comparison ``name``."""
        return next(c for c in self.compared if c["name"] == name)


# -- memory -------------------------------------------------------------------------------------------


def _hwm_gib(pid: int | str) -> float | None:
    """Return the peak RSS (VmHWM) of a process in GiB, when readable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024 / 1024, 3)
    except OSError:
        return None
    return None


def _reset_hwm(pid: int | str) -> bool:
    """Reset a process's peak RSS to its current RSS (Linux ``clear_refs`` 5); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Peaks:
    """Peak RSS of this process and of the session's backend, per phase."""

    backend_pid: int
    by_phase: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        own = _reset_hwm("self")
        backend = _reset_hwm(self.backend_pid)
        yield
        self.by_phase[name] = {
            "process": _hwm_gib("self") if own else None,
            "backend": _hwm_gib(self.backend_pid) if backend else None,
        }


# -- synthesis ----------------------------------------------------------------------------------------


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(
        seconds.astype("datetime64[s]").astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")
    )


def _copy(conn: psycopg.Connection, table: tuple[str, str], columns: Mapping[str, Any]) -> None:
    """COPY columns (name → array) into ``schema.table`` as CSV (None → NULL)."""
    from psycopg import sql

    arrow = pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()})
    buffer = io.BytesIO()
    pa_csv.write_csv(arrow, buffer, pa_csv.WriteOptions(include_header=False))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(*table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.write(buffer.getvalue())


def synthesize(conn: psycopg.Connection, donors: int, seed: int, now: datetime) -> dict[str, int]:
    """Load donors (5% merged), their Stripe source records and consent events; return the counts."""
    rng = np.random.default_rng(seed)
    ids = random_uuids(rng, donors)
    now_s = now.timestamp()
    start_s = datetime(2019, 1, 1, tzinfo=UTC).timestamp()
    merged = rng.random(donors) < 0.05
    survivors = np.flatnonzero(~merged)
    merged_into = np.full(donors, None, dtype=object)
    merged_into[merged] = ids[rng.choice(survivors, int(merged.sum()))]
    merged_s = start_s + 2 * 365 * 86400 + rng.random(donors) * (now_s - 86400 - start_s - 2 * 365 * 86400)
    merged_at = pa.array(
        np.where(merged, merged_s, 0).astype("datetime64[s]").astype("datetime64[us]"),
        type=pa.timestamp("us", tz="UTC"),
        mask=~merged,
    )
    first = np.array(["Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo"], dtype=object)
    numbers = np.arange(donors).astype(str)
    has_phone = rng.random(donors) < 0.5
    phones = [f"+1202{i:07d}" if has else None for i, has in enumerate(has_phone)]
    _copy(
        conn,
        ("core", "donors"),
        {
            "donor_id": ids,
            "first_name": first[rng.integers(0, len(first), donors)],
            "last_name": np.char.add("Surname", rng.integers(0, 50_000, donors).astype(str)).astype(object),
            "email": np.char.add(np.char.add("donor", numbers), "@bench.example.org").astype(object),
            "phone": pa.array(phones, type=pa.string()),
            "postal_code": rng.integers(10_000, 99_999, donors).astype(str).astype(object),
            "country_code": np.full(donors, "US", dtype=object),
            "merged_into": pa.array(list(merged_into), type=pa.string()),
            "merged_at": merged_at,
            "updated_at": _ts(np.full(donors, now_s - 3600)),
        },
    )
    # Consent events: 1 + Poisson(1.8) per donor (at most 8), time-ordered per donor.
    per_donor = np.minimum(1 + rng.poisson(1.8, donors), 8)
    n = int(per_donor.sum())
    owner = np.repeat(np.arange(donors), per_donor)
    at = start_s + rng.random(n) * (now_s - 3600 - start_s)
    # 3% of events share the instant of the donor's previous event (ties ranked by restrictiveness).
    tie = np.zeros(n, dtype=bool)
    tie[1:] = (rng.random(n - 1) < 0.03) & (owner[1:] == owner[:-1])
    for i in np.flatnonzero(tie):
        at[i] = at[i - 1]
    at = np.floor(at)
    status = rng.choice(STATUSES, n, p=[0.55, 0.15, 0.30])
    expiring = rng.random(n) < 0.12
    expires = at + 86400 * rng.uniform(30, 1500, n)
    _copy(
        conn,
        ("core", "consent_events"),
        {
            "donor_id": ids[owner],
            "purpose": rng.choice(PURPOSES, n, p=[0.4, 0.35, 0.1, 0.15]),
            "channel": rng.choice(CHANNELS, n, p=[0.45, 0.1, 0.1, 0.1, 0.25]),
            "status": status,
            "lawful_basis": pa.array([BASIS[s] for s in status], type=pa.string()),
            "source": np.full(n, "bench", dtype=object),
            "occurred_at": _ts(at),
            "expires_at": pa.array(
                expires.astype("datetime64[s]").astype("datetime64[us]"),
                type=pa.timestamp("us", tz="UTC"),
                mask=~expiring,
            ),
            "recorded_by": np.full(n, ACTOR, dtype=object),
        },
    )
    # Every donor was received once as a Stripe customer: raw record, staged row, source reference.
    batch = conn.execute(
        "INSERT INTO raw.batches (source, stream, channel, status, records_read, records_loaded,"
        " records_staged, loaded_at, finished_at)"
        " VALUES ('stripe', 'customers', 'api', 'standardized', %(n)s, %(n)s, %(n)s, now(), now())"
        " RETURNING batch_id",
        {"n": donors},
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(
        "INSERT INTO raw.records (batch_id, source, entity, source_id, channel, source_updated_at,"
        " fetched_at, payload)"
        " SELECT %(b)s, 'stripe', 'customer', 'cus_' || replace(donor_id::text, '-', ''), 'api', created_at,"
        " now(), jsonb_build_object('id', 'cus_' || replace(donor_id::text, '-', ''), 'object', 'customer',"
        "  'email', email, 'name', first_name || ' ' || last_name, 'phone', phone,"
        "  'address', jsonb_build_object('postal_code', postal_code, 'country', country_code),"
        "  'livemode', false, 'metadata', '{}'::jsonb)"
        " FROM core.donors",
        {"b": batch},
    )
    conn.execute(
        "INSERT INTO staging.donors (raw_record_id, batch_id, source, source_id, first_name, last_name,"
        " email, phone, postal_code, country_code, resolved_at, donor_id)"
        " SELECT r.raw_record_id, r.batch_id, 'stripe', r.source_id, d.first_name, d.last_name, d.email,"
        " d.phone, d.postal_code, d.country_code, now(), d.donor_id"
        " FROM core.donors d JOIN raw.records r ON r.source_id = 'cus_' || replace(d.donor_id::text, '-', '')"
    )
    conn.execute(
        "INSERT INTO staging.dispositions (raw_record_id, batch_id, disposition)"
        " SELECT raw_record_id, batch_id, 'staged' FROM staging.donors"
    )
    conn.execute(
        "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind, attributes,"
        " attributes_at, last_raw_record_id)"
        " SELECT s.donor_id, 'stripe', s.source_id, 'source', 'customer',"
        " jsonb_build_object('first_name', s.first_name, 'last_name', s.last_name, 'email', s.email,"
        "  'phone', s.phone), now(), s.raw_record_id"
        " FROM staging.donors s"
    )
    conn.execute(
        "ANALYZE core.donors; ANALYZE core.consent_events; ANALYZE raw.records; ANALYZE staging.donors;"
        " ANALYZE core.donor_sources"
    )
    conn.commit()
    return {
        "donors": donors,
        "merged_donors": int(merged.sum()),
        "consent_events": n,
        "consent_events_expiring": int(expiring.sum()),
        "consent_events_expired": int((expiring & (expires <= now_s)).sum()),
        "raw_records": donors,
    }


# -- 1. consent state ---------------------------------------------------------------------------------


def compare_with_reference(conn: psycopg.Connection, donor_ids: list[str], now: datetime) -> dict[str, int]:
    """Re-derive ``donor_ids`` and their merge families in Python; count rows that differ from SQL's."""
    from donor_sync.privacy.consent.state import derive, load_history

    family = [
        str(r[0])
        for r in conn.execute(
            "WITH owners AS (SELECT DISTINCT coalesce(merged_into, donor_id) AS owner FROM core.donors"
            "                WHERE donor_id = ANY(%s::uuid[]))"
            " SELECT d.donor_id FROM core.donors d JOIN owners o"
            "   ON d.donor_id = o.owner OR d.merged_into = o.owner",
            (donor_ids,),
        ).fetchall()
    ]
    events, links = load_history(conn, family)
    expected = {
        key: (s.status, s.event_id, s.effective_at, s.expires_at, s.lawful_basis)
        for key, s in derive(events, links, now=now).items()
    }
    stored = {
        (str(r[0]), str(r[1]), str(r[2])): (str(r[3]), int(r[4]), r[5], r[6], r[7])
        for r in conn.execute(
            "SELECT donor_id, purpose, channel, status, consent_event_id, effective_at, expires_at,"
            " lawful_basis FROM core.consent_state WHERE donor_id = ANY(%s::uuid[])",
            (family,),
        ).fetchall()
    }
    keys = set(expected) | set(stored)
    return {
        "donors_sampled": len(donor_ids),
        "family_donors": len(family),
        "rows_compared": len(keys),
        "mismatches": sum(1 for k in keys if expected.get(k) != stored.get(k)),
    }


# -- 2. the gate --------------------------------------------------------------------------------------


class TimedGate(DestinationGate):
    """The shipped gate (or a pass-through one), timing what its ``apply`` costs."""

    def __init__(self, inner: DestinationGate, *, passthrough: bool = False) -> None:
        self.__dict__.update(inner.__dict__)
        self.blocked = {}
        self.fields_withheld = 0
        self.passthrough = passthrough
        self.seconds = 0.0
        self.rows = 0

    def apply(self, conn: psycopg.Connection, kind: str, rows: Iterable[Mapping[str, Any]]) -> GateResult:
        """Return every row as read (pass-through) or the shipped gate's answer, timed."""
        started = time.perf_counter()
        batch = list(rows)
        result = (
            GateResult(kind, [dict(r) for r in batch])
            if self.passthrough
            else super().apply(conn, kind, batch)
        )
        self.seconds += time.perf_counter() - started
        self.rows += len(batch)
        return result


@dataclass(frozen=True)
class DryRun:
    seconds: float
    gate_seconds: float
    rows: int
    records: int
    gate: dict[str, int]


def dry_run(conn: psycopg.Connection, renderer: Any, gate: TimedGate, settings: Any) -> DryRun:
    """Time ``prepare`` of a full-scope run in a rolled-back transaction (what plan_destination does)."""
    from donor_sync.delivery.outbox.pipeline import prepare
    from donor_sync.delivery.outbox.scope import Scope

    gate.seconds, gate.rows, gate.blocked, gate.fields_withheld = 0.0, 0, {}, 0
    started = time.perf_counter()
    with conn.transaction(force_rollback=True):
        prepared = prepare(conn, DESTINATION, renderer, Scope.full(), settings, gate=gate)
    seconds = time.perf_counter() - started
    conn.commit()
    return DryRun(
        seconds,
        gate.seconds,
        gate.rows,
        sum(c.queued for c in prepared.counts.values()),
        dict(prepared.gate),
    )


# -- 3. erasure ---------------------------------------------------------------------------------------


def pick_erasures(conn: psycopg.Connection, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """Return ``count`` live donors (two of them survivors of merges) with their family's emails."""
    with_members = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT merged_into FROM core.donors WHERE merged_into IS NOT NULL ORDER BY 1 LIMIT %s",
            (min(2, count),),
        ).fetchall()
    ]
    others = [
        str(r[0])
        for r in conn.execute(
            "SELECT donor_id FROM core.donors WHERE merged_into IS NULL AND erased_at IS NULL"
            " AND NOT (donor_id = ANY(%s::uuid[])) ORDER BY md5(donor_id::text || %s) LIMIT %s",
            (with_members, str(seed), count - len(with_members)),
        ).fetchall()
    ]
    out = []
    for donor in with_members + others:
        emails = [
            str(r[0])
            for r in conn.execute(
                "SELECT email FROM core.donors WHERE (donor_id = %s OR merged_into = %s)"
                " AND email IS NOT NULL",
                (donor, donor),
            ).fetchall()
        ]
        out.append((donor, emails))
    return out


def stage_arrivals(conn: psycopg.Connection, rows: int, returning: list[str]) -> tuple[int, int]:
    """Land and stage ``rows`` new donors, ``returning`` (emails) among them; return (batch, rows)."""
    batch = conn.execute(
        "INSERT INTO raw.batches (source, stream, channel, status, records_read, records_loaded,"
        " records_staged, loaded_at, finished_at)"
        " VALUES ('donorbox', 'donations', 'api', 'standardized', %(n)s, %(n)s, %(n)s, now(), now())"
        " RETURNING batch_id",
        {"n": rows},
    ).fetchone()[0]  # type: ignore[index]
    emails = [f"arrival{i}@new.example.org" for i in range(rows - len(returning))] + returning
    step = max(1, rows // max(1, len(returning)))
    # Spread the returning people through the batch.
    order = list(range(len(emails) - len(returning)))
    for k in range(len(returning)):
        order.insert(min(len(order), k * step), len(emails) - len(returning) + k)
    emails = [emails[i] for i in order]
    conn.execute(
        "INSERT INTO raw.records (batch_id, source, entity, source_id, channel, fetched_at, payload)"
        " SELECT %(b)s, 'donorbox', 'donation', 'don_' || e.n, 'api', now(),"
        "        jsonb_build_object('id', e.n, 'amount', '25.00', 'currency', 'USD',"
        "          'donor', jsonb_build_object('id', 900000 + e.n, 'email', e.email, 'name', 'Pat Arrival',"
        "            'first_name', 'Pat', 'last_name', 'Arrival'))"
        " FROM unnest(%(e)s::text[]) WITH ORDINALITY AS e(email, n)",
        {"b": batch, "e": emails},
    )
    conn.execute(
        "INSERT INTO staging.donors (raw_record_id, batch_id, source, source_id, first_name, last_name,"
        " email, country_code)"
        " SELECT raw_record_id, batch_id, 'donorbox', (payload #>> '{donor,id}'), 'Pat', 'Arrival',"
        " payload #>> '{donor,email}', 'US' FROM raw.records WHERE batch_id = %s",
        (batch,),
    )
    conn.execute(
        "INSERT INTO staging.dispositions (raw_record_id, batch_id, disposition)"
        " SELECT raw_record_id, batch_id, 'staged' FROM raw.records WHERE batch_id = %s",
        (batch,),
    )
    conn.execute("ANALYZE raw.records; ANALYZE staging.donors")
    conn.commit()
    return int(batch), rows


# -- run ----------------------------------------------------------------------------------------------


def _keys() -> Any:
    from donor_sync.privacy.keys import StaticKeys, new_key

    return StaticKeys(
        {
            "tombstone": {"current": "t1", "keys": {"t1": new_key()}},
            "pseudonym": {"current": "p1", "keys": {"p1": new_key()}},
        },
        where="bench/privacy.py keys",
    )


def _scalar(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _timed(label: str, timings: dict[str, float], func: Any) -> Any:
    started = time.perf_counter()
    result = func()
    timings[label] = time.perf_counter() - started
    print(f"{label}: {timings[label]:.2f} s", flush=True)
    return result


def run(options: Options) -> Outcome:
    """Run the benchmark in a fresh database (dropped afterwards unless ``keep``); return what it measured."""
    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade
    from donor_sync.delivery.outbox import default_renderer, queue_destination
    from donor_sync.delivery.outbox.scope import Scope
    from donor_sync.delivery.settings import BlastRadius, DestinationSettings
    from donor_sync.privacy.audit_chain import verify_chain
    from donor_sync.privacy.consent.state import refresh_consent_state
    from donor_sync.privacy.erasure.tombstones import screen_staged_donors
    from donor_sync.privacy.gate import load_gate
    from donor_sync.privacy.requests.process import process_requests

    outcome = Outcome()
    keys = _keys()
    now = datetime.now(UTC).replace(microsecond=0)
    # The benchmark queues every donor at once on purpose: no blast-radius guard.
    settings = DestinationSettings(blast_radius=BlastRadius(max_destructive_share=1, max_overwrite_share=1))
    url = bench_url(options.db_name)
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    timings: dict[str, float] = {}
    m = outcome.metrics
    try:
        with connect(url) as conn:
            peaks = Peaks(_scalar(conn, "SELECT pg_backend_pid()"))
            loaded = _timed("setup", timings, lambda: synthesize(conn, options.size, options.seed, now))
            print(f"loaded {loaded}", flush=True)
            all_ids = [str(r[0]) for r in conn.execute("SELECT donor_id FROM core.donors").fetchall()]

            # 1. consent state
            with peaks.phase("consent_refresh"):
                first = _timed(
                    "consent_first",
                    timings,
                    lambda: refresh_consent_state(conn, all_ids, actor=ACTOR, now=now),
                )
                conn.commit()
            second = _timed(
                "consent_noop", timings, lambda: refresh_consent_state(conn, all_ids, actor=ACTOR, now=now)
            )
            conn.commit()
            rng = np.random.default_rng(options.seed + 1)
            sample = [
                all_ids[i] for i in rng.choice(len(all_ids), min(options.sample, len(all_ids)), replace=False)
            ]
            reference = compare_with_reference(conn, sample, now)
            state_rows = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE channel = 'all') FROM core.consent_state"
            ).fetchone()
            m += [
                metric(
                    "consent_refresh_first_run",
                    round(timings["consent_first"], 3),
                    "s",
                    donors=options.size,
                    donors_in_scope=first.donors_in_scope,
                    rows_written=first.rows_written,
                    rows_deleted=first.rows_deleted,
                    changed_donors=len(first.changed_donors),
                    state_rows=int(state_rows[0]),  # type: ignore[index]
                    all_channel_rows=int(state_rows[1]),  # type: ignore[index]
                    donors_per_second=round(options.size / timings["consent_first"]),
                    note="consent.changed audited per changed donor, included",
                ),
                metric(
                    "consent_refresh_nothing_changed",
                    round(timings["consent_noop"], 3),
                    "s",
                    donors_in_scope=second.donors_in_scope,
                    rows_written=second.rows_written,
                    rows_deleted=second.rows_deleted,
                    changed_donors=len(second.changed_donors),
                ),
                metric(
                    "consent_reference_mismatches",
                    reference["mismatches"],
                    "rows",
                    **{k: v for k, v in reference.items() if k != "mismatches"},
                    note="core.consent_state vs derive() over sampled donors' merge families",
                ),
            ]

            # 2. the gate's cost in queueing
            renderer = default_renderer(DESTINATION)
            shipped = load_gate(DESTINATION, renderer, keys=keys)
            gated, passthrough = TimedGate(shipped), TimedGate(shipped, passthrough=True)
            runs: dict[str, list[DryRun]] = {"gate": [], "no_gate": []}
            with peaks.phase("gate_dry_runs"):
                for _ in range(options.repeats):
                    for name, gate in (("gate", gated), ("no_gate", passthrough)):
                        result = dry_run(conn, renderer, gate, settings)
                        runs[name].append(result)
                        print(f"dry run {name}: {result.seconds:.2f} s (in gate {result.gate_seconds:.2f} s)")
            best = {name: min(rs, key=lambda r: r.seconds) for name, rs in runs.items()}
            real_gate = TimedGate(shipped)
            report = _timed(
                "queue_real",
                timings,
                lambda: queue_destination(
                    conn,
                    DESTINATION,
                    renderer,
                    scope=Scope.full(),
                    settings=settings,
                    gate=real_gate,
                    actor=ACTOR,
                ),
            )
            conn.commit()
            overhead = best["gate"].seconds / best["no_gate"].seconds
            m += [
                metric(
                    "queue_dry_run_with_gate",
                    round(best["gate"].seconds, 3),
                    "s",
                    runs=[round(r.seconds, 3) for r in runs["gate"]],
                    records_to_queue=best["gate"].records,
                    gate_counts=best["gate"].gate,
                    mode="dry run: pipeline.prepare(gate=shipped) in a rolled-back transaction",
                ),
                metric(
                    "queue_dry_run_without_gate",
                    round(best["no_gate"].seconds, 3),
                    "s",
                    runs=[round(r.seconds, 3) for r in runs["no_gate"]],
                    records_to_queue=best["no_gate"].records,
                    mode="dry run: pipeline.prepare(gate=pass-through: every row allowed as read)",
                ),
                metric(
                    "gate_overhead_ratio",
                    round(overhead, 3),
                    "ratio",
                    note="best dry run with the gate / best without it",
                ),
                metric(
                    "gate_apply_time",
                    round(best["gate"].gate_seconds, 3),
                    "s",
                    core_rows=best["gate"].rows,
                    rows_per_second=round(best["gate"].rows / best["gate"].gate_seconds)
                    if best["gate"].gate_seconds
                    else None,
                    share_of_run=round(best["gate"].gate_seconds / best["gate"].seconds, 3),
                    passthrough_apply_seconds=round(best["no_gate"].gate_seconds, 4),
                    note="inside DestinationGate.apply: facts query, verdicts, minimization"
                    " (no tombstones yet)",
                ),
                metric(
                    "queue_destination_with_gate",
                    round(timings["queue_real"], 3),
                    "s",
                    queued=report.queued,
                    gate_seconds=round(real_gate.seconds, 3),
                    gate_counts=report.gate,
                    mode="real run: sync.outbox written (full scope, first run)",
                ),
            ]

            # 3. erasure of one donor in a base of N
            subjects = pick_erasures(conn, options.erasures, options.seed)
            erasures: list[dict[str, Any]] = []
            with peaks.phase("erasure"):
                for donor, emails in subjects:
                    rid = conn.execute(
                        "INSERT INTO sync.privacy_requests (kind, donor_id, channel, requested_by)"
                        " VALUES ('erasure', %s, 'cli', %s) RETURNING request_id",
                        (donor, ACTOR),
                    ).fetchone()[0]  # type: ignore[index]
                    conn.commit()
                    started = time.perf_counter()
                    processed = process_requests(conn, erasers=[], keys=keys, request_ids=[rid], actor=ACTOR)
                    seconds = time.perf_counter() - started
                    row = conn.execute(
                        "SELECT r.status, (SELECT count(*) FROM sync.privacy_receipts p WHERE p.request_id ="
                        " r.request_id AND p.status = 'done' AND p.verified),"
                        " (SELECT count(*) FROM core.erasure_tombstones t WHERE t.request_id = r.request_id),"
                        " (SELECT count(*) FROM core.donors d WHERE (d.donor_id = r.donor_id"
                        "   OR d.merged_into = r.donor_id) AND d.erased_at IS NOT NULL),"
                        " (SELECT p.counts FROM sync.privacy_receipts p WHERE p.request_id = r.request_id"
                        "   AND p.system = 'staging')"
                        " FROM sync.privacy_requests r WHERE r.request_id = %s",
                        (rid,),
                    ).fetchone()
                    conn.commit()
                    erasures.append(
                        {
                            "seconds": round(seconds, 3),
                            "outcome": processed.outcomes.get(str(rid)),
                            "status": row[0],  # type: ignore[index]
                            "verified_receipts": int(row[1]),  # type: ignore[index]
                            "tombstones": int(row[2]),  # type: ignore[index]
                            "donors_erased": int(row[3]),  # type: ignore[index]
                            "emails": len(emails),
                            "purged": {k: v for k, v in sorted((row[4] or {}).items()) if v},  # type: ignore[index]
                        }
                    )
                    print(f"erasure: {seconds:.2f} s {processed.outcomes}", flush=True)
            times = [e["seconds"] for e in erasures]
            m += [
                metric(
                    "erasure_one_donor_median",
                    round(statistics.median(times), 3),
                    "s",
                    base_donors=options.size,
                    requests=len(erasures),
                    completed=sum(e["status"] == "completed" for e in erasures),
                    runs=erasures,
                    mode="process_requests(erasers=[]): freeze, tombstones, local purge, receipt",
                ),
                metric("erasure_one_donor_max", round(max(times), 3), "s"),
            ]

            # 3b. the no-resurrection screen
            returning = [e for _, emails in subjects for e in emails[:1]]
            batch, staged = stage_arrivals(conn, options.screen_rows, returning)
            with peaks.phase("reimport_screen"):
                screened = _timed(
                    "screen",
                    timings,
                    lambda: screen_staged_donors(
                        conn, [batch], now=datetime.now(UTC), actor=ACTOR, keys=keys
                    ),
                )
                conn.commit()
            m.append(
                metric(
                    "reimport_screen",
                    round(timings["screen"], 3),
                    "s",
                    staged_rows=staged,
                    checked=screened.checked,
                    blocked=screened.blocked,
                    returning=len(returning),
                    raw_records_stubbed=screened.raw_records_stubbed,
                    function="erasure.tombstones.screen_staged_donors over one batch",
                )
            )

            # 2b. the gate with tombstones present (its tombstone check on)
            after = TimedGate(load_gate(DESTINATION, renderer, keys=keys))
            with_tombstones = dry_run(conn, renderer, after, settings)
            print(f"dry run with tombstones: {with_tombstones.seconds:.2f} s", flush=True)
            m.append(
                metric(
                    "queue_dry_run_with_gate_and_tombstones",
                    round(with_tombstones.seconds, 3),
                    "s",
                    gate_seconds=round(with_tombstones.gate_seconds, 3),
                    core_rows=with_tombstones.rows,
                    gate_seconds_without_tombstones=round(best["gate"].gate_seconds, 3),
                    gate_counts=with_tombstones.gate,
                    tombstones=_scalar(conn, "SELECT count(*) FROM core.erasure_tombstones"),
                    mode="dry run after the erasures and the real run (nothing left to queue): every donor's"
                    " email and phone hashed under the tombstone ring and looked up",
                )
            )
            conn.commit()

            # 4. audit chain
            before = _scalar(conn, "SELECT count(*) FROM sync.audit_log")
            total = options.audit_factor * options.size

            def insert_audit() -> None:
                for start in range(0, total, AUDIT_CHUNK):
                    conn.execute(
                        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details)"
                        " SELECT %(a)s, 'bench.recorded', 'donor', 'd' || i,"
                        "        jsonb_build_object('n', i, 'batch', %(s)s)"
                        " FROM generate_series(%(s)s + 1, %(e)s) i",
                        {"a": ACTOR, "s": start, "e": min(total, start + AUDIT_CHUNK)},
                    )
                    conn.commit()

            with peaks.phase("audit_insert"):
                _timed("audit_insert", timings, insert_audit)
            with peaks.phase("audit_verify"):
                chain = _timed("audit_verify", timings, lambda: verify_chain(conn))
            conn.commit()
            m += [
                metric(
                    "audit_insert_through_chain_trigger",
                    round(timings["audit_insert"], 3),
                    "s",
                    rows=total,
                    rows_per_second=round(total / timings["audit_insert"]),
                    statement_rows=AUDIT_CHUNK,
                ),
                metric(
                    "audit_verify_chain",
                    round(timings["audit_verify"], 3),
                    "s",
                    rows_checked=chain.rows_checked,
                    rows_before_insert=before,
                    ok=chain.ok,
                    rows_per_second=round(chain.rows_checked / timings["audit_verify"]),
                ),
            ]
    finally:
        if not options.keep:
            drop_database(url)
    m.append(metric("setup_synthesize_and_copy", round(timings["setup"], 1), "s", note="not timed above"))
    for phase, peak in peaks.by_phase.items():
        if peak["process"] is not None:
            m.append(metric(f"peak_rss_process_{phase}", peak["process"], "GiB"))
        if peak["backend"] is not None:
            m.append(
                metric(
                    f"peak_rss_backend_{phase}", peak["backend"], "GiB", note="VmHWM of the session's backend"
                )
            )
    m.append(
        metric(
            "peak_rss_process",
            round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 3),
            "GiB",
            note="whole run, synthesis included",
        )
    )
    outcome.parameters = {
        "size": options.size,
        "seed": options.seed,
        **loaded,
        "sample": options.sample,
        "erasures": options.erasures,
        "screen_rows": options.screen_rows,
        "audit_rows": options.audit_factor * options.size,
        "destination": DESTINATION,
        "now": now.isoformat(),
    }
    outcome.compared = [
        {
            "name": "consent_refresh_matches_reference",
            "mismatches": reference["mismatches"],
            "ok": reference["mismatches"] == 0,
        },
        {
            "name": "second_refresh_writes_nothing",
            "rows_written": second.rows_written + second.rows_deleted,
            "ok": second.rows_written == second.rows_deleted == 0 and not second.changed_donors,
        },
        {
            "name": "gate_vs_no_gate",
            "ratio": round(overhead, 3),
            "same_records": best["gate"].records == best["no_gate"].records,
            "ok": True,
        },
        {
            "name": "every_erasure_completed",
            # staging (the local purge) and outbound_webhooks (donor.erased queued); no erasers here
            "ok": all(e["status"] == "completed" and e["verified_receipts"] == 2 for e in erasures),
        },
        {
            "name": "erased_donors_blocked_on_return",
            "blocked": screened.blocked,
            "ok": screened.blocked == len(returning),
        },
        {"name": "audit_chain_verifies", "rows_checked": chain.rows_checked, "ok": chain.ok},
    ]
    return outcome


def sections(metrics: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the result's comparison (the queue without the gate), checks (:attr:`Outcome.compared`)
    and README rows."""
    by_name = {m["name"]: m for m in metrics}
    compared = []
    if "queue_dry_run_with_gate" in by_name and "queue_dry_run_without_gate" in by_name:
        plain = by_name["queue_dry_run_without_gate"]
        compared.append(
            comparison(
                "the same queue dry run without the consent and suppression gate (every row allowed as"
                " read), same records, same run",
                label="the queue without the gate",
                metric="queue_dry_run_with_gate",
                ours=by_name["queue_dry_run_with_gate"]["value"],
                theirs=plain["value"],
                unit="s",
                better="lower",
                metrics=[{**plain, "name": "queue_dry_run"}],
            )
        )
    checks = [
        check(v["name"], v["ok"], **{k: x for k, x in v.items() if k not in ("name", "ok")}) for v in verdicts
    ]
    return {
        "metrics": metrics,
        "compared": compared,
        "checks": checks,
        "headlines": [
            headline(
                "consent state of {p.donors:,} donors ({p.consent_events:,} consent events,"
                " {p.merged_donors:,} donors merged, {p.consent_events_expiring:,} events expiring)",
                "{consent_refresh_first_run} s for the first full derivation,"
                " {consent_refresh_nothing_changed} s when nothing changed"
                " ({consent_refresh_nothing_changed.rows_written} rows written);"
                " {consent_reference_mismatches} mismatches against the pure reference derivation over"
                " {consent_reference_mismatches.donors_sampled:,} sampled donors and their merge families",
                ["consent_refresh_matches_reference", "second_refresh_writes_nothing"],
                goal="0 mismatches; nothing written the second time",
            ),
            headline(
                "the consent and suppression gate in a Salesforce queue of {p.donors:,} donors",
                "{queue_dry_run_with_gate} s with the gate ({gate_apply_time} s in it,"
                " {gate_apply_time.rows_per_second:,} rows/s); a real queue run writing"
                " {queue_destination_with_gate.queued:,} outbox rows {queue_destination_with_gate} s",
                ["queue_dry_run_with_gate"],
            ),
            headline(
                "erasing one donor among {p.donors:,} (local purge of raw, staging, core and sync,"
                " tombstones, receipt)",
                "{erasure_one_donor_median} s median, {erasure_one_donor_max} s max over {p.erasures}"
                " requests; screening {reimport_screen.staged_rows:,} re-imported staged rows against the"
                " tombstones {reimport_screen} s",
                ["every_erasure_completed", "erased_donors_blocked_on_return"],
                goal="every erasure completed; every returning erased donor blocked",
            ),
            headline(
                "the audit log's hash chain",
                "{audit_insert_through_chain_trigger.rows:,} rows through the chain trigger in"
                " {audit_insert_through_chain_trigger} s; verifying {audit_verify_chain.rows_checked:,} rows"
                " {audit_verify_chain} s, {peak_rss_process_audit_verify} GiB peak",
                ["audit_chain_verifies"],
                goal="the chain verifies",
            ),
        ],
    }


def main() -> None:
    """Run the benchmark and write bench/results/privacy.json."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="golden donors (audit rows: 10x)")
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument("--repeats", type=int, default=2, help="dry runs per gate variant")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database")
    add_common_arguments(parser)
    args = parser.parse_args()
    outcome = run(Options(size=args.size, seed=args.seed, keep=args.keep, repeats=args.repeats))
    path = write_result(
        "privacy",
        outcome.parameters,
        **sections(outcome.metrics, outcome.compared),
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    failed = [c["name"] for c in outcome.compared if not c["ok"]]
    if failed:
        print(f"checks failed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
