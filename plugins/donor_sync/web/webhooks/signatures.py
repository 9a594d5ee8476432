"""Webhook signature schemes, verified on the raw request bytes before anything parses them.

``stripe_v1`` — ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]``; HMAC-SHA256 of
``"{t}.{raw body}"`` with the endpoint secret, hex. Accepted when any ``v1`` matches any current
secret (Stripe sends one ``v1`` per active secret while one is rolled; we may hold old and new).

``hmac_sha256`` — our scheme for platforms without one: ``X-DonorSync-Timestamp: <unix>`` and
``X-DonorSync-Signature: v1=<hex>[,v1=<hex>…]`` over the same ``"{timestamp}.{raw body}"``.

Both refuse a timestamp farther than the tolerance from now in either direction (an old signed
request replayed, or a sender clock far off), and compare digests in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HMAC_SIGNATURE_HEADER",
    "HMAC_TIMESTAMP_HEADER",
    "STRIPE_HEADER",
    "SignatureRejected",
    "hmac_signature_headers",
    "sign",
    "stripe_signature_header",
    "verify_hmac_sha256",
    "verify_stripe_v1",
]

STRIPE_HEADER = "stripe-signature"
HMAC_TIMESTAMP_HEADER = "x-donorsync-timestamp"
HMAC_SIGNATURE_HEADER = "x-donorsync-signature"

_TIMESTAMP = re.compile(r"\d{1,12}")


@dataclass(frozen=True)
class SignatureRejected(Exception):  # noqa: N818 - an outcome, named for what the caller answers
    """The request's signature is missing, malformed, wrong or outside the tolerance.

    :ivar code: machine-readable reason, answered in the error body.
    :ivar status: 401 for a missing or wrong signature or a stale time, 400 for a malformed header.
    """

    code: str
    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the hex HMAC-SHA256 of ``"{timestamp}.{body}"`` with ``secret`` (both schemes)."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Return a ``Stripe-Signature`` value with one ``v1`` per secret (for tests and examples)."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


def hmac_signature_headers(body: bytes, secrets: Sequence[str], timestamp: int) -> dict[str, str]:
    """Return the two ``hmac_sha256`` headers a sender adds (one ``v1`` per secret)."""
    return {
        "X-DonorSync-Timestamp": str(timestamp),
        "X-DonorSync-Signature": ",".join(f"v1={sign(s, timestamp, body)}" for s in secrets),
    }


def _check_time(timestamp: int, now: float, tolerance_s: int) -> None:
    if abs(now - timestamp) > tolerance_s:
        raise SignatureRejected(
            "timestamp_outside_tolerance",
            401,
            f"the signed timestamp is more than {tolerance_s} s from the receiver's clock",
        )


def _check_digests(body: bytes, timestamp: int, candidates: Sequence[str], secrets: Sequence[str]) -> None:
    """Accept when any candidate equals the digest of any secret; every pair is compared in constant time."""
    if not secrets:
        raise SignatureRejected("no_secret", 503, "no signing secret is configured for this endpoint")
    expected = [sign(secret, timestamp, body).encode() for secret in secrets]
    matched = False
    for candidate in candidates:
        given = candidate.lower().encode("ascii", "replace")
        for digest in expected:
            matched |= hmac.compare_digest(digest, given)
    if not matched:
        raise SignatureRejected(
            "invalid_signature", 401, "no signature matches the body and a current secret"
        )


def _v1_values(items: list[tuple[str, str]]) -> list[str]:
    values = [value for key, value in items if key == "v1"]
    if not values:
        raise SignatureRejected("malformed_signature", 400, "the signature header has no v1 signature")
    return values


def _pairs(header: str) -> list[tuple[str, str]]:
    pairs = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:  # items that are not key=value are ignored, as Stripe's own libraries do
            pairs.append((key.strip(), value.strip()))
    return pairs


def _timestamp(value: str | None) -> int:
    if value is None or not _TIMESTAMP.fullmatch(value.strip()):
        raise SignatureRejected("malformed_signature", 400, "the signed timestamp is not unix seconds")
    return int(value.strip())


def verify_stripe_v1(
    body: bytes, header: str | None, secrets: Sequence[str], *, tolerance_s: int, now: float
) -> int:
    """Verify a ``Stripe-Signature`` header over ``body``; return the signed timestamp.

    :raises SignatureRejected: missing (401), malformed (400), stale or future (401), no match (401).
    """
    if header is None or not header.strip():
        raise SignatureRejected("missing_signature", 401, "the Stripe-Signature header is missing")
    pairs = _pairs(header)
    stamps = {value for key, value in pairs if key == "t"}
    if len(stamps) != 1:
        raise SignatureRejected("malformed_signature", 400, "the Stripe-Signature header needs exactly one t")
    timestamp = _timestamp(stamps.pop())
    candidates = _v1_values(pairs)
    _check_time(timestamp, now, tolerance_s)
    _check_digests(body, timestamp, candidates, secrets)
    return timestamp


def verify_hmac_sha256(
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int,
    now: float,
) -> int:
    """Verify ``X-DonorSync-Timestamp`` and ``X-DonorSync-Signature`` over ``body``; return the timestamp.

    :raises SignatureRejected: as :func:`verify_stripe_v1`.
    """
    if not (signature_header or "").strip() or not (timestamp_header or "").strip():
        raise SignatureRejected(
            "missing_signature", 401, "X-DonorSync-Timestamp and X-DonorSync-Signature are both required"
        )
    timestamp = _timestamp(timestamp_header)
    candidates = _v1_values(_pairs(signature_header or ""))
    _check_time(timestamp, now, tolerance_s)
    _check_digests(body, timestamp, candidates, secrets)
    return timestamp
