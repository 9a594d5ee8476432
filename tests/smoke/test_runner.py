"""The smoke test's parts that need no vendor: the runner, redaction, the report and the plan's rules."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from donor_sync.smoke import (
    Check,
    CheckFailed,
    Redactor,
    Result,
    Status,
    exit_status,
    failed,
    passed,
    render_json,
    render_table,
    run_checks,
    skipped,
)
from donor_sync.smoke.connections import settings_file_environment
from donor_sync.smoke.endpoints import PLUGIN_PREFIX, RECEIVER_URL_ENV, receiver_url
from donor_sync.smoke.mailchimp import merge_field_problems
from donor_sync.smoke.redact import MASK, secret_values
from donor_sync.smoke.slack import webhook_problem
from tests.conftest import REPO_ROOT

# -- the runner ----------------------------------------------------------------------------------


def test_results_keep_the_plan_order_and_each_kind_of_ending_is_reported() -> None:
    def boom() -> None:
        raise RuntimeError("socket closed\nsecond line")

    checks = [
        Check("auth", "a", lambda: passed("fine", remaining=3)),
        Check("limits", "a", lambda: (_ for _ in ()).throw(CheckFailed("key refused; fix it", code="X"))),
        Check("auth", "b", boom),  # type: ignore[arg-type]
        Check("auth", "c", lambda: skipped("not configured")),
    ]

    results = run_checks(checks, workers=2)

    assert [(r.target, r.name, r.status) for r in results] == [
        ("a", "auth", Status.PASS),
        ("a", "limits", Status.FAIL),
        ("b", "auth", Status.FAIL),
        ("c", "auth", Status.SKIP),
    ]
    assert results[0].data == {"remaining": 3}
    assert (results[1].reason, results[1].data) == ("key refused; fix it", {"code": "X"})
    assert results[2].reason == "RuntimeError: socket closed", "one line: the class and the first line"


def test_a_check_whose_prerequisite_did_not_pass_is_skipped_with_the_reason() -> None:
    ran: list[str] = []

    def probe(name: str) -> Check:
        return Check(name, "crm", lambda: (ran.append(name), passed("ok"))[1], after="auth")

    refused = run_checks(
        [Check("auth", "crm", lambda: failed("refused")), probe("limits"), probe("describe")]
    )
    disabled = run_checks(
        [Check("auth", "crm", lambda: skipped("disabled in delivery.yaml")), probe("limits")]
    )
    allowed = run_checks([Check("auth", "crm", lambda: passed("ok")), probe("limits")])

    assert [(r.status, r.reason) for r in refused[1:]] == [
        (Status.SKIP, "not checked: crm auth did not pass")
    ] * 2
    assert (disabled[1].status, disabled[1].reason) == (Status.SKIP, "disabled in delivery.yaml")
    assert allowed[1].status is Status.PASS
    assert ran == ["limits"], "dependent checks ran only after a passing prerequisite"


def test_a_check_past_its_time_limit_fails_without_holding_the_others() -> None:
    release = threading.Event()

    def hang() -> object:
        release.wait(10)
        return passed("too late")

    started = time.monotonic()
    results = run_checks(
        [Check("auth", "slow", hang), Check("auth", "quick", lambda: passed("ok"))], workers=2, timeout_s=0.3
    )
    elapsed = time.monotonic() - started
    release.set()

    assert elapsed < 3
    assert results[0].status is Status.FAIL
    assert results[0].reason == "no answer within 0.3 s: slow is slow or unreachable"
    assert results[0].duration_s >= 0.3
    assert results[1].status is Status.PASS


def test_checks_run_in_parallel_but_never_more_than_the_workers() -> None:
    lock = threading.Lock()
    now, peak = 0, 0

    def probe() -> object:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.05)
        with lock:
            now -= 1
        return passed("ok")

    results = run_checks([Check("auth", f"t{i}", probe) for i in range(9)], workers=3)

    assert all(r.status is Status.PASS for r in results)
    assert peak == 3


def test_duplicate_checks_are_refused() -> None:
    with pytest.raises(ValueError, match="its own target and name"):
        run_checks([Check("auth", "a", lambda: passed("x")), Check("auth", "a", lambda: passed("y"))])


def test_reasons_and_figures_never_carry_a_known_secret() -> None:
    redactor = Redactor(
        secret_values("sk_live_abcdef123456", {"client_secret": "topsecret99", "ca_bundle": "/ca"})
    )
    leak = "call with sk_live_abcdef123456 to https://user:pw@api.example.org/x?token=abc failed"
    results = run_checks(
        [Check("auth", "x", lambda: failed(leak, echoed=["topsecret99", 3]))], redact=redactor
    )

    assert results[0].reason == f"call with {MASK} to https://{MASK}@api.example.org/x?{MASK} failed"
    assert results[0].data == {"echoed": [MASK, 3]}


# -- redaction, report ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "posted to https://hooks.slack.com/services/T01ABC/B02DEF/xyzXYZ123",
            f"posted to https://hooks.slack.com/services/{MASK}",
            id="slack-webhook-path",
        ),
        pytest.param(
            "Authorization: Bearer pat-na1-0123456789", f"Authorization: Bearer {MASK}", id="bearer"
        ),
        pytest.param("HTTP 401 on /v1/charges", "HTTP 401 on /v1/charges", id="nothing-to-mask"),
    ],
)
def test_the_redactor_masks_what_looks_like_a_credential(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_short_values_are_not_taken_for_secrets() -> None:
    assert secret_values("abc", {"token": "12345", "api_key": "long-enough-key"}) == ["long-enough-key"]
    assert secret_values("old-secret-1,new-secret-2", {}) == [
        "old-secret-1,new-secret-2",
        "old-secret-1",
        "new-secret-2",
    ]


def _results() -> list[Result]:
    return [
        Result("auth", "stripe", Status.PASS, 0.214, "key reads charges"),
        Result("limits", "stripe", Status.SKIP, 0.0, "Stripe reports no remaining allowance"),
        Result(
            "auth", "hubspot", Status.FAIL, 1.5, "token refused", {"error_code": "EXPIRED_AUTHENTICATION"}
        ),
    ]


def test_the_table_has_one_row_per_check_and_a_verdict() -> None:
    lines = render_table(_results()).splitlines()

    assert lines[0].split() == ["STATUS", "TARGET", "CHECK", "TIME", "REASON"]
    assert lines[1].split(maxsplit=4) == ["PASS", "stripe", "auth", "0.21s", "key reads charges"]
    assert lines[3].split(maxsplit=4) == ["FAIL", "hubspot", "auth", "1.50s", "token refused"]
    assert lines[-1] == "smoke test failed: 1 passed, 1 failed, 1 skipped"


def test_the_json_report_and_the_exit_status_follow_the_failures() -> None:
    document = json.loads(render_json(_results()))

    assert document["ok"] is False
    assert document["summary"] == {"pass": 1, "fail": 1, "skip": 1}
    assert document["checks"][2] == {
        "target": "hubspot",
        "name": "auth",
        "status": "fail",
        "duration_s": 1.5,
        "reason": "token refused",
        "data": {"error_code": "EXPIRED_AUTHENTICATION"},
    }
    assert exit_status(_results()) == 1
    assert exit_status(_results()[:2]) == 0, "skipped checks do not fail the run"


# -- the plan's rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("https://hooks.slack.com/services/T0001/B0002/abcDEF123", None, id="incoming-webhook"),
        pytest.param("https://hooks.slack.com/triggers/T0001/12345/abcdef", None, id="workflow"),
        pytest.param("https://127.0.0.1:8708/services/T0SANDBOX/B0SANDBOX/sandbox", None, id="sandbox"),
        pytest.param("http://hooks.slack.com/services/T0001/B0002/abc", "not https", id="plain-http"),
        pytest.param("https://hooks.slack.com/services/T0001/abc", "path is not", id="token-cut-short"),
        pytest.param("https://hooks.slack.com/T0001/B0002/abc", "path is not", id="no-services"),
        pytest.param("https://u:p@hooks.slack.com/services/T1/B2/abc", "credentials", id="userinfo"),
    ],
)
def test_a_slack_webhook_url_is_well_formed_or_says_why_not(url: str, problem: str | None) -> None:
    found = webhook_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_the_receiver_url_comes_from_the_flag_the_environment_or_airflow() -> None:
    env = {RECEIVER_URL_ENV: "https://hooks.example.org/in/"}

    assert receiver_url("https://flag.example.org/", env, "https://af") == "https://flag.example.org"
    assert receiver_url(None, env, "https://af") == "https://hooks.example.org/in"
    assert (
        receiver_url(None, {}, "https://airflow.example.org/")
        == f"https://airflow.example.org{PLUGIN_PREFIX}"
    )
    assert receiver_url(None, {}, None) is None


def test_merge_fields_missing_are_listed_and_those_of_another_type_clash() -> None:
    wanted = {"FNAME": "text", "ADDRESS": "address", "TOTALGIVEN": "number", "TIER": "text", "NEW": "text"}
    existing = {"FNAME": "text", "ADDRESS": "address", "TOTALGIVEN": "text", "TIER": "dropdown"}

    clashes, missing = merge_field_problems(wanted, existing)

    assert clashes == ["TOTALGIVEN is 'text', the mapping sends 'number'"]
    assert missing == ["NEW"]


def test_the_checked_sources_and_connections_are_the_ones_tasks_use() -> None:
    from donor_sync.hooks.braze import BrazeHook
    from donor_sync.hooks.classy import ClassyHook
    from donor_sync.hooks.donorbox import DonorboxHook
    from donor_sync.hooks.hubspot import HubSpotHook
    from donor_sync.hooks.mailchimp import MailchimpHook
    from donor_sync.hooks.salesforce_npsp import SalesforceNpspHook
    from donor_sync.hooks.stripe import StripeHook
    from donor_sync.observability.notifiers import SLACK_CONN_ID
    from donor_sync.operators.extract_tasks import API_SOURCES
    from donor_sync.smoke.plan import DESTINATIONS
    from donor_sync.smoke.slack import SLACK_CONN_ID as SMOKE_SLACK
    from donor_sync.smoke.sources import SOURCES

    assert tuple(SOURCES) == API_SOURCES
    assert list(SOURCES.values()) == [
        StripeHook.default_conn_name,
        DonorboxHook.default_conn_name,
        ClassyHook.default_conn_name,
    ]
    assert {d: conn for d, (conn, _) in DESTINATIONS.items()} == {
        "salesforce": SalesforceNpspHook.default_conn_name,
        "hubspot": HubSpotHook.default_conn_name,
        "mailchimp": MailchimpHook.default_conn_name,
        "braze": BrazeHook.default_conn_name,
    }
    assert SMOKE_SLACK == SLACK_CONN_ID


def test_a_settings_file_gives_the_connections_as_airflow_would_import_them(tmp_path: Path) -> None:
    env = settings_file_environment(REPO_ROOT / "airflow_settings.yaml", state_dir=tmp_path)

    salesforce = json.loads(env["AIRFLOW_CONN_SALESFORCE_NPSP"])
    assert salesforce["conn_type"] == "salesforce_npsp"
    assert salesforce["extra"]["private_key"] == str(tmp_path / "sandbox" / "salesforce_jwt.key")
    assert json.loads(env["AIRFLOW_CONN_SLACK_ALERTS"])["conn_type"] == "slackwebhook"
    assert json.loads(env["AIRFLOW_CONN_CLASSY"])["extra"]["organization_id"] == 1
    assert "AIRFLOW_CONN_STRIPE" in env
    assert "AIRFLOW_CONN_DONORBOX" in env


def test_with_no_connection_sources_are_skipped_and_destinations_and_slack_fail() -> None:
    from donor_sync.smoke import SmokeOptions, plan_checks

    looked_up: list[str] = []

    def nothing(conn_id: str) -> None:
        looked_up.append(conn_id)

    checks = plan_checks(nothing, SmokeOptions(), receiver_sources=["stripe"], api_base_url=None, environ={})
    results = {r.key: r for r in run_checks(checks)}

    assert results["stripe.auth"].status is Status.SKIP
    assert results["stripe.limits"].reason == "not configured here: no Airflow connection 'stripe'"
    assert results["salesforce.auth"].status is Status.FAIL
    assert "no Airflow connection 'salesforce_npsp'" in results["salesforce.auth"].reason
    assert results["salesforce.describe"].status is Status.SKIP
    assert results["webhook_sandbox_receiver.reachable"].status is Status.FAIL
    assert "'outbound_receiver'" in results["webhook_sandbox_receiver.reachable"].reason
    assert results["receiver.health"].status is Status.SKIP
    assert results["slack.webhook"].status is Status.FAIL
    assert {"stripe", "donorbox", "classy", "salesforce_npsp", "slack_alerts"} <= set(looked_up)


def test_a_failing_connection_lookup_fails_that_target_and_unknown_targets_are_refused() -> None:
    from donor_sync.smoke import SmokeOptions, plan_checks

    def broken(conn_id: str) -> None:
        raise ConnectionError(f"secrets backend down for {conn_id}")

    only_braze = SmokeOptions(only=frozenset({"braze"}))
    results = run_checks(plan_checks(broken, only_braze, receiver_sources=[], api_base_url=None, environ={}))

    assert [(r.key, r.status) for r in results] == [
        ("braze.auth", Status.FAIL),
        ("braze.limits", Status.SKIP),
        ("braze.describe", Status.SKIP),
    ]
    assert results[0].reason == (
        "cannot look up Airflow connection 'braze': ConnectionError: secrets backend down for braze"
    )
    with pytest.raises(ValueError, match=r"unknown target\(s\) nope; known: stripe, donorbox"):
        plan_checks(broken, SmokeOptions(only=frozenset({"nope"})), receiver_sources=[], environ={})
