"""DAGs run end to end in-process with ``dag.test()`` against a real staging database."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from airflow.models import DagBag

from donor_sync.local_airflow import connection_json_from_url
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata database (SQLite in this worker's throwaway AIRFLOW_HOME)."""
    from airflow.utils import db

    from donor_sync.operators import dag_test_compat

    db.resetdb()
    dag_test_compat.apply()  # apache/airflow#73428: dag.test() crashes on DAGs with deadlines


@pytest.fixture
def staging(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    return db_url


@pytest.fixture(scope="module")
def dagbag() -> Iterator[DagBag]:
    """The DAGs parsed fail-fast, so a failing task ends the run instead of waiting on the ladder.

    The variable stays set for the module because the task runner re-parses the DAG file.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DONOR_SYNC_FAIL_FAST", "1")
        bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
        assert all(t.retries == 0 for d in bag.dags.values() for t in d.tasks)
        yield bag


@pytest.mark.parametrize("dag_id", ["donations_hourly", "donors_nightly"])
def test_scheduled_dag_records_its_run(airflow_db: None, staging: str, dagbag: DagBag, dag_id: str) -> None:
    dag_run = dagbag.dags[dag_id].test()
    assert str(dag_run.state) == "success"
    with psycopg.connect(staging) as conn:
        rows = conn.execute("SELECT dag_id, airflow_run_id, status, finished_at FROM sync.runs").fetchall()
    assert len(rows) == 1
    assert rows[0][:3] == (dag_id, dag_run.run_id, "success")
    assert rows[0][3] is not None


def test_manual_run_params_are_validated_and_recorded(airflow_db: None, staging: str, dagbag: DagBag) -> None:
    dag = dagbag.dags["dlq_replay"]
    dag_run = dag.test(run_conf={"action": "discard", "error_class": "validation", "note": "bad postcodes"})
    assert str(dag_run.state) == "success"
    with psycopg.connect(staging) as conn:
        (params,) = conn.execute("SELECT params FROM sync.runs").fetchone() or (None,)
    assert params["action"] == "discard"
    assert params["error_class"] == "validation"


def test_invalid_params_are_refused(airflow_db: None, staging: str, dagbag: DagBag) -> None:
    with pytest.raises(Exception, match="action"):
        dagbag.dags["dlq_replay"].test(run_conf={"action": "delete_everything"})


def test_failed_run_is_recorded_as_failed(airflow_db: None, staging: str, dagbag: DagBag) -> None:
    with psycopg.connect(staging, autocommit=True) as conn:
        conn.execute("DROP TABLE sync.run_metrics")  # close_run cannot read the metrics: it fails
    dag_run = dagbag.dags["donations_hourly"].test()
    assert str(dag_run.state) == "failed"
    with psycopg.connect(staging) as conn:
        rows = conn.execute("SELECT status, finished_at IS NOT NULL FROM sync.runs").fetchall()
    assert rows == [("failed", True)]
