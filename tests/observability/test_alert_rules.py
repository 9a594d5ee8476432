"""Alert rules: the shipped file loads, errors name the file, line and field, the docs page is
current; links and message texts; the quota reserve is the push engine's own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from donor_sync.cli_alerts import RULE_KINDS
from donor_sync.delivery.push.settings import PushOptions, PushSettings
from donor_sync.errors import ConfigError
from donor_sync.observability.alerting import AlertRules, Links, load_alert_rules
from donor_sync.observability.alerting.docs import doc_path, render
from donor_sync.observability.alerting.links import slack_escape
from donor_sync.observability.alerting.messages import render as render_message
from donor_sync.observability.alerting.messages import render_digest
from donor_sync.observability.alerting.rules import THRESHOLD_KINDS, default_alerts_path
from donor_sync.observability.alerting.store import Incident, Notice
from tests.observability.test_alert_engine import Slack, check, metric, new_run


def test_the_shipped_rules_load() -> None:
    shipped = load_alert_rules()
    assert default_alerts_path().exists()
    assert shipped.rules.failed_share.limits_for("mailchimp") == (True, 0.1, 50)
    assert shipped.rules.failed_share.limits_for("hubspot") == (True, 0.05, 50)
    assert shipped.rules.dead_letter_growth.clear_after_runs == 3
    assert shipped.rules.quota_reserve.reserve_share is None  # the push engine's reserve
    assert shipped.runbook_of("scorecard_drop") == "vendor-schema-change.md"
    assert shipped.runbook_of("task_failed") == "sync-failure.md"
    assert tuple(RULE_KINDS) == THRESHOLD_KINDS


@pytest.mark.parametrize(
    ("yaml_text", "field", "message"),
    [
        pytest.param(
            "rules:\n  failed_share:\n    max_shar: 0.1\n",
            "rules.failed_share.max_shar",
            "Extra inputs",
            id="typo",
        ),
        pytest.param(
            "rules:\n  circuit_open:\n    runbook: open-circuits.md\n",
            "rules.circuit_open.runbook",
            "open-circuit.md",
            id="unknown-runbook",
        ),
        pytest.param(
            "rules:\n  failed_share:\n    max_share: 0.2\n    critical_share: 0.1\n",
            "rules.failed_share",
            "critical_share must be above max_share",
            id="critical-below-max",
        ),
        pytest.param(
            "rules:\n  dead_letter_growth:\n    max_new_per_run: null\n    max_growth: null\n",
            "rules.dead_letter_growth",
            "set max_new_per_run, max_growth or both",
            id="no-dead-letter-limit",
        ),
        pytest.param(
            "rules:\n  scorecard_drop:\n    trailing_runs: 3\n    min_runs: 5\n",
            "rules.scorecard_drop",
            "min_runs must not exceed trailing_runs",
            id="min-over-trailing",
        ),
        pytest.param(
            "slack:\n  max_messages_per_evaluation: 1\n",
            "slack.max_messages_per_evaluation",
            "greater than or equal to 2",
            id="storm-limit",
        ),
        pytest.param(
            "rules:\n  erasure_deadline:\n    days_before: 40\n",
            "rules.erasure_deadline.days_before",
            "less than or equal to 30",
            id="days-before",
        ),
        pytest.param(
            "rules:\n  failed_share:\n    destinations:\n      HubSpot:\n        max_share: 0.2\n",
            "rules.failed_share.destinations.HubSpot.[key]",
            "String should match pattern",
            id="destination-name",
        ),
    ],
)
def test_errors_name_the_file_the_line_and_the_field(
    tmp_path: Path, yaml_text: str, field: str, message: str
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("# comment\n" + yaml_text)
    with pytest.raises(ConfigError) as raised:
        load_alert_rules(path)
    text = str(raised.value)
    assert text.startswith(f"{path}: line ")
    assert f"{field}:" in text
    assert message in text


def test_docs_page_is_current() -> None:
    assert doc_path().read_text(encoding="utf-8") == render(), "run `donor-sync alerts docs --write`"


def test_the_quota_reserve_is_the_push_engines_own(
    db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "donor_sync.delivery.push.settings.load_push_settings",
        lambda path=None: PushSettings(push=PushOptions(quota_reserve_share=0.3)),
    )
    run = new_run(db)
    metric(db, run, "api", "braze", "quota_remaining_ratio", 0.25, "ratio")
    slack = Slack()
    check(db, run, slack)
    [text] = slack.messages
    assert "braze: 25.0% of the API quota left; reserve 30%" in text
    own = AlertRules.model_validate({"rules": {"quota_reserve": {"reserve_share": 0.2}}})
    later = new_run(db)
    metric(db, later, "api", "braze", "quota_remaining_ratio", 0.25, "ratio")
    report = check(db, later, slack, own)
    assert report.resolved == ["quota_reserve:braze"]  # 25% left is above its own 20%


def test_links_quote_the_run_and_link_runbooks_only_when_published() -> None:
    local = Links(airflow_base_url="http://localhost:8080/")
    assert local.run_url("donations_hourly", "scheduled__2026-03-01T10:00:00+00:00") == (
        "http://localhost:8080/dags/donations_hourly/runs/scheduled__2026-03-01T10%3A00%3A00%2B00%3A00"
    )
    assert local.runbook_ref("open-circuit.md") == "`docs/runbooks/open-circuit.md`"
    assert Links().run_ref("d", "r") == "`d r`"
    assert Links().run_ref("d", None) is None
    published = Links(docs_base_url="https://git.example.org/org/repo/blob/main/docs/runbooks/")
    assert published.runbook_ref("open-circuit.md") == (
        "<https://git.example.org/org/repo/blob/main/docs/runbooks/open-circuit.md|open-circuit.md>"
    )
    assert slack_escape("<b> & </b>") == "&lt;b&gt; &amp; &lt;/b&gt;"


def _incident(**fields: object) -> Incident:
    now = datetime(2026, 3, 1, 10, tzinfo=UTC)
    base: dict[str, object] = {
        "incident_id": 1, "incident_key": "failed_share:hubspot", "kind": "failed_share", "scope": "hubspot",
        "severity": "warning", "summary": "hubspot: 9 of 100 failed <script>", "resolution_summary": None,
        "runbook": "sync-failure.md", "value": None, "threshold": None, "dag_id": "donations_hourly",
        "airflow_run_id": "manual__1", "first_run_id": None, "last_run_id": None, "times_seen": 3,
        "clear_streak": 0, "opened_at": now, "last_seen_at": now, "resolved_at": None, "notified_at": None,
        "notified_severity": None, "resolution_notified_at": None, "notify_failures": 0,
        "last_notify_error": None,
    }  # fmt: skip
    base.update(fields)
    return Incident(**base)  # type: ignore[arg-type]


def test_message_texts() -> None:
    links = Links(airflow_base_url="https://af.example.org")
    opened = render_message(Notice("opened", _incident()), links)
    assert opened == (
        ":warning: *Push failures above threshold*: hubspot: 9 of 100 failed &lt;script&gt;\n"
        "Run: <https://af.example.org/dags/donations_hourly/runs/manual__1|donations_hourly manual__1> · "
        "Runbook: `docs/runbooks/sync-failure.md` · Incident `failed_share:hubspot`"
    )
    later = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    resolved = render_message(
        Notice("resolved", _incident(resolved_at=later, resolution_summary="hubspot: 1 of 100 failed")), links
    )
    assert resolved.startswith(
        ":white_check_mark: *Resolved: Push failures above threshold*: hubspot: 1 of 100 failed. "
        "Open 2h 30m, seen 3 time(s).\n"
    )
    digest = render_digest(
        [Notice("opened", _incident()), Notice("resolved", _incident(incident_key="x:y"))], links, limit=6
    )
    assert digest.count("\n•") == 2
