"""Mailchimp list members: from a rendered payload to the member body, and Mailchimp's answers back.

A ``member`` payload (``include/mappings/destinations/mailchimp.yaml``) is flat, field names as
the mapping writes them:

``email_address``            the member's address; its subscriber hash is the member id.
``status_if_new``            the status a member gets when Mailchimp does not hold it yet
                             (compiled from consent). An existing member's status is never sent:
                             an unsubscribed, cleaned or archived member stays so.
``merge:<TAG>``              a merge field (``merge:FNAME``); ``merge:<TAG>.<part>`` is one part of
                             an address merge field (``merge:ADDRESS.addr1``); an address lacking
                             one of addr1, city, state, zip is left out (Mailchimp refuses it).
``tag:<name>``               true: the member carries the tag; false: it is taken off.
``permission:<text>``        a GDPR marketing permission, by the text the audience shows
                             (``permission:Email``); enabled or not.

Error texts from Mailchimp echo addresses, so only titles, codes and field names are passed on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from donor_sync.delivery.connectors.mailchimp.client import subscriber_hash
from donor_sync.delivery.contracts import FailureClass

#: Parts an address merge field needs (Mailchimp refuses an address without them).
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
ADDRESS_PARTS = (*ADDRESS_REQUIRED, "addr2", "country")
#: Statuses a new member may get.
NEW_STATUSES = frozenset({"subscribed", "unsubscribed", "pending", "transactional"})
_CODE = re.compile(r"[^A-Z0-9]+")


class PayloadError(ValueError):
    """A payload the connector cannot turn into a member body (names fields, never values)."""


@dataclass(frozen=True)
class MemberBody:
    """One member as Mailchimp takes it."""

    email: str
    status_if_new: str | None
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, bool] = field(default_factory=dict)
    permissions: dict[str, bool] = field(default_factory=dict)
    #: Address merge fields left out because a required part was missing.
    incomplete_addresses: tuple[str, ...] = ()

    @property
    def hash(self) -> str:
        """Return the subscriber hash (member id)."""
        return subscriber_hash(self.email)

    def put_body(self, permission_ids: Mapping[str, str]) -> dict[str, Any]:
        """Return the ``PUT /lists/{id}/members/{hash}`` body (``status_if_new``, never ``status``)."""
        body: dict[str, Any] = {"email_address": self.email, "merge_fields": dict(self.merge_fields)}
        if self.status_if_new:
            body["status_if_new"] = self.status_if_new
        permissions = self.permission_list(permission_ids)
        if permissions:
            body["marketing_permissions"] = permissions
        return body

    def subscribe_body(self, permission_ids: Mapping[str, str]) -> dict[str, Any]:
        """Return the member of a batch subscribe that creates it (``update_existing`` false)."""
        body: dict[str, Any] = {
            "email_address": self.email,
            "status": self.status_if_new,
            "merge_fields": dict(self.merge_fields),
        }
        permissions = self.permission_list(permission_ids)
        if permissions:
            body["marketing_permissions"] = permissions
        active = [name for name, on in self.tags.items() if on]
        if active:
            body["tags"] = active
        return body

    def tags_body(self) -> dict[str, Any] | None:
        """Return the ``POST …/tags`` body setting every mapped tag on or off (None: no tags mapped)."""
        if not self.tags:
            return None
        return {
            "tags": [
                {"name": name, "status": "active" if on else "inactive"}
                for name, on in sorted(self.tags.items())
            ],
            "is_syncing": True,  # no automation fires on a tag donor-sync sets
        }

    def permission_list(self, permission_ids: Mapping[str, str]) -> list[dict[str, Any]]:
        """Return the marketing permissions with their audience ids (unknown texts left out)."""
        return [
            {"marketing_permission_id": permission_ids[text], "enabled": on}
            for text, on in sorted(self.permissions.items())
            if text in permission_ids
        ]


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes", "y", "t"}


def member_body(payload: Mapping[str, Any]) -> MemberBody:  # noqa: PLR0912 - one branch per field kind
    """Return the member body of a rendered ``member`` payload.

    :raises PayloadError: no email address, an unknown status or payload field.
    """
    email = payload.get("email_address")
    if not isinstance(email, str) or not email.strip():
        raise PayloadError("email_address is missing")
    status = payload.get("status_if_new")
    if status is not None and status not in NEW_STATUSES:
        raise PayloadError(f"status_if_new is not one of {', '.join(sorted(NEW_STATUSES))}")
    merge: dict[str, Any] = {}
    addresses: dict[str, dict[str, Any]] = {}
    tags: dict[str, bool] = {}
    permissions: dict[str, bool] = {}
    for name, value in payload.items():
        if name in ("email_address", "status_if_new"):
            continue
        kind, _, rest = name.partition(":")
        if kind == "merge" and rest:
            tag, _, part = rest.partition(".")
            if part:
                if part not in ADDRESS_PARTS:
                    raise PayloadError(f"{name}: an address part is one of {', '.join(ADDRESS_PARTS)}")
                addresses.setdefault(tag.upper(), {})[part] = value
            else:
                merge[tag.upper()] = value
        elif kind == "tag" and rest:
            tags[rest] = _flag(value)
        elif kind == "permission" and rest:
            permissions[rest] = _flag(value)
        else:
            raise PayloadError(f"{name}: not a Mailchimp member field (merge:, tag:, permission:)")
    incomplete: list[str] = []
    for tag, parts in addresses.items():
        if all(parts.get(p) not in (None, "") for p in ADDRESS_REQUIRED):
            merge[tag] = {p: v for p, v in parts.items() if v not in (None, "")}
        else:
            incomplete.append(tag)
    return MemberBody(
        email=email.strip(),
        status_if_new=str(status) if status is not None else None,
        merge_fields=merge,
        tags=tags,
        permissions=permissions,
        incomplete_addresses=tuple(sorted(incomplete)),
    )


def _code(text: str) -> str:
    return _CODE.sub("_", text.upper()).strip("_")[:60] or "UNKNOWN"


@dataclass(frozen=True)
class Verdict:
    """Mailchimp's refusal of one member, classified."""

    error_class: FailureClass
    code: str
    message: str


