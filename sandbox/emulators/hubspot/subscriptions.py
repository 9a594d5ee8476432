"""Communication subscription statuses with legal basis (v3 and v4 communication-preferences APIs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.emulators.hubspot.errors import HubSpotError, now_iso

LEGAL_BASES = {
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "PERFORMANCE_OF_CONTRACT",
    "CONSENT_WITH_NOTICE",
    "NON_GDPR",
    "PROCESS_AND_STORE",
    "LEGITIMATE_INTEREST_OTHER",
}
V4_STATES = {"SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"}


@dataclass
class SubscriptionStore:
    """Per-email status of each subscription type, and portal-wide opt-outs."""

    definitions: list[dict[str, Any]]
    gdpr_enabled: bool = True
    statuses: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    opted_out: set[str] = field(default_factory=set)

    def definition(self, subscription_id: Any) -> dict[str, Any]:
        """Return the subscription definition or 400 for an unknown id."""
        for item in self.definitions:
            if str(item["id"]) == str(subscription_id):
                return item
        raise HubSpotError(
            400,
            f"Subscription {subscription_id} does not exist",
            context={"subscriptionId": [str(subscription_id)]},
        )

    def _legal(self, basis: Any, state: str) -> None:
        if basis is not None and basis not in LEGAL_BASES:
            raise HubSpotError(400, f"Invalid legalBasis {basis!r}", context={"legalBasis": [str(basis)]})
        if self.gdpr_enabled and basis is None and state == "SUBSCRIBED":
            raise HubSpotError(400, "legalBasis is required when GDPR features are enabled for the account")

    def set_status(
        self, email: str, subscription_id: Any, state: str, basis: Any, explanation: Any
    ) -> dict[str, Any]:
        """Record ``state`` (v4 vocabulary) for one email and subscription; return the stored entry."""
        if state not in V4_STATES:
            raise HubSpotError(400, f"Invalid statusState {state!r}", context={"statusState": [str(state)]})
        definition = self.definition(subscription_id)
        self._legal(basis, state)
        key = email.strip().lower()
        entry = {
            "status": state,
            "legalBasis": basis,
            "legalBasisExplanation": explanation,
            "timestamp": now_iso(),
            "subscriptionId": str(definition["id"]),
        }
        self.statuses.setdefault(key, {})[str(definition["id"])] = entry
        if state == "SUBSCRIBED":
            self.opted_out.discard(key)
        return entry

    def state_of(self, email: str, subscription_id: Any) -> str:
        """Return ``SUBSCRIBED``, ``UNSUBSCRIBED`` or ``NOT_SPECIFIED``."""
        key = email.strip().lower()
        if key in self.opted_out:
            return "UNSUBSCRIBED"
        entry = self.statuses.get(key, {}).get(str(subscription_id))
        return str(entry["status"]) if entry else "NOT_SPECIFIED"

    def unsubscribe_all(self, email: str) -> None:
        """Opt ``email`` out of every subscription (portal-wide)."""
        key = email.strip().lower()
        self.opted_out.add(key)
        for definition in self.definitions:
            self.statuses.setdefault(key, {})[str(definition["id"])] = {
                "status": "UNSUBSCRIBED",
                "legalBasis": None,
                "legalBasisExplanation": None,
                "timestamp": now_iso(),
                "subscriptionId": str(definition["id"]),
            }

    # -- v3 -----------------------------------------------------------------------------------------
    def v3_change(self, body: dict[str, Any], subscribe: bool) -> dict[str, Any]:
        """Apply ``/v3/subscribe`` or ``/v3/unsubscribe``; 400 when already in that state."""
        email = str(body.get("emailAddress") or "")
        if not email:
            raise HubSpotError(400, "emailAddress is required")
        definition = self.definition(body.get("subscriptionId"))
        current = self.state_of(email, definition["id"])
        if subscribe and current == "SUBSCRIBED":
            raise HubSpotError(400, f"{email} is already subscribed to subscription {definition['id']}")
        if not subscribe and current == "UNSUBSCRIBED":
            raise HubSpotError(400, f"{email} is already unsubscribed from subscription {definition['id']}")
        state = "SUBSCRIBED" if subscribe else "UNSUBSCRIBED"
        self.set_status(
            email, definition["id"], state, body.get("legalBasis"), body.get("legalBasisExplanation")
        )
        return self.v3_status(email, definition)

    def v3_status(self, email: str, definition: dict[str, Any]) -> dict[str, Any]:
        """Return a v3 ``PublicSubscriptionStatus``."""
        key = email.strip().lower()
        entry = self.statuses.get(key, {}).get(str(definition["id"]), {})
        state = self.state_of(email, definition["id"])
        result = {
            "id": str(definition["id"]),
            "name": definition["name"],
            "description": definition["description"],
            "status": "SUBSCRIBED" if state == "SUBSCRIBED" else "NOT_SUBSCRIBED",
            "sourceOfStatus": "PORTAL_WIDE_STATUS" if key in self.opted_out else "SUBSCRIPTION_STATUS",
            "preferenceGroupName": definition.get("name"),
        }
        if entry.get("legalBasis"):
            result["legalBasis"] = entry["legalBasis"]
            result["legalBasisExplanation"] = entry.get("legalBasisExplanation")
        return result

    def v3_statuses(self, email: str) -> dict[str, Any]:
        """Return the v3 ``PublicSubscriptionStatusesResponse`` for ``email``."""
        return {
            "recipient": email,
            "subscriptionStatuses": [self.v3_status(email, d) for d in self.definitions],
        }

    # -- v4 -----------------------------------------------------------------------------------------
    def v4_status(self, email: str, definition: dict[str, Any]) -> dict[str, Any]:
        """Return one v4 status item."""
        key = email.strip().lower()
        entry = self.statuses.get(key, {}).get(str(definition["id"]), {})
        return {
            "subscriberIdString": email,
            "subscriptionId": int(definition["id"]),
            "subscriptionName": definition["name"],
            "channel": "EMAIL",
            "status": self.state_of(email, definition["id"]),
            "legalBasis": entry.get("legalBasis"),
            "legalBasisExplanation": entry.get("legalBasisExplanation"),
            "source": "Public API",
            "timestamp": entry.get("timestamp"),
            "setStatusSuccessReason": "RESUBSCRIBE_OCCURRED" if entry else None,
        }
