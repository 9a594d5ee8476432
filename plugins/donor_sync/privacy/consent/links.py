"""Signed preference-centre links: ``v1.<key id>.<donor id>.<expiry>.<signature>``.

The signature is HMAC-SHA256, under the ``links`` key ring (:mod:`donor_sync.privacy.keys`), of
``prefs|v1|<key id>|<donor id hex>|<expiry unix seconds>``: the purpose ``prefs`` is bound in, so a
link signed for something else never opens the preference centre. The key id travels in the
token, so a link signed before a rotation verifies as long as its key stays in the ring; a key
removed from the ring voids its links. The donor id is the random uuid destinations already hold
(no PII); the token grants reading and changing that donor's choices until it expires.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from donor_sync.errors import ConfigError, DonorSyncError
from donor_sync.privacy.keys import KeyRing

__all__ = ["LinkClaims", "LinkRefused", "sign_link", "verify_link"]

LINK_PURPOSE = "prefs"
VERSION = "v1"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

RefusalReason = Literal["malformed", "unknown_key", "tampered", "expired"]


class LinkRefused(DonorSyncError):  # noqa: N818 - an outcome, named for what the caller answers
    """A link that does not open the preference centre; ``reason`` says why (never the token)."""

    def __init__(self, reason: RefusalReason) -> None:
        super().__init__(f"preference link refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class LinkClaims:
    """What a verified link says."""

    donor_id: str
    expires_at: datetime
    key_id: str


def _message(key_id: str, donor_hex: str, expiry: int) -> bytes:
    return f"{LINK_PURPOSE}|{VERSION}|{key_id}|{donor_hex}|{expiry}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_link(ring: KeyRing, donor_id: str | UUID, *, expires_at: datetime) -> str:
    """Return a token for ``donor_id`` valid until ``expires_at``, signed with the ring's current key.

    :raises ConfigError: the current key id cannot travel in a token (letters, digits, ``_``, ``-``).
    """
    if not _KEY_ID.match(ring.current):
        raise ConfigError(
            "privacy keys: links.current must be a key id of letters, digits, '_' or '-' (it is put in links)"
        )
    donor_hex = UUID(str(donor_id)).hex
    expiry = int(expires_at.timestamp())
    signature = ring.hmac(_message(ring.current, donor_hex, expiry))
    return f"{VERSION}.{ring.current}.{donor_hex}.{expiry}.{_b64(signature)}"


def link_for(ring: KeyRing, donor_id: str | UUID, *, days: int, now: datetime | None = None) -> str:
    """Return a token valid for ``days`` from ``now``."""
    return sign_link(ring, donor_id, expires_at=(now or datetime.now(UTC)) + timedelta(days=days))


def verify_link(ring: KeyRing, token: str, *, now: datetime | None = None) -> LinkClaims:
    """Return the claims of a genuine, unexpired token.

    :raises LinkRefused: malformed, signed by a key the ring no longer has, tampered, or expired
        (checked in that order: an expired token is reported expired only when it is genuine).
    """
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != VERSION:
        raise LinkRefused("malformed")
    _, key_id, donor_hex, expiry_text, signature = parts
    if not _KEY_ID.match(key_id) or not re.fullmatch(r"[0-9a-f]{32}", donor_hex) or not expiry_text.isdigit():
        raise LinkRefused("malformed")
    if key_id not in ring.keys:
        raise LinkRefused("unknown_key")
    expected = _b64(ring.hmac(_message(key_id, donor_hex, int(expiry_text)), key_id=key_id))
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise LinkRefused("tampered")
    expires_at = datetime.fromtimestamp(int(expiry_text), tz=UTC)
    if expires_at <= (now or datetime.now(UTC)):
        raise LinkRefused("expired")
    return LinkClaims(str(UUID(donor_hex)), expires_at, key_id)
