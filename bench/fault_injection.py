"""Benchmark fault injection end to end: --size gifts through donations_hourly while every destination fails.

The world of bench/e2e_hourly.py -- sample data with about ``--size`` gifts in the Stripe,
Donorbox and Classy emulators, the CSV drop folder and the webhook inbox; every emulator at its
default limits -- with Salesforce, HubSpot, Mailchimp, Braze and the event subscriber failing as
``tests/reliability/fault_support.FaultMix`` says: 20% of write calls answer 500, 502 or 503;
each cycle opens with a 429 storm (``Retry-After: 1``); 1% of calls time out (held past the
client's 2 s timeout, then 504, never applied), 1% are served only after the client gave up (the
vendor applied a call whose answer was lost), 2% have their connection reset and 2% answer the
vendor's expired-token 401 (the webhook subscriber, which holds no token and whose timeout is
10 s, gets the 5xx, storms and resets only). The connectors keep their real in-call retries and
backoff.

1. One donations_hourly run (``airflow dags test`` in its own interpreter, as ``make demo``)
   extracts, stages, resolves, queues and pushes under the faults.
2. Push cycles -- the next hourly runs' queue and push tasks, in this process -- retry what
   failed, the clock passing between cycles (the retry ladder's and breakers' waits are moved
   into the past, not slept), each opening with a new storm, until a cycle pushes nothing.
3. The faults stop and the rest drains the same way; then one more cycle with nothing due.

After each step the ledger is taken (tests/reliability/fault_support.account): every record the
outbox was given must have landed, be a dead letter with its class, or be scheduled (the
ladder, a dependency, an open breaker); each emulator must hold every landed record exactly once
(keyed by donor-sync's ids) and nothing else; no outbox row may have succeeded twice; every live
donor and gift of core must have been queued for each CRM; the last cycle must write nothing.
Reported: the time of each step, peak memory of the process tree, faults fired per kind and
destination, the ledger per destination entity, dead letters per class (and for the
subscriber's, how many of their attempts were never sent), and the verdicts.

Run from the repository root: ``.venv/bin/python bench/fault_injection.py`` (100,000 gifts, the
default; ``--size 5000`` for a check). CI runs the same scenario at 1,200 gifts as
tests/reliability/test_fault_injection.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AutoVacuum, add_common_arguments, bench_url, check, headline, metric, write_result
from e2e_hourly import TreeMemory

from tests.reliability import fault_support as fs

CI_SIZE = 1_000
DB_NAME = "ds_bench_fault_injection"


@dataclass(frozen=True)
class Options:
    """What to run."""

    size: int = 100_000
    seed: int = 17
    mix: fs.FaultMix = field(default_factory=fs.FaultMix)
    max_cycles: int = 12
    db_name: str = DB_NAME


@dataclass
class Outcome:
    """Parameters, metrics and checks of the run."""

    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def value(self, name: str) -> dict[str, Any]:
        """Return the metric called ``name``."""
        return next(m for m in self.metrics if m["name"] == name)


def _cycles(reports: list[fs.CycleReport]) -> list[dict[str, Any]]:
    return [
        {
            "seconds": round(r.seconds, 2),
            "pushed": {d: p["pushed"] for d, p in r.pushed.items()},
            "succeeded": {d: p["succeeded"] for d, p in r.pushed.items()},
            "stopped": {d: why for d, why in r.stopped.items() if why},
            "errors": r.errors,
        }
        for r in reports
    ]


def _ledger_metric(name: str, ledger: fs.Ledger, **extra: Any) -> dict[str, Any]:
    return metric(
        name,
        len(fs.problems(ledger)),
        "problems",
        goal="0",
        problems=fs.problems(ledger),
        landed=ledger.total("landed"),
        dead_letters=ledger.total("dead_letters"),
        scheduled=ledger.total("scheduled"),
        waiting_dependency=ledger.total("waiting_dependency"),
        behind_breaker=ledger.total("behind_breaker"),
        due=ledger.total("due"),
        in_flight=ledger.total("in_flight"),
        duplicates=ledger.total("duplicates"),
        by_entity=ledger.as_json(),
        **extra,
    )


def dead_letter_attempts(conn: Any) -> dict[str, dict[str, int]]:
    """Per destination and class: open dead letters, their logged attempts, and how many of
    those attempts never sent the record (the subscriber's ``NOT_SENT``: an earlier event of the
    batch failed)."""
    out: dict[str, dict[str, int]] = {}
    for destination, error_class, letters, attempts, not_sent in conn.execute(
        "SELECT d.destination, d.error_class, count(DISTINCT d.dead_letter_id), count(p.push_log_id),"
        " count(p.push_log_id) FILTER (WHERE p.error_code = 'NOT_SENT')"
        " FROM sync.dead_letters d LEFT JOIN sync.push_log p ON p.outbox_id = d.outbox_id"
        " WHERE d.status = 'open' GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall():
        out[f"{destination}.{error_class}"] = {
            "dead_letters": int(letters),
            "attempts": int(attempts),
            "attempts_not_sent": int(not_sent),
        }
    conn.commit()
    return out


def run(options: Options) -> Outcome:
    """Run the three steps on a fresh database; return what was measured."""
    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade

    outcome = Outcome()
    url = bench_url(options.db_name)
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    mix = options.mix
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        scratch = Path(tmp)
        sample = scratch / "sample"
        fs.generate_sample(sample, options.size, seed=options.seed)
        box = fs.build_box(scratch / "tls")
        box.start()
        # A reset fault makes uvicorn log "ASGI callable returned without starting response" (its
        # Config sets the logger's level when the servers start: quiet it after).
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        try:
            drop = scratch / "drop"
            inputs = fs.prepare_inputs(box, sample, drop, url)
            home = scratch / "airflow"
            env = fs.airflow_env(home, fs.connections(box, url, drop, timeout_s=mix.client_timeout_s), url)
            fs.migrate_airflow(env)
            outcome.parameters = {
                "size": options.size,
                "sample_gifts": fs.sample_gifts(sample),
                "sample_donors": fs.donors_for(options.size),
                "loaded": inputs.loaded,
                "seed": options.seed,
                "fault_mix": mix.describe(),
                "max_cycles": options.max_cycles,
                "emulator_limits": "defaults",
                "in_call_backoff": "the connectors' own: exponential 0.5-8 s, Retry-After honoured",
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            }
            fs.arm(box, mix, seed=options.seed)
            with AutoVacuum(url) as vacuum:
                memory = TreeMemory()
                memory.start()
                dag_s, status = fs.run_dag(env, home / "dags_test.log")
                print(f"{fs.DAG_ID} under faults: {dag_s:.1f} s, exit {status}", flush=True)
                # The cycles build connectors as the push tasks do, from the same connections.
                os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "DONOR_SYNC"))})
                for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
                    os.environ.pop(name, None)
                from donor_sync.hooks.destinations import connector_for

                with connect(url) as conn:
                    summary = fs.run_summary(conn)
                    after_run = fs.account(conn, box)
                    started = time.perf_counter()
                    cycles = fs.run_cycles(
                        conn, connector_for=connector_for, box=box, mix=mix, max_cycles=options.max_cycles
                    )
                    cycles_s = time.perf_counter() - started
                    after_cycles = fs.account(conn, box)
                    fired = fs.fired(box)
                    print(f"{len(cycles)} cycles under faults: {cycles_s:.1f} s", flush=True)
                    fs.disarm(box)
                    started = time.perf_counter()
                    healed = fs.run_cycles(conn, connector_for=connector_for, max_cycles=options.max_cycles)
                    heal_s = time.perf_counter() - started
                    final = fs.account(conn, box)
                    cover = fs.coverage(conn)
                    letters = dead_letter_attempts(conn)
                    fs.clear_request_logs(box)
                    fs.run_cycles(conn, connector_for=connector_for, max_cycles=1)
                    rerun = fs.writes(box)
                peaks = memory.stop()
            outcome.parameters["autovacuum_stand_in"] = vacuum.parameters()
            print(
                f"drained in {len(healed)} cycles, {heal_s:.1f} s; problems {fs.problems(final)}", flush=True
            )
        finally:
            box.stop()
            drop_database(url)
    total_s = dag_s + cycles_s + heal_s
    outcome.metrics += [
        metric(
            "wall_time",
            round(total_s, 1),
            "s",
            label="the run, the cycles under faults and the drain",
            dag_run_s=round(dag_s, 1),
            dag_exit_status=status,
            run_status=summary.get("status"),
            fault_cycles_s=round(cycles_s, 1),
            drain_s=round(heal_s, 1),
            cycles=_cycles(cycles),
            drain_cycles=_cycles(healed),
        ),
        metric("faults_fired", sum(sum(k.values()) for k in fired.values()), "faults", by_emulator=fired),
        _ledger_metric("ledger_after_run", after_run, note="right after the donations_hourly run, mid-storm"),
        _ledger_metric("ledger_after_fault_cycles", after_cycles, cycles=len(cycles)),
        _ledger_metric("ledger_final", final, note="after the faults stopped and the rest drained"),
        metric(
            "dead_letters",
            final.total("dead_letters"),
            "records",
            by_class_and_attempts=letters,
            share_of_records=round(final.total("dead_letters") / max(1, final.total("records")), 4),
        ),
        metric("rerun_write_requests", sum(rerun.values()), "requests", goal="0", by_emulator=rerun),
        metric(
            "peak_rss_tree",
            peaks["rss_gib"],
            "GiB",
            pss_gib=peaks["pss_gib"],
            note="this process (emulators, cycles) plus the Airflow process, sampled every 0.25 s",
        ),
    ]
    no_loss = all(
        not e.in_flight and not e.due and all(e.dead.values()) for e in final.entities.values()
    ) and all(c["not_queued"] == 0 for c in cover.values())
    outcome.checks += [
        check(
            "exactly_once_at_every_destination",
            final.total("duplicates") == 0
            and not any(e.missing or e.strays for e in final.entities.values()),
            duplicates=final.total("duplicates"),
        ),
        check(
            "no_record_lost",
            no_loss,
            coverage=cover,
            note="every record landed, is a dead letter with its class, or is scheduled; every live "
            "donor and gift of core was queued for each CRM",
        ),
        check(
            "ledger_holds_at_every_step", not any(fs.problems(x) for x in (after_run, after_cycles, final))
        ),
        check("no_duplicate_pushes", final.double_successes == 0 and final.repeated_payloads == 0),
        check("nothing_due_writes_nothing", sum(rerun.values()) == 0),
    ]
    return outcome


def main() -> int:
    """Run the benchmark and write fault_injection.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=Options.size, help="gifts in the sample (default 100,000)"
    )
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--max-cycles", type=int, default=Options.max_cycles)
    parser.add_argument("--db-name", default=DB_NAME, help="the benchmark's own database (dropped after)")
    add_common_arguments(parser)
    args = parser.parse_args()
    outcome = run(Options(size=args.size, seed=args.seed, max_cycles=args.max_cycles, db_name=args.db_name))
    path = write_result(
        "fault_injection",
        outcome.parameters,
        outcome.metrics,
        headlines=[
            headline(
                "Fault injection, {p.sample_gifts:,} gifts (20% 5xx, 429 storms, timeouts, resets, expired"
                " tokens)",
                "{ledger_final} problems, {dead_letters:,} dead letters, {wall_time} s",
                [
                    "ledger_final",
                    "exactly_once_at_every_destination",
                    "no_record_lost",
                    "no_duplicate_pushes",
                ],
            )
        ],
        checks=outcome.checks,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    return 0 if all(c["ok"] for c in outcome.checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