def classify_problem(status: int, body: Any) -> Verdict:  # noqa: PLR0911 - a table of answers
    """Classify a problem+json answer about one member (PUT, PATCH or a /batches operation).

    The ``detail`` is never kept (it echoes the address); field names and Mailchimp's own field
    messages are.
    """
    problem = body if isinstance(body, dict) else {}
    title = str(problem.get("title") or f"HTTP {status}")
    code = _code(title)
    if status == 429:
        return Verdict(FailureClass.RATE_LIMITED, code, f"Mailchimp HTTP 429 {title}")
    if status >= 500:
        return Verdict(FailureClass.TRANSIENT, code, f"Mailchimp HTTP {status} {title}")
    if status == 401:
        return Verdict(FailureClass.AUTH, code, f"Mailchimp refused the API key ({title})")
    if status == 404:
        return Verdict(FailureClass.PERMANENT, code, "the member or audience does not exist in Mailchimp")
    if title in ("Member In Compliance State", "Forgotten Email Not Subscribed"):
        return Verdict(
            FailureClass.CONSENT_BLOCKED,
            code,
            f"Mailchimp keeps this address out ({title}): the person must subscribe again themselves",
        )
    if title == "Member Exists":
        return Verdict(FailureClass.DUPLICATE_RULE, code, "Mailchimp already holds this address")
    listed = problem.get("errors")
    errors: list[Any] = listed if isinstance(listed, list) else []
    fields = [
        f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict) and e.get("field")
    ]
    if "fake or invalid" in str(problem.get("detail", "")):
        return Verdict(FailureClass.VALIDATION, "INVALID_EMAIL", "Mailchimp refused the address as invalid")
    message = f"Mailchimp HTTP {status} {title}" + (f" ({'; '.join(fields)})" if fields else "")
    return Verdict(FailureClass.VALIDATION, code, message[:500])


def classify_subscribe_error(error: Mapping[str, Any]) -> Verdict:
    """Classify one ``errors[]`` item of a batch subscribe (``ERROR_CONTACT_EXISTS`` is not one:
    the caller updates those members instead)."""
    text = str(error.get("error") or "")
    field_name = str(error.get("field") or "")
    field_message = str(error.get("field_message") or "")
    code = str(error.get("error_code") or "ERROR_GENERIC")
    if "permanently deleted" in text:
        return Verdict(
            FailureClass.CONSENT_BLOCKED,
            "FORGOTTEN_EMAIL_NOT_SUBSCRIBED",
            "the address was permanently deleted from Mailchimp: the person must subscribe again themselves",
        )
    if "compliance state" in text:
        return Verdict(
            FailureClass.CONSENT_BLOCKED,
            "MEMBER_IN_COMPLIANCE_STATE",
            "Mailchimp keeps this address out (unsubscribe, bounce or compliance review)",
        )
    if "fake or invalid" in text:
        return Verdict(FailureClass.VALIDATION, "INVALID_EMAIL", "Mailchimp refused the address as invalid")
    if "signed up to a lot of lists" in text:
        return Verdict(
            FailureClass.TRANSIENT, "SIGNUP_THROTTLED", "Mailchimp throttled signups of this address"
        )
    if field_name:
        return Verdict(FailureClass.VALIDATION, code, f"field {field_name}: {field_message}"[:500])
    return Verdict(FailureClass.VALIDATION, code, f"Mailchimp refused the member ({code})")
