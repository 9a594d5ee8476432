"""Call-level failures and signals: the request limit, 5xx and dropped connections retried, the
daily allowance as a QuotaState, and API-version deprecation signals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from donor_sync.delivery.connectors.salesforce import SalesforceClient, SalesforceConnector
from donor_sync.delivery.connectors.salesforce.client import parse_limit_info
from donor_sync.delivery.contracts import (
    BatchRejectedError,
    DestinationUnavailableError,
    FailureClass,
    Operation,
    QuotaState,
)
from sandbox.common.faults import FaultRule
from sandbox.common.runner import Running
from tests.delivery.connectors.salesforce._support import fast_retry, record, requests_to, rows, salesforce

COLLECTION = "/composite/sobjects/Contact/Donor_Sync_Id__c"


def test_request_limit_exceeded_is_rate_limited(sf: Running, connector: SalesforceConnector) -> None:
    connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    used = salesforce(sf).api_usage()
    sf.emulator.settings["daily_api_requests"] = used
    with pytest.raises(DestinationUnavailableError) as caught:
        connector.push("contact", Operation.UPSERT, [record(2, "D-2", {"LastName": "B"})])
    error = caught.value
    assert (error.error_class, error.error_code, error.http_status) == (
        FailureClass.RATE_LIMITED,
        "REQUEST_LIMIT_EXCEEDED",
        403,
    )
    assert error.retry_after_s is None, "Salesforce sends no Retry-After"
    quota = connector.quota()
    assert quota is not None
    assert quota.remaining == 0
    assert len(requests_to(sf, COLLECTION)) == 2, "a spent allowance is not retried inside the call"


def test_limit_info_header_becomes_quota_state(sf: Running, connector: SalesforceConnector) -> None:
    assert connector.quota() is None
    sf.emulator.settings["daily_api_requests"] = 500
    connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    quota = connector.quota()
    assert quota == QuotaState(remaining=500 - salesforce(sf).api_usage(), limit=500, window="rolling_24h")
    assert quota.share_remaining is not None
    assert 0.98 < quota.share_remaining < 1.0


def test_limits_reports_daily_api_requests(sf: Running, connector: SalesforceConnector) -> None:
    sf.emulator.settings["daily_api_requests"] = 1000
    body = connector.limits()
    assert body["DailyApiRequests"]["Max"] == 1000
    quota = connector.quota()
    assert quota is not None
    assert quota.limit == 1000
    assert quota.remaining == body["DailyApiRequests"]["Remaining"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=10018/100000", QuotaState(89_982, 100_000, "rolling_24h")),
        ("api-usage=25/15000; api-bursts=1/750", QuotaState(14_975, 15_000, "rolling_24h")),
        ("api-usage=16000/15000", QuotaState(0, 15_000, "rolling_24h")),
        ("", None),
        (None, None),
    ],
)
def test_parse_limit_info(header: str | None, expected: QuotaState | None) -> None:
    assert parse_limit_info(header) == expected


@pytest.mark.parametrize("kind", ["status", "reset"])
def test_5xx_and_dropped_connections_are_retried(
    sf: Running, connector: SalesforceConnector, kind: str
) -> None:
    sf.emulator.faults.set([FaultRule(kind=kind, status=503, path=COLLECTION, count=2)])  # type: ignore[arg-type]
    [result] = connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    assert result.ok
    assert len(rows(sf, "Contact")) == 1
    dropped = 503 if kind == "status" else None
    assert [r["status"] for r in requests_to(sf, COLLECTION)] == [dropped, dropped, 200]


def test_persistent_5xx_is_transient_after_few_attempts(
    sf: Running, make_client: Callable[..., SalesforceClient]
) -> None:
    connector = SalesforceConnector(make_client(retry=fast_retry(attempts=3)))
    sf.emulator.faults.set([FaultRule(kind="status", status=503, path=COLLECTION)])
    with pytest.raises(DestinationUnavailableError) as caught:
        connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    assert (caught.value.error_class, caught.value.http_status) == (FailureClass.TRANSIENT, 503)
    assert caught.value.error_code == "SERVER_UNAVAILABLE"
    assert len(requests_to(sf, COLLECTION)) == 3


def test_malformed_collection_request_rejects_the_batch(sf: Running, connector: SalesforceConnector) -> None:
    sf.emulator.settings["collections_max_records"] = 2
    batch = [record(i, f"D-{i}", {"LastName": "A"}) for i in range(3)]
    with pytest.raises(BatchRejectedError) as caught:
        connector.push("contact", Operation.UPSERT, batch)
    assert (caught.value.error_code, caught.value.http_status) == ("EXCEEDED_ID_LIMIT", 400)
    assert caught.value.error_class is FailureClass.VALIDATION


def test_unknown_object_is_a_permanent_call_failure(
    sf: Running, make_client: Callable[..., SalesforceClient]
) -> None:
    connector = SalesforceConnector(make_client(), entities={"contact": ("Missing__c", "Donor_Sync_Id__c")})
    with pytest.raises(DestinationUnavailableError) as caught:
        connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    assert (caught.value.error_class, caught.value.http_status) == (FailureClass.PERMANENT, 404)


def test_pinned_version_near_the_oldest_served_is_signalled_once(
    sf: Running, make_client: Callable[..., SalesforceClient]
) -> None:
    signals: list[str] = []
    sf.emulator.settings["min_api_version"] = 61.0
    client = make_client(api_version="62.0", on_deprecation=signals.append)
    client.get_json("/limits")
    client.get_json("/limits")
    assert signals == [
        "Salesforce API v62.0 is within 3 releases of the oldest version the org serves (v61.0); "
        "newest is v62.0"
    ]
    assert client.supported_versions == ["61.0", "62.0"]


def test_recent_pin_raises_no_signal(sf: Running, make_client: Callable[..., SalesforceClient]) -> None:
    client = make_client(api_version="59.0")
    client.get_json("/limits")
    assert client.deprecation_signals == []


def test_retired_version_is_permanent_before_any_write(
    sf: Running, make_client: Callable[..., SalesforceClient]
) -> None:
    sf.emulator.settings["min_api_version"] = 60.0
    connector = SalesforceConnector(make_client(api_version="58.0"))
    with pytest.raises(DestinationUnavailableError) as caught:
        connector.push("contact", Operation.UPSERT, [record(1, "D-1", {"LastName": "A"})])
    assert (caught.value.error_class, caught.value.error_code) == (
        FailureClass.PERMANENT,
        "API_VERSION_UNSUPPORTED",
    )
    assert not requests_to(sf, "/composite/")


def test_deprecation_headers_are_signalled(sf: Running, client: SalesforceClient) -> None:
    signals: list[str] = []
    client.on_deprecation = signals.append
    warning = '299 - "API version 62.0 is deprecated"'
    sf.emulator.faults.set(
        [FaultRule(kind="status", status=503, path="/limits", count=1, headers={"Warning": warning})]
    )
    client.get_json("/limits")
    assert signals == [f"Salesforce sent Warning: {warning}"]
