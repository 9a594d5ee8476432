"""`donor-sync smoke` against every HTTPS emulator, through the shipped hooks and Airflow connections.

Each test starts from reset emulators and connections given as ``AIRFLOW_CONN_*`` variables; the
webhook receiver runs over HTTPS on a real socket. Every test checks that nothing but reads
(and token requests) reached an emulator, and that no secret is printed.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from donor_sync.cli import main
from donor_sync.delivery.settings import DeliverySettings
from donor_sync.demo_inputs import webhook_receiver
from donor_sync.smoke import Redactor, SmokeOptions, Status, exit_status, plan_checks, run_checks
from donor_sync.smoke.connections import AirflowConnections
from donor_sync.smoke.slack import SMOKE_MESSAGE
from sandbox.common.runner import Sandbox
from sandbox.emulators.salesforce.objects import SOBJECTS
from tests.smoke.support import (
    EMULATORS,
    SLACK_PATH,
    reset,
    sandbox_connections,
    secrets_of,
    snapshots,
    writes,
)

#: Checks a healthy sandbox skips: sources that publish no allowance.
NOT_APPLICABLE = {"stripe.limits", "donorbox.limits"}
EXPECTED = [
    "stripe.auth",
    "stripe.limits",
    "donorbox.auth",
    "donorbox.limits",
    "classy.auth",
    "classy.limits",
    "salesforce.auth",
    "salesforce.limits",
    "salesforce.describe",
    "hubspot.auth",
    "hubspot.limits",
    "hubspot.describe",
    "mailchimp.auth",
    "mailchimp.limits",
    "mailchimp.describe",
    "braze.auth",
    "braze.limits",
    "braze.describe",
    "webhook_sandbox_receiver.reachable",
    "receiver.health",
    "slack.webhook",
]


@pytest.fixture(scope="module")
def box(start_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return start_sandbox(*EMULATORS)


@dataclasses.dataclass
class World:
    box: Sandbox
    receiver_url: str
    connections: dict[str, dict[str, Any]]
    db_url: str

    @property
    def ca(self) -> str:
        return str(self.box.tls.ca_cert)

    def smoke(self, *args: str, receiver_url: str | None = None) -> Result:
        """Run `donor-sync smoke` with this world's receiver."""
        url = receiver_url or self.receiver_url
        return CliRunner().invoke(
            main, ["smoke", *args, "--receiver-url", url, "--receiver-ca-bundle", self.ca, "--timeout", "60"]
        )


@pytest.fixture
def world(box: Sandbox, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    reset(box)
    connections = sandbox_connections(box)
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.delenv("DONOR_SYNC_RECEIVER_URL", raising=False)
    with webhook_receiver(db_url, box.tls.server_cert, box.tls.server_key) as url:
        yield World(box, url, connections, db_url)


def _checks(result: Result) -> dict[str, dict[str, Any]]:
    document = json.loads(result.stdout)
    return {f"{c['target']}.{c['name']}": c for c in document["checks"]}


def _assert_no_secret(world: World, output: str, *also: str) -> None:
    for secret in [*secrets_of(world.connections), *also]:
        assert secret not in output, "a secret was printed"


def test_a_healthy_sandbox_passes_every_check_reads_only_and_prints_no_secret(world: World) -> None:
    before = snapshots(world.box)

    result = world.smoke("--json")

    assert result.exit_code == 0, result.output
    checks = _checks(result)
    assert list(checks) == EXPECTED
    failed = {k: c["reason"] for k, c in checks.items() if c["status"] != "pass" and k not in NOT_APPLICABLE}
    assert failed == {}
    assert {k for k, c in checks.items() if c["status"] == "skip"} == NOT_APPLICABLE
    assert json.loads(result.stdout)["summary"] == {"pass": len(EXPECTED) - 2, "fail": 0, "skip": 2}
    # Limits are read and reported as figures.
    salesforce = checks["salesforce.limits"]["data"]
    assert salesforce["limit"] == 100_000
    assert 0 < salesforce["remaining"] < 100_000
    assert checks["hubspot.limits"]["data"]["limit"] == 250_000
    assert checks["classy.limits"]["data"]["remaining"] < checks["classy.limits"]["data"]["limit"]
    assert checks["braze.limits"]["data"]["window"] == "subscription_get"
    # A new portal lacks donor-sync's id properties: the push creates them, so this passes and says so.
    assert (
        "creates the unique id properties donor_sync_id on contacts" in checks["hubspot.describe"]["reason"]
    )
    assert "the first push creates" in checks["mailchimp.describe"]["reason"]
    assert "DONORID" in checks["mailchimp.describe"]["data"]["to_create"]
    assert checks["salesforce.describe"]["data"]["fields"] > 20
    assert all(c["duration_s"] >= 0 for c in checks.values())
    # Nothing but reads and token requests reached any emulator; their data is unchanged.
    assert writes(world.box) == []
    assert snapshots(world.box) == before
    assert world.box["slack"].emulator.snapshot()["messages"] == []
    with psycopg.connect(world.db_url) as conn:
        row = conn.execute("SELECT count(*) FROM raw.webhook_inbox").fetchone()
    assert row == (0,), "the receiver stored nothing"
    _assert_no_secret(world, result.output)

    table = world.smoke()

    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].split()[:5] == ["STATUS", "TARGET", "CHECK", "TIME", "REASON"]
    assert "smoke test passed: 19 passed, 0 failed, 2 skipped" in table.output
    _assert_no_secret(world, table.output)


