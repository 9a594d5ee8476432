"""The signature verifiers: properties over any body, secret and time, and agreement with stripe-python."""

from __future__ import annotations

import json

import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.web.webhooks.signatures import (
    SignatureRejected,
    hmac_signature_headers,
    stripe_signature_header,
    verify_hmac_sha256,
    verify_stripe_v1,
)

NOW = 1_767_225_600
TOLERANCE = 300

secrets_st = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(lambda s: s.strip() != "")
offsets = st.integers(min_value=-TOLERANCE, max_value=TOLERANCE)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _flip(data: bytes, index: int, delta: int) -> bytes:
    """Return ``data`` with one byte changed to another value."""
    index %= len(data)
    return data[:index] + bytes([(data[index] + delta) % 256]) + data[index + 1 :]


def _stripe_ok(body: bytes, header: str, secret: str, now: int = NOW) -> bool:
    try:
        verify_stripe_v1(body, header, [secret], tolerance_s=TOLERANCE, now=now)
    except SignatureRejected:
        return False
    return True


@fast
@given(body=st.binary(max_size=2000), secret=secrets_st, offset=offsets)
def test_any_signed_body_is_accepted_within_the_tolerance(body: bytes, secret: str, offset: int) -> None:
    header = stripe_signature_header(body, [secret], NOW + offset)
    assert verify_stripe_v1(body, header, [secret], tolerance_s=TOLERANCE, now=NOW) == NOW + offset
    hmac_headers = hmac_signature_headers(body, [secret], NOW + offset)
    assert (
        verify_hmac_sha256(
            body,
            hmac_headers["X-DonorSync-Timestamp"],
            hmac_headers["X-DonorSync-Signature"],
            [secret],
            tolerance_s=TOLERANCE,
            now=NOW,
        )
        == NOW + offset
    )


@fast
@given(
    body=st.binary(min_size=1, max_size=2000),
    secret=secrets_st,
    index=st.integers(min_value=0),
    delta=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_of_the_body_is_refused(
    body: bytes, secret: str, index: int, delta: int
) -> None:
    header = stripe_signature_header(body, [secret], NOW)
    tampered = _flip(body, index, delta)
    with pytest.raises(SignatureRejected) as refused:
        verify_stripe_v1(tampered, header, [secret], tolerance_s=TOLERANCE, now=NOW)
    assert refused.value.status == 401
    hmac_headers = hmac_signature_headers(body, [secret], NOW)
    with pytest.raises(SignatureRejected):
        verify_hmac_sha256(
            tampered,
            hmac_headers["X-DonorSync-Timestamp"],
            hmac_headers["X-DonorSync-Signature"],
            [secret],
            tolerance_s=TOLERANCE,
            now=NOW,
        )


@fast
@given(
    body=st.binary(max_size=500),
    secret=secrets_st,
    index=st.integers(min_value=0, max_value=63),
    shift=st.integers(min_value=1, max_value=15),
    skew=st.integers(min_value=1, max_value=TOLERANCE),
)
def test_any_change_of_the_signature_or_its_timestamp_is_refused(
    body: bytes, secret: str, index: int, shift: int, skew: int
) -> None:
    header = stripe_signature_header(body, [secret], NOW)
    digest = header.split("v1=")[1]
    changed = digest[:index] + format((int(digest[index], 16) + shift) % 16, "x") + digest[index + 1 :]
    assert not _stripe_ok(body, header.replace(digest, changed), secret)
    assert not _stripe_ok(body, header.replace(f"t={NOW}", f"t={NOW + skew}"), secret)
    assert not _stripe_ok(body, header, secret + "x")


@fast
@given(body=st.binary(max_size=200), secret=secrets_st, beyond=st.integers(min_value=1, max_value=10**6))
def test_timestamps_beyond_the_tolerance_either_way_are_refused(
    body: bytes, secret: str, beyond: int
) -> None:
    for signed_at in (NOW - TOLERANCE - beyond, NOW + TOLERANCE + beyond):
        with pytest.raises(SignatureRejected) as refused:
            verify_stripe_v1(
                body,
                stripe_signature_header(body, [secret], signed_at),
                [secret],
                tolerance_s=TOLERANCE,
                now=NOW,
            )
        assert refused.value.code == "timestamp_outside_tolerance"


# -- stripe-python agrees ---------------------------------------------------------------------------


def _stripe_python_ok(payload: str, header: str, secret: str) -> bool:
    """Whether ``stripe.Webhook.construct_event`` accepts the payload (it verifies before parsing)."""
    try:
        stripe.Webhook.construct_event(payload, header, secret, tolerance=TOLERANCE)
    except stripe.SignatureVerificationError:
        return False
    return True


@fast
@given(
    text=st.text(st.characters(codec="utf-8"), max_size=500),
    secret=secrets_st,
    index=st.integers(min_value=0),
    replacement=st.characters(codec="utf-8"),
)
def test_our_verifier_agrees_with_stripe_python_on_valid_and_tampered_payloads(
    text: str, secret: str, index: int, replacement: str
) -> None:
    import time

    now = int(time.time())  # stripe-python reads the clock itself
    # An event carrying arbitrary text, serialised as Stripe does (non-ASCII kept as is).
    payload = json.dumps(
        {"id": "evt_h", "object": "event", "data": {"object": {"note": text}}}, ensure_ascii=False
    )
    body = payload.encode("utf-8")
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=now)
    assert _stripe_python_ok(payload, header, secret)
    assert _stripe_ok(body, header, secret, now=now)
    i = index % len(payload)
    tampered = payload[:i] + replacement + payload[i + 1 :]
    unchanged = tampered == payload
    assert _stripe_python_ok(tampered, header, secret) is unchanged
    assert _stripe_ok(tampered.encode("utf-8"), header, secret, now=now) is unchanged
    ours = stripe_signature_header(body, [secret], now)
    assert _stripe_python_ok(payload, ours, secret), "stripe-python accepts the header we generate"
    assert not _stripe_python_ok(payload, ours, secret + "!")
    assert not _stripe_ok(body, ours, secret + "!", now=now)
    stale = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=now - TOLERANCE - 60)
    assert not _stripe_python_ok(payload, stale, secret)
    assert not _stripe_ok(body, stale, secret, now=now)


