"""``GET /api/health`` for external monitors, on a real Postgres: each check judged against the
thresholds, ``ok``/``degraded`` with 200 and ``down`` with 503 (never a 500), no PII; and who gets
in: an Airflow token, or the monitor token of ``sync_health_monitor``, which opens nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from donor_sync.errors import ConfigError
from donor_sync.web.dashboard.auth import MONITOR_CONNECTION, monitor_token_matches
from donor_sync.web.dashboard.health_settings import (
    DeadLetterLimits,
    HealthSettings,
    default_health_path,
    load_health_settings,
)
from donor_sync.web.webhooks.secret_sources import SecretUnavailable, StaticSecrets
from tests.resolve.test_donors_support import JANE
from tests.web.dashboard.conftest import MONITOR_TOKEN, Seeded, Tokens
from tests.web.dashboard.test_access import ROUTES

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

MONITOR = StaticSecrets({MONITOR_CONNECTION: MONITOR_TOKEN})


class _BrokenStore:
    """A secrets store that is down (the metadata database or a secrets backend failed)."""

    def secrets(self, name: str) -> tuple[str, ...]:
        raise SecretUnavailable("OperationalError")


def _within(value: float | None, expected: float, slack: float = 120.0) -> bool:
    return value is not None and expected - slack <= value <= expected + slack


def test_health_reports_every_check_on_real_data(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    response = make_client(seeded.url, bearer=tokens.valid("vic", "viewer")).get("/api/health")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    # privacy_requests never succeeded and hubspot's circuit is open
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert checks["database"]["ok"] is True
    assert 0 <= checks["database"]["latency_ms"] < 5000
    now = datetime.now(UTC)
    seeded_at = seeded.runs.now
    hourly = checks["last_success"]["donations_hourly"]
    # the last hourly run finished an hour before seeding; the dry run after it does not count
    last_hourly = seeded.runs.hourly_starts[-1] + timedelta(minutes=10)
    assert datetime.fromisoformat(hourly["finished_at"]) == last_hourly
    assert _within(hourly["age_seconds"], (now - last_hourly).total_seconds())
    assert (hourly["max_age_seconds"], hourly["ok"]) == (7200, True)
    nightly = checks["last_success"]["donors_nightly"]
    assert nightly["ok"] is True
    assert _within(nightly["age_seconds"], (now - seeded.runs.nightly_starts[-1]).total_seconds() - 1800)
    assert checks["last_success"]["privacy_requests"] == {
        "finished_at": None,
        "age_seconds": None,
        "max_age_seconds": 7200,
        "ok": False,
    }
    assert checks["dead_letters"]["open"] == 2
    assert _within(checks["dead_letters"]["oldest_age_seconds"], 86400 + (now - seeded_at).total_seconds())
    assert checks["dead_letters"]["ok"] is True
    assert [(c["destination"], c["state"]) for c in checks["open_circuits"]] == [
        ("mailchimp", "half_open"),
        ("hubspot", "open"),
    ]
    assert checks["quota"]["hubspot"] == {
        "remaining": 120000,
        "limit": 250000,
        "ratio": 0.48,
        "window": "daily",
        "observed_at": (seeded_at - timedelta(minutes=65)).isoformat(),
        "stale": False,
        "ok": True,
    }
    assert checks["quota"]["mailchimp"]["ratio"] is None
    # ids, names and counts only: nothing about a donor or a vendor's message
    for leak in (JANE["email"], JANE["last_name"], "secret.donor@example.org", "Payloadname", "vendor said"):
        assert leak not in response.text, leak


def test_all_checks_passing_is_ok_and_thresholds_come_from_the_settings(
    db: psycopg.Connection, db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    for dag_id in ("donations_hourly", "donors_nightly", "privacy_requests"):
        db.execute(
            "INSERT INTO sync.runs (dag_id, airflow_run_id, run_type, status, started_at, finished_at)"
            " VALUES (%s, 'r1', 'scheduled', 'success', now() - interval '20 minutes',"
            " now() - interval '5 minutes')",
            (dag_id,),
        )
    db.execute(
        "INSERT INTO sync.api_usage (vendor, quota_window, window_start, calls, quota_limit, quota_remaining)"
        " VALUES ('hubspot', 'daily', date_trunc('day', now()), 10, 1000, 500)"
    )
    db.commit()
    token = tokens.valid()
    healthy = make_client(db_url, bearer=token).get("/api/health")
    assert (healthy.status_code, healthy.json()["status"]) == (200, "ok"), healthy.text
    assert healthy.json()["checks"]["dead_letters"] == {"open": 0, "oldest_age_seconds": None, "ok": True}
    assert healthy.json()["checks"]["open_circuits"] == []

    strict = HealthSettings(
        last_success_max_age_hours={"donations_hourly": 0.001},
        dead_letters=DeadLetterLimits(max_open=0),
    )
    stricter = make_client(db_url, bearer=token, health=lambda: strict).get("/api/health").json()
    assert stricter["status"] == "degraded"
    assert list(stricter["checks"]["last_success"]) == ["donations_hourly"]
    assert stricter["checks"]["last_success"]["donations_hourly"]["ok"] is False
    # the quota: half left is fine by default, not when 60% must be left
    assert stricter["checks"]["quota"]["hubspot"]["ok"] is True
    picky = HealthSettings.model_validate({"quota": {"min_remaining_ratio": 0.6}})
    assert make_client(db_url, bearer=token, health=lambda: picky).get("/api/health").json()["status"] == (
        "degraded"
    )


def test_an_unreachable_or_unreadable_database_is_down_with_503_not_a_500(
    empty_db_url: str, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    token = tokens.valid()

    def lookup_fails() -> str:
        raise RuntimeError("the donor_sync_db connection is not defined")

    cases: dict[str, tuple[str | Callable[[], str], str]] = {
        "closed port": ("postgresql://postgres@127.0.0.1:1/postgres", "unreachable"),
        "lookup fails": (lookup_fails, "unreachable"),
        "not migrated": (empty_db_url, "query_failed"),
    }
    for name, (target, error) in cases.items():
        response = make_client(target, bearer=token).get("/api/health")
        assert response.status_code == 503, (name, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["status"] == "down", name
        assert response.json()["checks"] == {"database": {"ok": False, "latency_ms": None, "error": error}}, (
            name
        )
        assert "Traceback" not in response.text
        assert "127.0.0.1" not in response.text  # no driver message naming the server


def test_a_monitor_token_opens_the_health_endpoint_only(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    monitor = make_client(seeded.url, bearer=MONITOR_TOKEN, monitor_tokens=MONITOR)
    health = monitor.get("/api/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded"
    for method, path, body in ROUTES:
        if path == "/api/health":
            continue
        refused = monitor.request(method, path.format(review_id=seeded.review_id), **body)
        assert refused.status_code == 401, (method, path, refused.status_code)
        assert "hubspot" not in refused.text
    # an Airflow token still works beside it
    assert (
        make_client(seeded.url, bearer=tokens.valid(), monitor_tokens=MONITOR).get("/api/health").status_code
        == 200
    )


def test_no_wrong_or_misplaced_monitor_token_gets_any_data(
    seeded: Seeded, make_client: Callable[..., TestClient]
) -> None:
    attempts = {
        "none": make_client(seeded.url, monitor_tokens=MONITOR),
        "wrong": make_client(
            seeded.url, bearer="monitor-token-wrong-0123456789abcdef", monitor_tokens=MONITOR
        ),
        "prefix": make_client(seeded.url, bearer=MONITOR_TOKEN[:-1], monitor_tokens=MONITOR),
        "longer": make_client(seeded.url, bearer=MONITOR_TOKEN + "x", monitor_tokens=MONITOR),
        "as the cookie": make_client(seeded.url, cookie=MONITOR_TOKEN, monitor_tokens=MONITOR),
        "none configured": make_client(seeded.url, bearer=MONITOR_TOKEN),
        "other connection": make_client(
            seeded.url, bearer=MONITOR_TOKEN, monitor_tokens=StaticSecrets({"other": MONITOR_TOKEN})
        ),
    }
    basic = make_client(seeded.url, monitor_tokens=MONITOR)
    basic.headers["Authorization"] = f"Basic {MONITOR_TOKEN}"
    attempts["basic scheme"] = basic
    for name, client in attempts.items():
        response = client.get("/api/health")
        assert response.status_code == 401, (name, response.text)
        assert response.json()["error"].startswith("token_"), name
        assert "checks" not in response.text, name


def test_monitor_tokens_rotate_and_short_ones_never_match(
    seeded: Seeded, make_client: Callable[..., TestClient]
) -> None:
    new = "monitor-token-new-abcdefghijklmnopqrstu"
    rotating = StaticSecrets({MONITOR_CONNECTION: f"{MONITOR_TOKEN}\n{new}"})
    for token in (MONITOR_TOKEN, new):
        assert (
            make_client(seeded.url, bearer=token, monitor_tokens=rotating).get("/api/health").status_code
            == 200
        )
    short = StaticSecrets({MONITOR_CONNECTION: "letmein"})
    assert (
        make_client(seeded.url, bearer="letmein", monitor_tokens=short).get("/api/health").status_code == 401
    )
    assert monitor_token_matches(MONITOR_TOKEN, (new, MONITOR_TOKEN))
    assert not monitor_token_matches(MONITOR_TOKEN, ())
    assert not monitor_token_matches("x" * 23, ("x" * 23,))
    assert monitor_token_matches("x" * 24, ("x" * 24,))


def test_when_the_monitor_token_cannot_be_checked_the_answer_is_503_and_airflow_tokens_still_work(
    seeded: Seeded, tokens: Tokens, make_client: Callable[..., TestClient]
) -> None:
    down = make_client(seeded.url, bearer=MONITOR_TOKEN, monitor_tokens=_BrokenStore())
    response = down.get("/api/health")
    assert (response.status_code, response.json()["error"]) == (503, "auth_unavailable")
    airflow = make_client(seeded.url, bearer=tokens.valid(), monitor_tokens=_BrokenStore())
    assert airflow.get("/api/health").status_code == 200


def test_the_shipped_thresholds_load_and_a_bad_file_names_its_line_and_field(tmp_path: Path) -> None:
    shipped = load_health_settings(default_health_path())
    assert shipped.last_success_max_age_hours == {
        "donations_hourly": 2.0,
        "privacy_requests": 2.0,
        "donors_nightly": 26.0,
    }
    assert shipped == load_health_settings()
    bad = tmp_path / "sync_health.yaml"
    bad.write_text(
        "last_success_max_age_hours:\n  donations_hourly: -1\ndead_letters:\n  max_open: 3\n  surprise: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_health_settings(bad)
    message = str(raised.value)
    assert f"{bad}: line 2, last_success_max_age_hours.donations_hourly" in message
    assert f"{bad}: line 5, dead_letters.surprise" in message


def test_the_report_is_json_ready(seeded: Seeded) -> None:
    from donor_sync.db import connect
    from donor_sync.web.dashboard.health import check_health

    report = check_health(lambda: connect(seeded.url), HealthSettings())
    body: dict[str, Any] = report.as_dict()
    assert body["status"] == report.status == "degraded"
    assert report.http_status == 200
    assert set(body["checks"]) == {"database", "last_success", "dead_letters", "open_circuits", "quota"}
