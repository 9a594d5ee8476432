"""HubSpot's error bodies: the ``Error`` / ``StandardError`` shapes, 401s and the 429 bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

#: Category HubSpot uses for each status when nothing more specific applies.
CATEGORY_BY_STATUS: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    415: "VALIDATION_ERROR",
    429: "RATE_LIMITS",
}

_MESSAGE_BY_STATUS: dict[int, str] = {
    400: "Invalid input",
    403: "This app hasn't been granted all required scopes to make this call.",
    404: "Resource not found",
    409: "Conflict",
    500: "internal error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

AUTH_NOT_FOUND_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


def correlation_id() -> str:
    """Return a fresh correlation id (HubSpot uses UUIDs)."""
    return str(uuid.uuid4())


def now_iso() -> str:
    """Return the current time as HubSpot prints it (ISO 8601, milliseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpotError(Exception):
    """An error answered in HubSpot's ``Error`` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = None,
        sub_category: str | None = None,
        context: dict[str, list[str]] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category or CATEGORY_BY_STATUS.get(status, "INTERNAL_ERROR")
        self.sub_category = sub_category
        self.context = context
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """Return the JSON body of this error."""
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        if self.sub_category:
            body["subCategory"] = self.sub_category
        if self.context:
            body["context"] = self.context
        if self.errors:
            body["errors"] = self.errors
        return body

    def standard(self, input_id: str | None = None) -> dict[str, Any]:
        """Return this error as a batch ``StandardError`` item (inside a 207's ``errors``)."""
        item: dict[str, Any] = {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": self.context or {},
            "errors": self.errors or [],
            "links": {},
        }
        if self.sub_category:
            item["subCategory"] = self.sub_category
        if input_id is not None:
            item["id"] = input_id
        return item


def generic_body(status: int) -> dict[str, Any]:
    """Return the body HubSpot answers for ``status`` without further detail."""
    return HubSpotError(status, _MESSAGE_BY_STATUS.get(status, "internal error")).body()


def invalid_auth_body() -> dict[str, Any]:
    """Return the 401 body for a missing or unknown token."""
    return HubSpotError(401, AUTH_NOT_FOUND_MESSAGE, category="INVALID_AUTHENTICATION").body()


def expired_auth_body(expired_at: datetime | None = None) -> dict[str, Any]:
    """Return the 401 body for an expired token."""
    at = expired_at or datetime.now(UTC)
    seconds = max(0, int((datetime.now(UTC) - at).total_seconds()))
    iso = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return HubSpotError(
        401,
        f"The OAuth token used to make this call expired {seconds} second(s) ago.",
        category="EXPIRED_AUTHENTICATION",
        context={"expire time": [iso]},
    ).body()


def rate_limit_body(policy: str) -> dict[str, Any]:
    """Return the documented 429 body for ``policy`` (``TEN_SECONDLY_ROLLING`` or ``DAILY``)."""
    limit = "daily" if policy == "DAILY" else policy.lower()
    return {
        "status": "error",
        "message": f"You have reached your {limit} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": correlation_id(),
    }
