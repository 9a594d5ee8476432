"""Checks on a webhook request before its signature: caller address, body size, content type.

Each check raises :class:`Rejected` with the status and error code the receiver answers. The body
is read through :func:`read_capped`, which stops at the endpoint's limit whether or not the
request declared a ``Content-Length`` (a chunked upload is never buffered past the limit).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from donor_sync.web.webhooks.config import Network

__all__ = [
    "IpAddress",
    "Rejected",
    "check_allowed",
    "check_content_length",
    "check_content_type",
    "client_address",
    "read_capped",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Headers never stored: credentials (the inbox table refuses them too) and session material.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


@dataclass(frozen=True)
class Rejected(Exception):  # noqa: N818 - an outcome, named for what the caller answers
    """A request refused before it is stored; ``message`` never quotes the body or a secret."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def _parse_ip(value: str) -> IpAddress | None:
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _within(address: IpAddress, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]
) -> IpAddress | None:
    """Return the caller's address: the direct peer, or, only when that peer is a trusted proxy, the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy.

    Entries left of the first untrusted one were written by whoever called that host and are not
    believed. An unparsable entry where the walk stops yields None (no address: refused by any
    allow-list).
    """
    direct = _parse_ip(peer) if peer else None
    if direct is None or not _within(direct, trusted_proxies) or not forwarded_for:
        return direct
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    address = direct
    for hop in reversed(hops):
        parsed = _parse_ip(hop)
        if parsed is None:
            return None
        address = parsed
        if not _within(parsed, trusted_proxies):
            return parsed
    return address


def check_allowed(address: IpAddress | None, allow: Sequence[Network]) -> None:
    """Refuse (403) a caller outside a non-empty allow-list."""
    if allow and (address is None or not _within(address, allow)):
        raise Rejected(
            403, "address_not_allowed", "the caller's address is not in this endpoint's allow-list"
        )


def check_content_length(value: str | None, limit: int) -> None:
    """Refuse (413) a declared body larger than ``limit`` before reading any of it."""
    if value is None:
        return
    if not value.strip().isdigit():
        raise Rejected(400, "invalid_content_length", "Content-Length is not a number")
    if int(value) > limit:
        raise Rejected(413, "body_too_large", f"the body is larger than {limit} bytes")


def check_content_type(value: str | None, allowed: Sequence[str]) -> str:
    """Return the request's media type, refusing (415) one the endpoint does not accept."""
    media_type = (value or "").partition(";")[0].strip().lower()
    if media_type not in allowed:
        raise Rejected(415, "unsupported_media_type", f"Content-Type must be one of {', '.join(allowed)}")
    return media_type


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """Read the body chunk by chunk, refusing (413) as soon as it passes ``limit`` bytes.

    At most one chunk beyond the limit is ever held (the one that crossed it); the rest of the
    body is never read.
    """
    body = bytearray()
    async for chunk in chunks:
        if len(body) + len(chunk) > limit:
            raise Rejected(413, "body_too_large", f"the body is larger than {limit} bytes")
        body += chunk
    return bytes(body)
