"""Donorbox and Classy extraction against their emulators and a real Postgres."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import tenacity

from donor_sync.errors import PermanentError
from donor_sync.observability import runs
from donor_sync.sources.classy import ClassyApi, extract_classy
from donor_sync.sources.donorbox import DonorboxApi, extract_donorbox
from donor_sync.sources.http import default_retry
from donor_sync.sources.watermarks import advance_from_run, read_watermark
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles
from sandbox.emulators.classy import ClassyEmulator
from sandbox.emulators.donorbox import DonorboxEmulator

NO_WAIT = tenacity.Retrying(stop=tenacity.stop_after_attempt(4), reraise=True)
DAY = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def box(start_emulators: Callable[..., Sandbox]) -> Sandbox:
    return start_emulators(DonorboxEmulator(), ClassyEmulator())


@pytest.fixture
def donorbox(box: Sandbox, sandbox_tls: TlsFiles) -> tuple[Any, DonorboxApi]:
    running = box["donorbox"]
    running.emulator.reset()
    api = DonorboxApi(
        running.base_url,
        "api@sandbox.donor-sync.test",
        "sandbox-donorbox-key",
        verify=str(sandbox_tls.ca_cert),
        retry=NO_WAIT,
    )
    return running.emulator, api


@pytest.fixture
def classy(box: Sandbox, sandbox_tls: TlsFiles) -> tuple[Any, ClassyApi]:
    running = box["classy"]
    running.emulator.reset()
    api = ClassyApi(
        running.base_url,
        "sandbox-classy-client",
        "sandbox-classy-secret",
        1,
        verify=str(sandbox_tls.ca_cert),
        retry=NO_WAIT,
    )
    return running.emulator, api


def _donation(i: int, dated: datetime, refunded: str = "0.00") -> dict[str, Any]:
    return {
        "id": i,
        "donation_date": _iso(dated),
        "amount": "25.00",
        "currency": "USD",
        "amount_refunded": refunded,
    }


def _run(db: psycopg.Connection, name: str, extract: Callable[..., Any], api: Any) -> tuple[int, int]:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id=name)
    (result,) = extract(db, api, run_id=run_id, initial_start=DAY - timedelta(days=400))
    advance_from_run(db, run_id)
    return result.read, result.loaded


def test_donorbox_pages_until_a_short_page_and_rescans_its_trailing_window(
    db: psycopg.Connection, donorbox: tuple[Any, DonorboxApi]
) -> None:
    emulator, api = donorbox
    dated = {i: DAY - timedelta(days=90) + timedelta(hours=6 * i) for i in range(250)}  # 62 days of gifts
    emulator.seed("donations", [_donation(i, when) for i, when in dated.items()])
    assert _run(db, "r1", extract_donorbox, api) == (250, 250)
    assert read_watermark(db, "donorbox", "donations").overlap == timedelta(days=30)
    # A refund on a donation 20 days older than the newest: Donorbox has no updated-since filter,
    # so only the trailing re-scan sees it.
    refunded_id = next(i for i, when in dated.items() if when >= dated[249] - timedelta(days=20))
    emulator.seed("donations", [_donation(refunded_id, dated[refunded_id], "25.00")])
    read, loaded = _run(db, "r2", extract_donorbox, api)
    assert loaded == 1
    assert 100 < read < 250, "about the last 30 days (whole days) are read again"
    versions = db.execute(
        "SELECT payload->>'amount_refunded' FROM raw.records WHERE source_id = %s ORDER BY raw_record_id",
        (str(refunded_id),),
    ).fetchall()
    assert versions == [("0.00",), ("25.00",)]


def test_donorbox_bad_key_is_permanent(db: psycopg.Connection, box: Sandbox, sandbox_tls: TlsFiles) -> None:
    api = DonorboxApi(
        box["donorbox"].base_url, "api@sandbox.donor-sync.test", "wrong", verify=str(sandbox_tls.ca_cert)
    )
    with pytest.raises(PermanentError, match="Donorbox refused the credentials"):
        extract_donorbox(db, api, run_id=None)


def _transaction(i: int, updated: datetime, status: str = "success") -> dict[str, Any]:
    return {
        "id": i,
        "organization_id": 1,
        "status": status,
        "created_at": _iso(DAY - timedelta(days=90)),
        "updated_at": _iso(updated),
    }


def test_classy_reads_by_updated_at_and_catches_later_changes(
    db: psycopg.Connection, classy: tuple[Any, ClassyApi]
) -> None:
    emulator, api = classy
    emulator.seed("transactions", [_transaction(i, DAY + timedelta(minutes=i)) for i in range(230)])
    assert _run(db, "r1", extract_classy, api) == (230, 230)
    assert db.execute("SELECT records_read, records_reported FROM raw.batches").fetchone() == (230, 230)
    assert read_watermark(db, "classy", "transactions").cursor_id == "229"
    emulator.seed("transactions", [_transaction(5, DAY + timedelta(days=1), status="refunded")])
    read, loaded = _run(db, "r2", extract_classy, api)
    assert loaded == 1
    assert read <= 12, "only the overlap and the changed transaction are read again"


def test_classy_fetches_a_new_token_when_the_old_one_expired(
    db: psycopg.Connection, classy: tuple[Any, ClassyApi]
) -> None:
    emulator, api = classy
    emulator.seed("transactions", [_transaction(i, DAY + timedelta(minutes=i)) for i in range(3)])
    _run(db, "r1", extract_classy, api)
    emulator.expire_tokens()
    api._token = (api._token[0], 0.0) if api._token else None  # the client learns the expiry from expires_in
    assert _run(db, "r2", extract_classy, api)[0] >= 1


def _production_retry(box: Sandbox, sandbox_tls: TlsFiles, connection: str = "classy") -> ClassyApi:
    """A client with the production retry policy, without its waits (it never retries a 401)."""
    return ClassyApi(
        box["classy"].base_url,
        "sandbox-classy-client",
        "sandbox-classy-secret",
        1,
        verify=str(sandbox_tls.ca_cert),
        retry=default_retry().copy(wait=tenacity.wait_none()),
        connection=connection,
    )


def _calls(emulator: ClassyEmulator) -> list[tuple[str, int]]:
    """(path, status) of every Classy call since the last reset, oldest first."""
    return [(str(r["path"]), int(r["status"])) for r in list(emulator.request_log)]


TRANSACTIONS = "/2.0/organizations/1/transactions"


def test_classy_revoked_cached_token_is_replaced_once_and_the_call_retried(
    db: psycopg.Connection, classy: tuple[Any, ClassyApi], box: Sandbox, sandbox_tls: TlsFiles
) -> None:
    emulator, _ = classy
    api = _production_retry(box, sandbox_tls)
    emulator.seed("transactions", [_transaction(i, DAY + timedelta(minutes=i)) for i in range(3)])
    _run(db, "r1", extract_classy, api)
    emulator.request_log.clear()
    assert emulator.revoke_tokens() == 1  # revoked long before it expires: the client cannot know

    read, _ = _run(db, "r2", extract_classy, api)

    assert read >= 1
    assert _calls(emulator) == [(TRANSACTIONS, 401), ("/oauth2/auth", 200), (TRANSACTIONS, 200)]


def test_classy_401_on_a_fresh_token_is_permanent_and_names_the_connection(
    db: psycopg.Connection, classy: tuple[Any, ClassyApi], box: Sandbox, sandbox_tls: TlsFiles, https: Any
) -> None:
    emulator, _ = classy
    api = _production_retry(box, sandbox_tls, connection="classy_eu")
    emulator.seed("transactions", [_transaction(1, DAY)])
    _run(db, "r1", extract_classy, api)
    emulator.request_log.clear()
    # The application's access is revoked: the credentials still get tokens, each refused.
    https.put(
        f"{box['classy'].admin_url}/faults",
        json=[{"kind": "status", "status": 401, "path": "/transactions$"}],
        timeout=5,
    )
    try:
        with pytest.raises(PermanentError) as raised:
            _run(db, "r2", extract_classy, api)
    finally:
        https.delete(f"{box['classy'].admin_url}/faults", timeout=5)

    message = str(raised.value)
    assert "Classy refused a freshly fetched access token of connection 'classy_eu' (HTTP 401)" in message
    assert "sandbox-classy-secret" not in message
    assert api._token is None or api._token[0] not in message
    # The cached token is dropped and a new one fetched once, never more.
    assert _calls(emulator) == [(TRANSACTIONS, 401), ("/oauth2/auth", 200), (TRANSACTIONS, 401)]


def test_classy_401_on_the_first_token_is_permanent_without_a_second_token(
    db: psycopg.Connection, classy: tuple[Any, ClassyApi], box: Sandbox, sandbox_tls: TlsFiles, https: Any
) -> None:
    emulator, _ = classy
    api = _production_retry(box, sandbox_tls)
    https.put(
        f"{box['classy'].admin_url}/faults",
        json=[{"kind": "status", "status": 401, "path": "/transactions$"}],
        timeout=5,
    )
    try:
        with pytest.raises(PermanentError, match="freshly fetched access token of connection 'classy'"):
            extract_classy(db, api, run_id=None)
    finally:
        https.delete(f"{box['classy'].admin_url}/faults", timeout=5)
    assert _calls(emulator) == [("/oauth2/auth", 200), (TRANSACTIONS, 401)]


def test_classy_bad_client_secret_is_permanent(
    db: psycopg.Connection, box: Sandbox, sandbox_tls: TlsFiles
) -> None:
    api = ClassyApi(
        box["classy"].base_url, "sandbox-classy-client", "wrong", 1, verify=str(sandbox_tls.ca_cert)
    )
    with pytest.raises(PermanentError, match="Classy refused the client credentials of connection 'classy'"):
        extract_classy(db, api, run_id=None)


def test_a_garbled_date_lands_as_received_without_moving_the_watermark(db: psycopg.Connection) -> None:
    # The emulator (like Donorbox) never sends an unreadable date, so the pages come from a stand-in
    # at the API seam: a garbled record must still land, untouched, for standardization to judge.
    good = _donation(1, DAY - timedelta(days=2))
    garbled = {**_donation(2, DAY - timedelta(days=1)), "donation_date": "31/02/2026 25:61"}

    class Pages:
        def donation_pages(self, date_from: datetime) -> Any:
            yield [good, garbled]

    assert _run(db, "r1", extract_donorbox, Pages()) == (2, 2)
    landed: dict[str, datetime | None] = dict(
        db.execute("SELECT source_id, source_updated_at FROM raw.records").fetchall()
    )
    assert landed == {"1": DAY - timedelta(days=2), "2": None}
    assert read_watermark(db, "donorbox", "donations").cursor_id == "1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-03-01T12:00:00.000Z", DAY, id="iso-z"),
        pytest.param("2026-03-01T07:00:00-05:00", DAY, id="iso-offset"),
        pytest.param(int(DAY.timestamp()), DAY, id="epoch-int"),
        pytest.param(str(int(DAY.timestamp())), DAY, id="epoch-text"),
        pytest.param("31/02/2026", None, id="garbled"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="missing"),
        pytest.param(True, None, id="boolean"),
        pytest.param(10**20, None, id="overflow"),
    ],
)
def test_source_time_reads_what_it_can_and_never_raises(value: object, expected: datetime | None) -> None:
    from donor_sync.sources.extract import source_time

    assert source_time(value) == expected
