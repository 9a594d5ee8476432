"""normalize_emails: email-validator's verdict and form, fast path held to agreement with it."""

from __future__ import annotations

import string

import email_validator
import pandas as pd
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import emails as emails_module
from donor_sync.standardize.fields import normalize_emails
from sandbox.datagen.bad_records import invalid_email


def _one(value: str | None, **kwargs: object) -> tuple[str | None, str | None, set[str], str]:
    result = normalize_emails(pd.Series([value], dtype=object), **kwargs)  # type: ignore[arg-type]
    email, key = result.values.iloc[0]
    messages = " ".join(result.issues["message"])
    return (
        None if pd.isna(email) else email,
        None if pd.isna(key) else key,
        set(result.issues["code"]),
        messages,
    )


@pytest.mark.parametrize(
    ("given", "email", "key"),
    [
        pytest.param("jane.doe@example.org", "jane.doe@example.org", "jane.doe@example.org", id="plain"),
        pytest.param(
            " Jane.Doe@Gmail.Example.COM ",
            "Jane.Doe@gmail.example.com",
            "jane.doe@gmail.example.com",
            id="case",
        ),
        pytest.param(
            "Postmaster@Example.com", "postmaster@example.com", "postmaster@example.com", id="rfc2142"
        ),
        pytest.param("ünïcode@example.com", "ünïcode@example.com", "ünïcode@example.com", id="smtputf8"),
        pytest.param("user@xn--bcher-kva.example", "user@bücher.example", "user@bücher.example", id="idna"),
        pytest.param(
            "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk", id="plus"
        ),
    ],
)
def test_valid_addresses(given: str, email: str, key: str) -> None:
    assert _one(given)[:3] == (email, key, set())


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("a@@b.com", id="two-at"),
        pytest.param("x at y.com", id="at-word"),
        pytest.param("x@", id="no-domain"),
        pytest.param("@y.com", id="no-local"),
        pytest.param("x@y", id="no-dot"),
        pytest.param("x..x@y.com", id="double-dot"),
        pytest.param("a a@y.com", id="space"),
        pytest.param("user@host.test", id="special-use"),
        pytest.param('"quoted"@example.com', id="quoted"),
        pytest.param("x@" + "a" * 64 + ".com", id="label-too-long"),
    ],
)
def test_invalid_addresses_are_missing_with_a_reason_that_does_not_repeat_them(given: str) -> None:
    email, key, codes, message = _one(given)
    assert (email, key, codes) == (None, None, {"invalid_email"})
    assert message.startswith("Email address is not valid: ")
    local, _, domain = given.rpartition("@")
    for part in (given, local, domain):
        if len(part) >= 3:
            assert part not in message


@pytest.mark.parametrize("pick", range(7), ids=[f"generator-variant-{i}" for i in range(7)])
def test_every_generated_bad_email_is_invalid(pick: int) -> None:
    assert _one(invalid_email("john.smith@gmail.example.com", pick))[2] == {"invalid_email"}


def test_blank_is_missing_without_an_issue() -> None:
    assert _one("  ")[:3] == (None, None, set())
    assert _one(None)[:3] == (None, None, set())


def test_special_use_domains_can_be_allowed_without_touching_the_validator() -> None:
    before = list(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    assert _one("user@host.test", allow_special_use_domains=("test",))[:3] == (
        "user@host.test",
        "user@host.test",
        set(),
    )
    assert _one("User@Box.Local", allow_special_use_domains=("local",))[:2] == (
        "User@box.local",
        "user@box.local",
    )
    assert _one("user@host.local", allow_special_use_domains=("test",))[2] == {"invalid_email"}
    assert _one("user@example.com", allow_special_use_domains=("example",))[2] == set()
    assert before == email_validator.SPECIAL_USE_DOMAIN_NAMES


def test_the_validator_runs_once_per_unique_hard_value(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = validate_email

    def spy(value: str, **kwargs: object) -> object:
        calls.append(value)
        return original(value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(emails_module, "validate_email", spy)
    normalize_emails(
        pd.Series(["a@example.org", "b@example.org", "x..y@example.org", "x..y@example.org"] * 100)
    )
    assert calls == ["x..y@example.org"]


def _reference(value: str) -> str | None:
    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError:
        return None


LOCAL = st.text(alphabet=string.ascii_letters + string.digits + "._+-'%!#", min_size=1, max_size=70)
DOMAIN = st.lists(
    st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12),
    min_size=1,
    max_size=4,
).map(".".join)


@settings(max_examples=400, deadline=None)
@given(LOCAL, DOMAIN)
def test_agrees_with_email_validator_on_any_ascii_address(local: str, domain: str) -> None:
    value = f"{local}@{domain}"
    email, key, codes, _ = _one(value)
    expected = _reference(value)
    assert email == expected
    assert key == (expected.lower() if expected else None)
    assert codes == (set() if expected else {"invalid_email"})


@settings(max_examples=200, deadline=None)
@given(LOCAL, DOMAIN)
def test_normalization_is_idempotent(local: str, domain: str) -> None:
    email, key, _, _ = _one(f"{local}@{domain}")
    if email is not None:
        assert _one(email)[:2] == (email, key)
