"""The types every part of delivery shares.

The flow, and who owns each step:

* ``delivery.mapping`` renders core rows (``SOURCE_FIELDS`` below names what each kind of row
  holds) into :class:`RenderedRecord` values, one per destination record, with its minimized
  payload and the records it depends on.
* ``delivery.outbox`` queues a rendered record in ``sync.outbox`` only when its payload hash
  differs from ``sync.destination_state.last_payload_sha256``; it claims due rows for a push
  and writes each :class:`RecordResult` back (success: destination state and remote id;
  failure: the next rung of the retry ladder, or a dead letter).
* ``delivery.push`` drives a :class:`Connector` per destination: entity order, batch sizes,
  splitting a batch the vendor rejects as a whole, the circuit breaker and the quota reserve.
* ``delivery.connectors.<vendor>`` makes the vendor calls: auth, rate limits, bulk endpoints,
  and the classification of every vendor error into a :class:`FailureClass`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from donor_sync.errors import DonorSyncError

#: Destination names as stored in sync.* tables (core.system_name) and used by DAG params.
SALESFORCE = "salesforce"
HUBSPOT = "hubspot"
MAILCHIMP = "mailchimp"
BRAZE = "braze"
#: Every event subscriber's destination (``webhook_<name>``) at once, in dead-letter selections.
EVENT_SUBSCRIBERS = "webhooks"
#: What dead letters can be chosen by (the dlq_replay DAG's choices): a CRM or ESP, or every subscriber.
DEAD_LETTER_DESTINATIONS = (SALESFORCE, HUBSPOT, MAILCHIMP, BRAZE, EVENT_SUBSCRIBERS)


class FailureClass(StrEnum):
    """Class of a delivery failure (the ``sync.failure_class`` domain)."""

    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    VALIDATION = "validation"
    DUPLICATE_RULE = "duplicate_rule"
    CONSENT_BLOCKED = "consent_blocked"
    PERMANENT = "permanent"

    @property
    def retryable(self) -> bool:
        """Whether a record failing this way climbs the retry ladder (else: dead letter at once)."""
        return self in {FailureClass.TRANSIENT, FailureClass.RATE_LIMITED, FailureClass.AUTH}

    @property
    def remediation(self) -> str:
        """What a person should do about a record that failed this way."""
        return REMEDIATION[self]


REMEDIATION: Mapping[FailureClass, str] = {
    FailureClass.TRANSIENT: (
        "The destination failed for a while (5xx, timeout, row lock). Nothing to fix in the record: "
        "it is retried on the ladder 1m, 5m, 15m, 1h, 4h, 24h; if it dead-lettered, check the "
        "vendor's status page, then replay it."
    ),
    FailureClass.RATE_LIMITED: (
        "The destination's request limit or daily quota ran out. Pushes resume when the window "
        "resets; if this recurs, lower the batch frequency, raise the quota reserve, or buy more "
        "API capacity, then replay."
    ),
    FailureClass.AUTH: (
        "The destination refused the credentials (expired or revoked token, missing permission). "
        "Rotate or fix the Airflow connection (docs/runbooks/credential-rotation.md), run "
        "`donor-sync smoke`, then replay."
    ),
    FailureClass.VALIDATION: (
        "The destination rejected the record's data (required field missing, bad picklist value, "
        "too long). Fix the mapping or the source record, or correct the payload with "
        "`donor-sync dlq edit`, then replay."
    ),
    FailureClass.DUPLICATE_RULE: (
        "A duplicate or matching rule in the destination blocked the write. Merge or link the "
        "existing record in the CRM (or relax the rule for the integration user), then replay."
    ),
    FailureClass.CONSENT_BLOCKED: (
        "Consent or suppression no longer allows this record to reach the destination. Nothing "
        "to replay unless the donor's consent changed; discard it with a note."
    ),
    FailureClass.PERMANENT: (
        "The destination will never accept this request as it is (object deleted, field or object "
        "missing, insufficient access). Read the error code, fix the configuration or the record, "
        "then replay or discard."
    ),
}


class Operation(StrEnum):
    """What a destination write does (``sync.outbox.operation``)."""

    UPSERT = "upsert"
    UPDATE = "update"
    CREATE = "create"
    DELETE = "delete"
    ARCHIVE = "archive"
    MERGE = "merge"


class SyncMode(StrEnum):
    """How a mapping keeps a destination object in step with core."""

    UPSERT = "upsert"  # create or update
    UPDATE_ONLY = "update_only"  # update records the destination already has
    CREATE_ONLY = "create_only"  # create once, never overwrite
    MIRROR = "mirror"  # upsert, and archive or delete what left core


#: Fields each kind of core row holds when it is handed to the mapping engine. A mapping's
#: ``from`` names one of these; ``delivery.outbox.source_rows`` reads them from core.
SOURCE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "donor": (
        "donor_id",
        "name_prefix",
        "first_name",
        "middle_name",
        "last_name",
        "name_suffix",
        "is_organization",
        "organization_name",
        "email",
        "email_verified",
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country_code",
        "address_validated",
        "birth_date",
        "time_zone",
        "is_deceased",
        "deceased_date",
        "do_not_contact",
        # Compiled consent (core.consent_state and core.suppressions, issue 7): true when the
        # donor opted out of marketing or fundraising on the channel (or on every channel), or
        # an active do-not-contact, do-not-solicit (or, for email, complaint) suppression covers it.
        "email_opt_out",
        "phone_opt_out",
        "sms_opt_out",
        "mail_opt_out",
        # Email consent per purpose (core.consent_state, channel email; for HubSpot subscription
        # statuses): opt_in, soft_opt_in, opt_out; `suppressed` = an opt-in an active email
        # suppression (deceased, do_not_contact, do_not_solicit, complained) overrides; `lapsed` =
        # the donor made a choice once but none holds now (expired); null = never chose. The basis
        # is the deciding event's lawful basis (default by status: consent / legitimate_interests).
        "consent_marketing_email_status",
        "consent_marketing_email_basis",
        "consent_fundraising_email_status",
        "consent_fundraising_email_basis",
        "consent_profiling_email_status",
        "consent_profiling_email_basis",
        "consent_sharing_email_status",
        "consent_sharing_email_basis",
        # Marketing consent on SMS (core.consent_state, channel sms; for Braze's SMS subscription
        # group): the same values as the email statuses above, `suppressed` by an active
        # deceased, do-not-contact or do-not-solicit suppression on sms or every channel.
        "consent_marketing_sms_status",
        "giving_currency",
        "gift_count",
        "lifetime_giving",
        "fiscal_year_giving",
        "largest_gift",
        "first_gift_date",
        "last_gift_date",
        "recurring_status",
        "rfm_segment",
        "household_id",
        "household_name",
        "household_role",
    ),
    "household": (
        "household_id",
        "name",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country_code",
        "member_count",
        "primary_donor_id",
    ),
    "gift": (
        "gift_key",
        "gift_id",
        "donor_id",
        "household_id",
        "source",
        "amount",
        "currency",
        "amount_base",
        "fee_amount",
        "gift_at",
        "gift_date",
        "status",
        "refunded_amount",
        "refunded_at",
        "payment_method",
        "is_anonymous",
        "recurring_plan_key",
        "installment_number",
        "designation",
        "campaign",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "tribute_type",
        "tribute_name",
    ),
    "recurring_plan": (
        "plan_key",
        "donor_id",
        "household_id",
        "source",
        "amount",
        "currency",
        "interval_unit",
        "interval_count",
        "status",
        "started_at",
        "next_payment_at",
        "last_payment_at",
        "ended_at",
        "failed_payment_count",
        "designation",
        "campaign",
    ),
}


@dataclass(frozen=True)
class RecordRef:
    """A destination record another one points at (an Opportunity's Contact, a deal's contact)."""

    entity: str
    record_key: str


@dataclass(frozen=True)
class RenderedRecord:
    """One destination record computed from core by a mapping.

    :param entity: destination object in lower snake case (``contact``, ``household_account``,
        ``opportunity``, ``recurring_donation``, ``deal``, ``deal_contact_association``).
    :param record_key: stable key in donor-sync (donor id, gift key, plan key, household id),
        also the external id the destination upserts on.
    :param payload: the minimized destination payload, JSON-serializable, field names as the
        destination spells them. References to other records use the vendor's external-id
        form (Salesforce ``{"npsp__Primary_Contact__r": {"Donor_Sync_Id__c": "..."}}``) or are
        listed in ``depends_on`` and resolved to remote ids at push time (HubSpot associations).
    :param depends_on: records that must have landed first; the push waits for them.
    :param priority: lower goes first; work above the quota reserve's priority cut waits.
    :param set_if_empty: payload fields the destination keeps when it already holds a value
        (the connector reads the current values and drops these fields where they are set).
    """

    entity: str
    record_key: str
    operation: Operation
    payload: Mapping[str, Any]
    donor_id: str | None = None
    depends_on: tuple[RecordRef, ...] = ()
    priority: int = 100
    set_if_empty: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OutboundRecord:
    """A claimed ``sync.outbox`` row handed to a connector."""

    outbox_id: int
    entity: str
    record_key: str
    operation: Operation
    payload: Mapping[str, Any]
    attempts: int = 0
    donor_id: str | None = None
    depends_on: tuple[RecordRef, ...] = ()
    set_if_empty: frozenset[str] = frozenset()
    #: Remote id of this record when it landed before (updates by id, merges), else None.
    remote_id: str | None = None
    #: Remote ids of the records in ``depends_on``, filled in by the push engine.
    remote_refs: Mapping[RecordRef, str] = field(default_factory=dict)


#: Error code of a record a connector never sent (``RecordResult.sent`` False).
NOT_SENT = "NOT_SENT"


@dataclass(frozen=True)
class RecordResult:
    """What the destination said about one record of a push.

    ``message`` is the vendor's message with no PII (ids and field names only). ``sent`` is False
    for a record the connector never sent (an earlier call of its batch failed and the connector
    stopped): it goes back on its rung without counting an attempt or logging one, so it is
    never dead-lettered for attempts it did not make.
    """

    outbox_id: int
    ok: bool
    remote_id: str | None = None
    created: bool | None = None
    error_class: FailureClass | None = None
    error_code: str | None = None
    message: str | None = None
    http_status: int | None = None
    vendor_request_id: str | None = None
    sent: bool = True

    def __post_init__(self) -> None:
        if not self.ok and self.error_class is None:
            raise ValueError(f"outbox row {self.outbox_id}: a failed result needs an error class")
        if self.ok and not self.sent:
            raise ValueError(f"outbox row {self.outbox_id}: a record that was not sent cannot have landed")


@dataclass(frozen=True)
class QuotaState:
    """The destination's remaining API allowance as it last reported it."""

    remaining: int | None
    limit: int | None
    window: str  # "daily", "rolling_24h", "per_10s"...

    @property
    def share_remaining(self) -> float | None:
        if self.remaining is None or not self.limit:
            return None
        return self.remaining / self.limit