@pytest.mark.parametrize(
    ("conn_id", "change", "target", "expected"),
    [
        pytest.param(
            "salesforce_npsp",
            {"password": "not-the-consumer-secret"},
            "salesforce",
            "Salesforce refused the ClientCredentials grant",
            id="salesforce-secret",
        ),
        pytest.param(
            "hubspot",
            {"password": "pat-na1-expired"},
            "hubspot",
            "EXPIRED_AUTHENTICATION",
            id="hubspot-revoked",
        ),
        pytest.param("stripe", {"password": "rk_test_revoked_key"}, "stripe", "HTTP 401", id="stripe-key"),
        pytest.param("braze", {"password": "braze-key-revoked"}, "braze", "INVALID_API_KEY", id="braze-key"),
    ],
)
def test_a_wrong_credential_fails_that_check_only_and_says_what_to_fix(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    change: dict[str, str],
    target: str,
    expected: str,
) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**world.connections[conn_id], **change})
    )

    result = world.smoke("--json")

    assert result.exit_code == 1, result.output
    checks = _checks(result)
    assert {k for k, c in checks.items() if c["status"] == "fail"} == {f"{target}.auth"}
    reason = checks[f"{target}.auth"]["reason"]
    assert expected in reason
    assert f"Airflow connection {conn_id!r}" in reason, "the reason names the connection to fix"
    for key, check in checks.items():
        if key.startswith(f"{target}.") and key != f"{target}.auth":
            assert check["status"] == "skip"
            assert check["reason"] == f"not checked: {target} auth did not pass"
        elif not key.startswith(f"{target}."):
            assert check["status"] == "pass" or key in NOT_APPLICABLE, (key, check["reason"])
    assert writes(world.box) == []
    _assert_no_secret(world, result.output, change["password"])


def _without_field(sobject: str, name: str) -> Any:
    obj = SOBJECTS[sobject]
    return dataclasses.replace(obj, fields=tuple(f for f in obj.fields if f.name != name))


def _without_picklist_value(sobject: str, name: str, value: str) -> Any:
    obj = SOBJECTS[sobject]
    fields = tuple(
        dataclasses.replace(f, picklist=tuple(v for v in f.picklist if v != value)) if f.name == name else f
        for f in obj.fields
    )
    return dataclasses.replace(obj, fields=fields)


