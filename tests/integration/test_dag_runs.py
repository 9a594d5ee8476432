"""DAGs run end to end in-process with ``dag.test()`` against a real staging database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from airflow.models import DagBag

from donor_sync.local_airflow import connection_json_from_url
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.braze import BrazeEmulator
from sandbox.emulators.classy import ClassyEmulator
from sandbox.emulators.donorbox import DonorboxEmulator
from sandbox.emulators.hubspot import HubSpotEmulator
from sandbox.emulators.mailchimp import MailchimpEmulator
from sandbox.emulators.receiver import ReceiverEmulator
from sandbox.emulators.salesforce import SalesforceEmulator
from sandbox.emulators.stripe import StripeEmulator
from tests.conftest import REPO_ROOT
from tests.integration.crm import use_connections
from tests.privacy.erasers.connections import privacy_connections

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata database (SQLite in this worker's throwaway AIRFLOW_HOME)."""
    from airflow.utils import db

    from donor_sync.operators import dag_test_compat

    db.resetdb()
    dag_test_compat.apply()  # apache/airflow#73428: dag.test() crashes on DAGs with deadlines


@pytest.fixture
def staging(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_DONOR_SYNC_DB", connection_json_from_url(db_url))
    # The CSV drop folder of this test (not the project's .local/csv_drop).
    drop = tmp_path / "csv_drop"
    drop.mkdir()
    monkeypatch.setenv(
        "AIRFLOW_CONN_CSV_DROP",
        json.dumps({"conn_type": "fs", "extra": {"path": str(drop), "quiet_period_seconds": 0}}),
    )
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


@pytest.fixture
def stripe_source(
    start_emulators: Callable[..., Sandbox], sandbox_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StripeEmulator]:
    """Stripe (120 charges), Donorbox (7 donations) and Classy (5 transactions) emulators, reachable
    as the `stripe`, `donorbox` and `classy` Airflow connections over HTTPS."""
    stripe = StripeEmulator({"read_requests_per_second": 10_000})
    donorbox, classy = DonorboxEmulator(), ClassyEmulator()
    box = start_emulators(
        stripe,
        donorbox,
        classy,
        SalesforceEmulator(),
        HubSpotEmulator(),
        MailchimpEmulator(),
        BrazeEmulator(),
        ReceiverEmulator(),
    )
    created = datetime(2026, 3, 1, tzinfo=UTC)
    stripe.seed(
        "charges",
        [
            {"id": f"ch_{i:04d}", "object": "charge", "created": int(created.timestamp()) + i, "amount": 500}
            for i in range(120)
        ],
    )
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    donorbox.seed("donations", [{"id": i, "donation_date": stamp, "amount": "5.00"} for i in range(7)])
    classy.seed("transactions", [{"id": i, "created_at": stamp, "updated_at": stamp} for i in range(5)])
    extra = {"ca_bundle": str(sandbox_tls.ca_cert)}
    connections = {
        "stripe": {"host": box["stripe"].base_url, "password": "sk_test_sandbox", "extra": extra},
        "donorbox": {
            "host": box["donorbox"].base_url,
            "login": "api@sandbox.donor-sync.test",
            "password": "sandbox-donorbox-key",
            "extra": extra,
        },
        "classy": {
            "host": box["classy"].base_url,
            "login": "sandbox-classy-client",
            "password": "sandbox-classy-secret",
            "extra": {**extra, "organization_id": 1},
        },
    }
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **conn}))
    use_connections(monkeypatch, privacy_connections(box))  # CRMs, email platforms, event subscriber
    yield stripe
    box.stop()


def test_donations_hourly_extracts_every_source_and_records_what_it_read(
    airflow_db: None, staging: str, dagbag: DagBag, stripe_source: StripeEmulator
) -> None:
    dag_run = dagbag.dags["donations_hourly"].test()
    assert str(dag_run.state) == "success"
    with psycopg.connect(staging) as conn:
        read = dict(
            conn.execute(
                "SELECT scope, value FROM sync.run_metrics WHERE stage = 'extract' AND metric = 'read'"
            ).fetchall()
        )
        raw = conn.execute("SELECT count(*) FROM raw.records WHERE entity = 'charge'").fetchone()
        watermark = conn.execute("SELECT cursor_id FROM sync.watermarks WHERE stream = 'charges'").fetchone()
    assert read == {"stripe": 120, "donorbox": 7, "classy": 5}
    with psycopg.connect(staging) as conn:
        unreconciled = conn.execute(
            "SELECT sum(value) FROM sync.run_metrics WHERE stage = 'extract' AND metric = 'unreconciled'"
        ).fetchone()
    assert unreconciled == (0,)
    assert raw == (120,)
    assert watermark == ("ch_0119",), "a successful run advances the watermark"


@pytest.mark.parametrize("dag_id", ["donations_hourly", "donors_nightly"])
def test_scheduled_dag_records_its_run(
    airflow_db: None, staging: str, dagbag: DagBag, dag_id: str, stripe_source: StripeEmulator
) -> None:
    dag_run = dagbag.dags[dag_id].test()
    assert str(dag_run.state) == "success"
    with psycopg.connect(staging) as conn:
        rows = conn.execute("SELECT dag_id, airflow_run_id, status, finished_at FROM sync.runs").fetchall()
    assert len(rows) == 1
    assert rows[0][:3] == (dag_id, dag_run.run_id, "success")
    assert rows[0][3] is not None
    if dag_id == "donors_nightly":
        with psycopg.connect(staging) as conn:
            refit = conn.execute(
                "SELECT metric, value FROM sync.run_metrics WHERE stage = 'refit'"
            ).fetchall()
        assert dict(refit) == {"labels": 0, "models_stored": 0}, "no decided review: nothing refitted"
        with psycopg.connect(staging) as conn:
            pulled = conn.execute(
                "SELECT scope, value FROM sync.run_metrics WHERE stage = 'reconcile' AND metric = 'read'"
            ).fetchall()
        assert dict(pulled) == {"salesforce": 0, "hubspot": 0}, "both CRMs were read back (nothing changed)"


def test_manual_run_params_are_validated_and_recorded(airflow_db: None, staging: str, dagbag: DagBag) -> None:
    dag = dagbag.dags["dlq_replay"]
    dag_run = dag.test(
        run_conf={
            "action": "discard",
            "destination": "salesforce",
            "error_class": "validation",
            "note": "bad postcodes",
        }
    )
    assert str(dag_run.state) == "success"
    with psycopg.connect(staging) as conn:
        (params,) = conn.execute("SELECT params FROM sync.runs").fetchone() or (None,)
    assert params["action"] == "discard"
    assert params["error_class"] == "validation"


def test_invalid_params_are_refused(airflow_db: None, staging: str, dagbag: DagBag) -> None:
    with pytest.raises(Exception, match="action"):
        dagbag.dags["dlq_replay"].test(run_conf={"action": "delete_everything"})


def test_failed_run_is_recorded_as_failed(
    airflow_db: None, staging: str, dagbag: DagBag, stripe_source: StripeEmulator
) -> None:
    with psycopg.connect(staging, autocommit=True) as conn:
        conn.execute("DROP TABLE sync.run_metrics")  # close_run cannot read the metrics: it fails
    dag_run = dagbag.dags["donations_hourly"].test()
    assert str(dag_run.state) == "failed"
    with psycopg.connect(staging) as conn:
        rows = conn.execute("SELECT status, finished_at IS NOT NULL FROM sync.runs").fetchall()
    assert rows == [("failed", True)]
