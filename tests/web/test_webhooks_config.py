"""webhooks.yaml validation (errors name file, line and field), secret sources, caller addresses."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.web.webhooks.config import load_settings
from donor_sync.web.webhooks.request_checks import Rejected, check_content_type, client_address
from donor_sync.web.webhooks.secret_sources import (
    CachedSecrets,
    ChainedSecrets,
    EnvSecrets,
    FileSecrets,
    SecretUnavailable,
    StaticSecrets,
    split_secrets,
)


def test_the_repository_settings_load_with_one_endpoint_per_platform() -> None:
    settings = load_settings()
    assert {"stripe", "donorbox", "classy"} <= set(settings.endpoints)
    stripe = settings.endpoints["stripe"]
    assert (stripe.scheme, stripe.tolerance_s, stripe.secret_name) == ("stripe_v1", 300, "stripe_webhook")
    assert (stripe.landing.entity, stripe.landing.object) == ("event", "")
    assert settings.endpoints["donorbox"].landing.entity == "donation"
    assert settings.endpoints["classy"].landing.entity == "transaction"
    for endpoint in settings.endpoints.values():
        assert endpoint.scheme != "none" or endpoint.allow_ips


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param(
            "endpoints:\n  stripe:\n    scheme: stripe_v2\n    landing: {entity: event}\n",
            ["line 3", "endpoints.stripe.scheme"],
            id="unknown scheme",
        ),
        pytest.param(
            "endpoints:\n  form:\n    scheme: none\n    landing: {entity: form_submission}\n",
            ["line 2", "endpoints.form", "allow_ips"],
            id="unsigned without an allow-list",
        ),
        pytest.param(
            "trusted_proxies: [10.0.0.1/8]\nendpoints: {}\n",
            ["line 1", "trusted_proxies", "host bits"],
            id="CIDR with host bits",
        ),
        pytest.param(
            "endpoints:\n  stripe:\n    scheme: stripe_v1\n"
            "    tolerance_s: 0\n    landing: {entity: event}\n",
            ["line 4", "endpoints.stripe.tolerance_s"],
            id="zero tolerance",
        ),
        pytest.param(
            "endpoints:\n  stripe:\n    scheme: stripe_v1\n"
            "    secrets: [whsec_in_yaml]\n    landing: {entity: event}\n",
            ["line 4", "endpoints.stripe.secrets", "Extra inputs"],
            id="secrets are not accepted in the file",
        ),
        pytest.param(
            "endpoints:\n  Bad-Name:\n    scheme: stripe_v1\n    landing: {entity: event}\n",
            ["endpoints.Bad-Name.source"],
            id="source name",
        ),
        pytest.param(
            "endpoints:\n  stripe:\n    scheme: stripe_v1\n"
            "    content_types: [json]\n    landing: {entity: event}\n",
            ["line 4", "content_types"],
            id="content type",
        ),
    ],
)
def test_invalid_settings_name_the_file_line_and_field(
    tmp_path: Path, yaml_text: str, expected: list[str]
) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message


def test_secrets_split_on_newlines_and_commas() -> None:
    assert split_secrets("whsec_a\nwhsec_b, whsec_c\n\n") == ("whsec_a", "whsec_b", "whsec_c")
    assert split_secrets(["a", "b\nc", "a"]) == ("a", "b", "c")
    assert split_secrets(None) == ()


def test_env_file_and_chained_secrets(tmp_path: Path) -> None:
    env = EnvSecrets({"DONOR_SYNC_WEBHOOK_SECRET_STRIPE_WEBHOOK": "env_new,env_old"})
    assert env.secrets("stripe_webhook") == ("env_new", "env_old")
    assert env.secrets("classy_webhook") == ()
    file = tmp_path / "secrets.yaml"
    file.write_text("classy_webhook: file_one\ndonorbox_webhook: [file_a, file_b]\n")
    file.chmod(0o600)
    chained = ChainedSecrets(FileSecrets(file), env)
    assert chained.secrets("classy_webhook") == ("file_one",)
    assert chained.secrets("donorbox_webhook") == ("file_a", "file_b")
    assert chained.secrets("stripe_webhook") == ("env_new", "env_old")
    # A rotation written to the file is picked up without a restart.
    file.write_text("classy_webhook: file_two\n")
    os.utime(file, (1, 1))
    assert chained.secrets("classy_webhook") == ("file_two",)
    file.unlink()
    with pytest.raises(SecretUnavailable):
        chained.secrets("classy_webhook")


def test_cached_secrets_look_up_again_after_the_ttl() -> None:
    source = StaticSecrets({"s": "one"})
    now = [0.0]
    cached = CachedSecrets(source, ttl_s=30, clock=lambda: now[0])
    assert cached.secrets("s") == ("one",)
    source.set("s", "two")
    now[0] = 29.0
    assert cached.secrets("s") == ("one",)
    now[0] = 31.0
    assert cached.secrets("s") == ("two",)


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        pytest.param("203.0.113.5", [], "203.0.113.5", id="direct"),
        pytest.param("203.0.113.5", ["198.51.100.1"], "203.0.113.5", id="XFF ignored from an untrusted peer"),
        pytest.param("10.0.0.2", ["198.51.100.1"], "198.51.100.1", id="one trusted proxy"),
        pytest.param("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.9.9.9"], "198.51.100.1", id="chain of proxies"),
        pytest.param("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1", id="repeated headers"),
        pytest.param("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.3", id="only proxies"),
        pytest.param("10.0.0.2", ["198.51.100.1:443"], "198.51.100.1", id="v4 with port"),
        pytest.param("fd00::1", ["[2001:db8::7]:443"], "2001:db8::7", id="v6 behind a v6 proxy"),
        pytest.param("10.0.0.2", ["garbage"], None, id="unparsable hop"),
        pytest.param(None, [], None, id="no peer"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], expected: str | None) -> None:
    found = client_address(peer, forwarded, PROXIES)
    assert (str(found) if found else None) == expected


def test_content_type_parameters_are_ignored_but_the_type_must_match() -> None:
    assert check_content_type("Application/JSON; charset=utf-8", ("application/json",)) == "application/json"
    with pytest.raises(Rejected):
        check_content_type(None, ("application/json",))
    with pytest.raises(Rejected):
        check_content_type("text/plain", ("application/json",))