def test_construct_event_and_our_verifier_agree_on_a_rotating_secret_header() -> None:
    import time

    now = int(time.time())
    payload = json.dumps(
        {"id": "evt_rot", "object": "event", "type": "charge.succeeded", "data": {"object": {}}}
    )
    header = stripe_signature_header(payload.encode(), ["whsec_new", "whsec_old"], now)
    for secret in ("whsec_new", "whsec_old"):
        event = stripe.Webhook.construct_event(payload, header, secret)
        assert event.id == "evt_rot"
        assert _stripe_ok(payload.encode(), header, secret, now=now)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, header, "whsec_gone")
    assert not _stripe_ok(payload.encode(), header, "whsec_gone", now=now)


@pytest.mark.parametrize(
    ("header", "code", "status"),
    [
        pytest.param(None, "missing_signature", 401, id="absent"),
        pytest.param("  ", "missing_signature", 401, id="blank"),
        pytest.param("v1=" + "0" * 64, "malformed_signature", 400, id="no timestamp"),
        pytest.param(f"t={NOW},t={NOW + 1},v1=" + "0" * 64, "malformed_signature", 400, id="two timestamps"),
        pytest.param(f"t=-{NOW},v1=" + "0" * 64, "malformed_signature", 400, id="signed timestamp"),
        pytest.param(f"t={NOW}", "malformed_signature", 400, id="no v1"),
        pytest.param(f"t={NOW},v1=nothex", "invalid_signature", 401, id="v1 not hex"),
        pytest.param(f"t={NOW},v1=" + "0" * 64, "invalid_signature", 401, id="wrong v1"),
    ],
)
def test_header_problems_are_told_apart(header: str | None, code: str, status: int) -> None:
    with pytest.raises(SignatureRejected) as refused:
        verify_stripe_v1(b"{}", header, ["whsec_x"], tolerance_s=TOLERANCE, now=NOW)
    assert (refused.value.code, refused.value.status) == (code, status)