def test_a_mapped_field_or_picklist_value_missing_at_the_destination_fails_describe_naming_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.box["hubspot"].emulator.store.resolve("contacts").properties.pop("firstname")
    monkeypatch.setitem(SOBJECTS, "Contact", _without_field("Contact", "Email"))
    monkeypatch.setitem(
        SOBJECTS,
        "npe03__Recurring_Donation__c",
        _without_picklist_value("npe03__Recurring_Donation__c", "npe03__Installment_Period__c", "Monthly"),
    )

    result = world.smoke("--json", "--only", "salesforce", "--only", "hubspot")

    assert result.exit_code == 1, result.output
    checks = _checks(result)
    assert [k for k, c in checks.items() if c["status"] == "fail"] == [
        "salesforce.describe",
        "hubspot.describe",
    ]
    hubspot = checks["hubspot.describe"]
    assert "contact.firstname" in hubspot["reason"]
    assert "contacts has no field 'firstname'" in hubspot["reason"]
    assert "hubspot.yaml:" in hubspot["reason"]
    salesforce = checks["salesforce.describe"]["data"]["problems"]
    assert any("contact.Email" in p and "Contact has no field 'Email'" in p for p in salesforce)
    assert any(
        "recurring_donation.npe03__Installment_Period__c" in p and "'Monthly' is not an active value" in p
        for p in salesforce
    )
    assert checks["salesforce.auth"]["status"] == checks["hubspot.limits"]["status"] == "pass"
    assert writes(world.box) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_receiver_that_is_down_or_elsewhere_fails_its_check(world: World) -> None:
    down = world.smoke("--json", "--only", "receiver", receiver_url=f"https://127.0.0.1:{_free_port()}")

    assert down.exit_code == 1, down.output
    check = _checks(down)["receiver.health"]
    assert check["status"] == "fail"
    assert "no answer from the receiver at 127.0.0.1:" in check["reason"]
    assert "--receiver-url" in check["reason"]

    elsewhere = world.smoke("--json", "--only", "receiver", receiver_url=world.receiver_url + "/not-here")

    assert elsewhere.exit_code == 1
    assert "HTTP 404" in _checks(elsewhere)["receiver.health"]["reason"]

    up = world.smoke("--json", "--only", "receiver")

    assert up.exit_code == 0, up.output
    assert "answers /stripe, /donorbox, /classy" in _checks(up)["receiver.health"]["reason"]


def test_disabled_destinations_and_unconfigured_sources_are_skipped_a_missing_connection_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DONORBOX")
    monkeypatch.delenv("AIRFLOW_CONN_MAILCHIMP")
    delivery = DeliverySettings.model_validate({"destinations": {"braze": {"enabled": False}}})
    redactor = Redactor()
    options = SmokeOptions(
        receiver_url=world.receiver_url,
        receiver_verify=world.ca,
        only=frozenset({"donorbox", "braze", "mailchimp", "stripe"}),
    )

    results = run_checks(
        plan_checks(AirflowConnections(redactor), options, delivery=delivery), redact=redactor, timeout_s=60
    )

    by_key = {r.key: r for r in results}
    assert [by_key[f"braze.{n}"].status for n in ("auth", "limits", "describe")] == [Status.SKIP] * 3
    assert all("destinations.braze.enabled: false" in by_key[f"braze.{n}"].reason for n in ("auth", "limits"))
    assert by_key["donorbox.auth"].status is Status.SKIP
    assert by_key["donorbox.auth"].reason == "not configured here: no Airflow connection 'donorbox'"
    assert by_key["mailchimp.auth"].status is Status.FAIL
    assert "no Airflow connection 'mailchimp'" in by_key["mailchimp.auth"].reason
    assert by_key["mailchimp.describe"].status is Status.SKIP
    assert by_key["stripe.auth"].status is Status.PASS
    assert exit_status(results) == 1
    assert writes(world.box) == []


def test_slack_is_posted_to_only_when_asked(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import certifi

    bundle = tmp_path / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + Path(world.ca).read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    slack = world.box["slack"].emulator

    checked = world.smoke("--json", "--only", "slack")

    assert checked.exit_code == 0, checked.output
    assert _checks(checked)["slack.webhook"]["status"] == "pass"
    assert slack.snapshot()["messages"] == []

    posted = world.smoke("--json", "--only", "slack", "--post-slack")

    assert posted.exit_code == 0, posted.output
    assert _checks(posted)["slack.post"]["reason"].startswith("test message delivered")
    assert [m["payload"]["text"] for m in slack.snapshot()["messages"]] == [SMOKE_MESSAGE]

    slack.settings["revoked_webhooks"] = [SLACK_PATH]
    revoked = world.smoke("--json", "--only", "slack", "--post-slack")

    assert revoked.exit_code == 1
    assert "revoked" in _checks(revoked)["slack.post"]["reason"]
    _assert_no_secret(world, revoked.output)

    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "password": "https://hooks.slack.com/T0/B0/secretsecret"}),
    )
    malformed = world.smoke("--json", "--only", "slack", "--post-slack")

    assert malformed.exit_code == 1
    reason = _checks(malformed)["slack.post"]["reason"]
    assert "not an incoming webhook's" in reason
    assert "secretsecret" not in malformed.output
    assert len(slack.snapshot()["messages"]) == 1, "a malformed webhook is never posted to"
