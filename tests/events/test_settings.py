"""events.yaml: the shipped file loads, and mistakes name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.delivery.connectors.webhooks import endpoint_from_connection
from donor_sync.errors import ConfigError
from donor_sync.events.settings import load_event_settings


def test_the_shipped_file_loads_with_the_sandbox_receiver() -> None:
    settings = load_event_settings()
    spec = settings.subscriber("sandbox_receiver")
    assert spec.destination == "webhook_sandbox_receiver"
    assert set(spec.events) == {
        "donation.created",
        "donation.refunded",
        "donor.merged",
        "consent.changed",
        "donor.erased",
    }


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param(
            "subscribers:\n  - name: a\n    secret: s\n    url: https://x/h\n    events: [donation.made]\n",
            "line 5, subscribers.0.events.0",
            id="unknown-type",
        ),
        pytest.param(
            "subscribers:\n  - name: a\n    secret: s\n    url: https://x/h\n    path: /h\n"
            "    events: [donor.erased]\n",
            "subscribers.0: Value error, give exactly one of url and path",
            id="url-and-path",
        ),
        pytest.param(
            "subscribers:\n  - name: a\n    secret: s\n    url: http://x/h\n    events: [donor.erased]\n",
            "line 4, subscribers.0.url",
            id="plain-http",
        ),
        pytest.param(
            "subscribers:\n  - name: a\n    secret: s\n    url: https://x/h\n    events: [donor.erased]\n"
            "    version: 2\n",
            "version 2 does not exist for donor.erased",
            id="missing-version",
        ),
        pytest.param(
            "subscribers:\n  - {name: a, secret: s, url: 'https://x', events: [donor.erased]}\n"
            "  - {name: a, secret: t, url: 'https://y', events: [donor.erased]}\n",
            "subscriber names must be unique: a",
            id="duplicate-name",
        ),
        pytest.param(
            "subscribers:\n  - {name: a, secret: s, url: 'https://x', events: [donor.erased],"
            " pii: [email]}\n",
            "subscribers.0.pii",
            id="no-pii-field-set",
        ),
    ],
)
def test_errors_name_the_file_and_field(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_event_settings(path)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_endpoint_takes_every_secret_and_the_host_for_a_path(tmp_path: Path) -> None:
    spec = load_event_settings().subscriber("sandbox_receiver")
    extra = {"ca_bundle": "/ca.pem"}
    endpoint = endpoint_from_connection(spec, host="127.0.0.1:8709", password="new, old\nolder", extra=extra)
    assert endpoint.url == "https://127.0.0.1:8709/hooks/events"
    assert endpoint.secrets == ("new", "old", "older")
    assert endpoint.verify == "/ca.pem"
    assert extra == {"ca_bundle": "/ca.pem"}
    assert "new" not in repr(endpoint)
    with pytest.raises(
        ConfigError, match=r"subscribers\[sandbox_receiver\]\.secret: connection 'outbound_receiver'"
    ):
        endpoint_from_connection(spec, host="h", password="", extra={})