class DeliveryError(DonorSyncError):
    """A push failed as a whole (not per record); ``error_class`` says what to do."""

    def __init__(
        self,
        message: str,
        *,
        error_class: FailureClass,
        error_code: str | None = None,
        http_status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.error_code = error_code
        self.http_status = http_status
        self.retry_after_s = retry_after_s


class BatchRejectedError(DeliveryError):
    """The vendor refused the whole batch for its content (malformed, one bad record poisons it).

    The push engine splits the batch until the bad records are isolated and the good ones land.
    """


class DestinationUnavailableError(DeliveryError):
    """The call failed for reasons outside the records (auth, quota, 5xx after retries, network).

    The records stay queued for their next rung; the circuit breaker counts the failure.
    """


@runtime_checkable
class Connector(Protocol):
    """One destination's vendor calls, as the push engine drives them."""

    destination: str

    def entity_order(self) -> Sequence[str]:
        """Entities in the order they must be pushed (parents before children)."""
        ...

    def batch_size(self, entity: str, operation: Operation, pending: int) -> int:
        """Records per :meth:`push` call for ``pending`` due records (Salesforce picks Bulk API
        2.0 above its threshold and sObject Collections below it)."""
        ...

    def push(
        self, entity: str, operation: Operation, records: Sequence[OutboundRecord]
    ) -> list[RecordResult]:
        """Write ``records`` (at most :meth:`batch_size`) and return one result per record.

        Raises :class:`BatchRejectedError` when the vendor refuses the batch as a whole for its
        content, :class:`DestinationUnavailableError` when the call itself failed.
        """
        ...

    def quota(self) -> QuotaState | None:
        """The allowance the vendor last reported, or None when unknown."""
        ...


#: Looks up the remote id of a record that already landed (push engine → connectors).
RemoteIdLookup = Callable[[RecordRef], str | None]
