"""donations_hourly with one email platform down for its pull-back: the other destinations go on.

Mailchimp answers every read of its audience's members (the pull-back) with 503 for a whole run.
The run must still deliver every gift to Salesforce and HubSpot and push Braze, send nothing to
Mailchimp, defer the journeys that rely on Mailchimp's unsubscribes, and end visibly failed: the
pull-back task failed (an open task_failed incident), its failure recorded in the run's metrics.
The next run, Mailchimp back, catches up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from airflow.models import DagBag

from sandbox.common.faults import FaultRule
from sandbox.common.runner import Sandbox
from tests.conftest import REPO_ROOT
from tests.reliability import fault_support as fs

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

#: Mailchimp's pull-back reads: GET /lists/{id}/members (the pushes use other paths).
PULLBACK_READS = FaultRule(kind="status", status=503, method="GET", path=r"/lists/[^/]+/members$")
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gifts of the last ten days: young enough for the journeys (max_gift_age_days 14)."""
    from sandbox.datagen import GenerationConfig, generate

    out = tmp_path_factory.mktemp("sample")
    now = datetime.now(UTC)
    generate(
        GenerationConfig(
            donors=fs.donors_for(150), out=out, seed=23, workers=1, bad_share=0.0,
            start=now - timedelta(days=10), as_of=now - timedelta(hours=2),
        )
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def dagbag() -> Iterator[DagBag]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONOR_SYNC_FAIL_FAST", "1")
        yield DagBag(dag_folder=str(REPO_ROOT / "dags"))


@pytest.fixture
def world(
    db_url: str,
    sample: Path,
    tmp_path: Path,
    start_sandbox: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Sandbox]]:
    """Every emulator, the sample in the sources, Airflow connections to all of it."""
    from airflow.utils import db

    from donor_sync.operators import dag_test_compat

    db.resetdb()
    dag_test_compat.apply()
    box = start_sandbox(*fs.EMULATORS, stripe={"read_requests_per_second": 10_000})
    drop = tmp_path / "drop"
    fs.prepare_inputs(box, sample, drop, db_url)
    for conn_id, conn in fs.connections(box, db_url, drop).items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    yield db_url, box
    box.stop()


def _task_states(run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance.task_id, TaskInstance.state)
            .filter(TaskInstance.dag_id == "donations_hourly", TaskInstance.run_id == run_id)
            .all()
        )
    return {str(task): str(state) for task, state in rows}


def _landed(conn: psycopg.Connection, destination: str, entity: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM sync.destination_state WHERE destination = %s AND entity = %s"
        " AND remote_id IS NOT NULL",
        (destination, entity),
    ).fetchone()
    return int(row[0]) if row else 0


def _latest_run_figures(conn: psycopg.Connection, stage: str) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        "SELECT scope, metric, value FROM sync.run_metrics WHERE stage = %s"
        " AND run_id = (SELECT run_id FROM sync.runs ORDER BY started_at DESC LIMIT 1)",
        (stage,),
    ).fetchall()
    return {(str(scope), str(metric)): int(value) for scope, metric, value in rows}


def test_mailchimp_pullback_down_for_a_run_holds_back_only_mailchimp(
    world: tuple[str, Sandbox], dagbag: DagBag
) -> None:
    db_url, box = world
    mailchimp = box["mailchimp"].emulator
    mailchimp.faults.set([PULLBACK_READS])  # type: ignore[attr-defined]
    dag = dagbag.dags["donations_hourly"]

    dag_run = dag.test()
    assert str(dag_run.state) == "failed", "the run ends visibly degraded"
    states = _task_states(dag_run.run_id)
    assert states["pull_mailchimp_unsubscribes"] == "failed"
    assert states["queue_mailchimp"] == states["push_mailchimp"] == "upstream_failed"
    for task in ("journeys", "pull_braze_unsubscribes", "push_salesforce", "push_hubspot", "push_braze",
                 "push_events", "check_health"):  # fmt: skip
        assert states[task] == "success", (task, states[task])
    assert states["close_run"] == "upstream_failed"
    # Nothing reached Mailchimp but the pull-back's failed reads.
    log = list(mailchimp.request_log)  # type: ignore[attr-defined]
    assert [r for r in log if r["method"] in WRITES] == []
    assert {r["path"].rsplit("/", 1)[-1] for r in log} == {"members"}

    with psycopg.connect(db_url) as conn:
        gifts = conn.execute("SELECT count(*) FROM core.gifts WHERE NOT is_test").fetchone()
        donors = conn.execute("SELECT count(*) FROM core.donors WHERE merged_into IS NULL").fetchone()
        assert gifts is not None
        assert donors is not None
        # The CRMs received every gift and donor; Braze its users.
        assert gifts[0] > 0
        assert _landed(conn, "salesforce", "opportunity") == gifts[0]
        assert _landed(conn, "hubspot", "deal") == gifts[0]
        assert _landed(conn, "salesforce", "contact") == donors[0]
        assert _landed(conn, "braze", "user") > 0
        assert conn.execute(
            "SELECT count(*) FROM sync.outbox WHERE destination = 'mailchimp'"
        ).fetchone() == (0,)
        # What the run recorded: the failure, Braze's success, the journeys it deferred.
        assert _latest_run_figures(conn, "pullback") == {
            ("mailchimp", "succeeded"): 0,
            ("mailchimp", "failed"): 1,
            ("braze", "succeeded"): 1,
            ("braze", "failed"): 0,
        }
        enrolled = conn.execute("SELECT count(*) FROM sync.journey_enrollments").fetchone()
        assert enrolled == (0,), "no journey decided on stale consent"
        journeys = _latest_run_figures(conn, "journeys")
        assert journeys[("", "journeys_deferred")] == 9, "every shipped journey relies on Mailchimp's"
        run = conn.execute("SELECT status FROM sync.runs ORDER BY started_at DESC LIMIT 1").fetchone()
        assert run == ("failed",)
        incident = conn.execute(
            "SELECT resolved_at IS NULL FROM sync.alert_incidents"
            " WHERE incident_key = 'task_failed:donations_hourly.pull_mailchimp_unsubscribes'"
        ).fetchone()
        assert incident == (True,), "an open incident the alerting reports"
        watermark = conn.execute(
            "SELECT cursor_ts FROM sync.watermarks WHERE source = 'mailchimp' AND stream = 'members_pullback'"
        ).fetchone()
        assert watermark is None or watermark[0] is None, "the pull-back reads the same window next run"

    # Mailchimp is back: the next run pulls back, catches Mailchimp up and decides the journeys.
    mailchimp.faults.clear()  # type: ignore[attr-defined]
    again = dag.test()
    assert str(again.state) == "success"
    with psycopg.connect(db_url) as conn:
        assert _landed(conn, "mailchimp", "member") > 0
        assert _latest_run_figures(conn, "pullback")[("mailchimp", "succeeded")] == 1
        assert _latest_run_figures(conn, "journeys")[("", "journeys_deferred")] == 0
        # The deferred journeys are decided now, from the same gifts, once each.
        decided = conn.execute(
            "SELECT journey_id, count(*), count(DISTINCT gift_key) FROM sync.journey_enrollments GROUP BY 1"
        ).fetchall()
        assert {j for j, _, _ in decided} >= {"welcome_series"}, decided
        assert all(n == distinct for _, n, distinct in decided)
        incident = conn.execute(
            "SELECT resolved_at IS NULL FROM sync.alert_incidents"
            " WHERE incident_key = 'task_failed:donations_hourly.pull_mailchimp_unsubscribes'"
        ).fetchone()
        assert incident == (False,), "resolved when the task next succeeds"
