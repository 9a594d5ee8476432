"""CRM consent pull-back: opt-outs become consent events, staff flags become suppressions.

Reconciliation (:func:`donor_sync.delivery.reconcile.pull_destination`) reads each CRM's changed
records. It wraps its reader in a :class:`ConsentTap` (one call, :func:`tap`): the tap asks the
reader for the extra fields include/mappings/privacy/consent_pullback.yaml names (Salesforce
``HasOptedOutOfEmail``, ``DoNotCall``), strips them again before reconciliation sees the records,
and remembers what each record said. After the pull (merges followed), :meth:`ConsentTap.apply`:

* turns a CRM opt-out into opt-out events of the configured purposes on the channel (source = the
  CRM, ``source_ref`` = ``<remote id>:<field>:<change time>``, evidence ``{field, remote_id,
  changed_at}``), unless the donor's state there is already opt_out; a box staff untick is not
  the donor's consent and is not pulled back as an opt-in;
* for HubSpot, reads the communication-subscription statuses of the changed contacts (v4 batch
  read, :mod:`~donor_sync.delivery.connectors.hubspot.subscriptions_read`) and turns each
  ``UNSUBSCRIBED`` type into opt-out events of its purposes (``source_ref`` =
  ``<remote id>:subscription:<type id>:<status time>``);
* turns a true staff flag (``npsp__Do_Not_Contact__c``, ``npsp__Deceased__c``) into an active
  suppression (reason ``do_not_contact`` / ``deceased``, every channel and destination), and lifts
  the suppression that CRM reported when staff clear the flag.

Everything is written in the pull's transaction; the state refresh audits ``consent.changed``,
and one ``consent.pulled_back`` row records the counts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from pydantic import BaseModel, ConfigDict, Field

from donor_sync.delivery.reconcile.records import RemoteReader, RemoteRecord
from donor_sync.delivery.reconcile.settings import DestinationReconcile, FieldRule
from donor_sync.observability import audit
from donor_sync.paths import include_dir
from donor_sync.privacy.consent.events import ConsentEvent, Evidence, record_events
from donor_sync.privacy.consent.vocabulary import Channel, Purpose
from donor_sync.yaml_source import load_yaml_model

__all__ = ["ConsentPullbackSettings", "ConsentTap", "load_pullback_settings", "tap"]

log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "y", "t"}
SUPPRESSION_REASONS = ("deceased", "do_not_contact", "do_not_solicit", "manual")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptOutRule(_Strict):
    """What an opt-out on the CRM side means here."""

    channel: Channel
    purposes: list[Purpose] = Field(min_length=1)


class DestinationPullback(_Strict):
    """One CRM's consent fields."""

    opt_out_fields: dict[str, OptOutRule] = Field(default_factory=dict)
    suppression_fields: dict[str, str] = Field(default_factory=dict)
    email_field: str | None = None
    subscriptions: dict[str, OptOutRule] = Field(default_factory=dict)

    def extra_fields(self) -> list[str]:
        """Return the CRM fields the tap reads besides reconciliation's own."""
        names = [*self.opt_out_fields, *self.suppression_fields]
        if self.email_field:
            names.append(self.email_field)
        return names


class ConsentPullbackSettings(_Strict):
    """The whole file."""

    version: int = Field(ge=1, le=1)
    destinations: dict[str, DestinationPullback]


def default_path() -> Path:
    return include_dir() / "mappings" / "privacy" / "consent_pullback.yaml"


def load_pullback_settings(path: Path | None = None) -> ConsentPullbackSettings:
    """Load and validate consent_pullback.yaml (errors name the file, line and field)."""
    loaded = load_yaml_model(path or default_path(), ConsentPullbackSettings)
    for name, destination in loaded.destinations.items():
        for crm_field, reason in destination.suppression_fields.items():
            if reason not in SUPPRESSION_REASONS:
                from donor_sync.errors import ConfigError

                raise ConfigError(
                    f"{path or default_path()}: destinations.{name}.suppression_fields.{crm_field}: "
                    f"{reason!r} is not one of {', '.join(SUPPRESSION_REASONS)}"
                )
    return loaded


class StatusReader(Protocol):
    """Reads HubSpot-style subscription statuses by email."""

    def __call__(self, emails: Sequence[str]) -> Iterable[Any]:
        """Yield objects with ``email``, ``subscription_id``, ``status``, ``timestamp``."""
        ...


@dataclass
class _Seen:
    remote_id: str
    key: str | None
    modified_at: datetime
    values: dict[str, Any]


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class ConsentTap:
    """A reader wrapper that remembers the consent fields of every record it passes on."""

    inner: RemoteReader
    destination: str
    settings: DestinationPullback
    statuses: StatusReader | None = None
    seen: list[_Seen] = field(default_factory=list)
    _entity: str = "contact"

    def changed_records(
        self, settings: DestinationReconcile, since: datetime | None, until: datetime
    ) -> Iterator[RemoteRecord]:
        """Yield the inner reader's records, reading the consent fields too and hiding them again."""
        self._entity = settings.entity
        extra = [f for f in self.settings.extra_fields() if f not in settings.fields]
        widened = settings
        if extra:
            rules = {f: FieldRule.model_construct(to="email", policy="report") for f in extra}
            widened = settings.model_copy(update={"fields": {**settings.fields, **rules}})
        wanted = set(self.settings.extra_fields())
        for record in self.inner.changed_records(widened, since, until):
            values = dict(record.values or {})
            if not record.deleted:
                mine = {k: v for k, v in values.items() if k in wanted}
                if mine or self.settings.subscriptions:
                    self.seen.append(_Seen(record.remote_id, record.key, record.modified_at, mine))
            if extra:
                yield replace(record, values={k: v for k, v in values.items() if k not in extra})
            else:
                yield record

    # -- after the pull ------------------------------------------------------------------------------
    def _donors(self, conn: psycopg.Connection) -> dict[str, str]:
        """Remote id -> live donor (as reconciliation maps them, merges followed)."""
        if not self.seen:
            return {}
        rows = conn.execute(
            "WITH r AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS r(remote_id, key))"
            " SELECT r.remote_id, coalesce(d.merged_into, d.donor_id)::text"
            " FROM r LEFT JOIN sync.destination_state s"
            "   ON s.destination = %s AND s.entity = %s AND s.remote_id = r.remote_id"
            " JOIN core.donors d ON d.donor_id = coalesce(s.donor_id,"
            "   CASE WHEN r.key ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
            "   THEN r.key::uuid END)"
            " WHERE d.erased_at IS NULL",
            [[s.remote_id for s in self.seen], [s.key for s in self.seen], self.destination, self._entity],
        ).fetchall()
        return {str(a): str(b) for a, b in rows}

    def _opt_out(
        self, donor: str, rule: OptOutRule, *, ref: str, at: datetime, evidence: Evidence, actor: str
    ) -> list[ConsentEvent]:
        return [
            ConsentEvent(
                donor_id=donor,  # type: ignore[arg-type]  # pydantic parses the uuid text
                purpose=purpose,
                channel=rule.channel,
                status="opt_out",
                source=self.destination,
                source_ref=f"{ref}:{purpose}",
                occurred_at=at,
                evidence=evidence,
                recorded_by=actor,
            )
            for purpose in rule.purposes
        ]

    def _subscription_events(
        self, latest: Mapping[str, _Seen], donors: Mapping[str, str], actor: str
    ) -> list[ConsentEvent]:
        if self.statuses is None or not self.settings.subscriptions or not self.settings.email_field:
            return []
        by_email: dict[str, _Seen] = {}
        for seen in latest.values():
            email = seen.values.get(self.settings.email_field)
            if email and seen.remote_id in donors:
                by_email[str(email).strip().lower()] = seen
        events: list[ConsentEvent] = []
        for status in self.statuses(sorted(by_email)):
            seen_record = by_email.get(status.email)
            rule = self.settings.subscriptions.get(str(status.subscription_id))
            if seen_record is None or rule is None or status.status != "UNSUBSCRIBED":
                continue
            at = _parse_time(status.timestamp) or seen_record.modified_at
            events += self._opt_out(
                donors[seen_record.remote_id],
                rule,
                ref=f"{seen_record.remote_id}:subscription:{status.subscription_id}:{at.isoformat()}",
                at=at,
                evidence=Evidence(
                    field=f"subscription:{status.subscription_id}",
                    remote_id=seen_record.remote_id,
                    changed_at=at.isoformat(),
                ),
                actor=actor,
            )
        return events

    def apply(self, conn: psycopg.Connection, *, actor: str, now: datetime) -> dict[str, int]:
        """Record what the pulled records said (see the module docstring); return counts. Not committed."""
        donors = self._donors(conn)
        latest: dict[str, _Seen] = {}
        for seen in self.seen:  # oldest first: the last one read is the record's current version
            latest[seen.remote_id] = seen
        events: list[ConsentEvent] = []
        flags: list[tuple[str, str, str, bool]] = []  # donor, reason, remote id, set?
        for seen in latest.values():
            donor = donors.get(seen.remote_id)
            if donor is None:
                continue
            for crm_field, rule in self.settings.opt_out_fields.items():
                if _flag(seen.values.get(crm_field)):
                    stamp = seen.modified_at.isoformat()
                    events += self._opt_out(
                        donor,
                        rule,
                        ref=f"{seen.remote_id}:{crm_field}:{stamp}",
                        at=seen.modified_at,
                        evidence=Evidence(field=crm_field, remote_id=seen.remote_id, changed_at=stamp),
                        actor=actor,
                    )
            for crm_field, reason in self.settings.suppression_fields.items():
                value = _flag(seen.values.get(crm_field))
                if value is not None:
                    flags.append((donor, reason, seen.remote_id, value))
        events += self._subscription_events(latest, donors, actor)
        events = _not_already_opted_out(conn, events)
        result = record_events(conn, events, actor=actor, now=now)
        added, lifted = _suppressions(conn, self.destination, flags, actor=actor, now=now)
        counts = {
            "consent_records_seen": len(latest),
            "consent_opt_outs_recorded": result.recorded,
            "suppressions_added": added,
            "suppressions_lifted": lifted,
        }
        audit.record(
            conn,
            actor=actor,
            action="consent.pulled_back",
            object_type="destination",
            object_id=self.destination,
            details=counts,
        )
        log.info(
            "%s consent pull-back: %d opt-out events, %d suppressions added, %d lifted",
            self.destination,
            result.recorded,
            added,
            lifted,
        )
        return counts


def _not_already_opted_out(conn: psycopg.Connection, events: list[ConsentEvent]) -> list[ConsentEvent]:
    """Drop opt-outs of donors already opted out there (a CRM keeps saying so on every edit)."""
    if not events:
        return []
    rows = conn.execute(
        "SELECT e.n FROM unnest(%s::uuid[], %s::text[], %s::text[]) WITH ORDINALITY AS e(donor_id, purpose,"
        " channel, n)"
        " JOIN core.donors d ON d.donor_id = e.donor_id"
        " JOIN core.consent_state s ON s.donor_id = coalesce(d.merged_into, d.donor_id)"
        "  AND s.purpose = e.purpose AND s.channel = e.channel AND s.status = 'opt_out'",
        [[str(e.donor_id) for e in events], [e.purpose for e in events], [e.channel for e in events]],
    ).fetchall()
    done = {int(r[0]) for r in rows}
    return [e for n, e in enumerate(events, start=1) if n not in done]


def _suppressions(
    conn: psycopg.Connection,
    destination: str,
    flags: Sequence[tuple[str, str, str, bool]],
    *,
    actor: str,
    now: datetime,
) -> tuple[int, int]:
    """Add the suppressions of set flags; lift this CRM's suppressions whose flag staff cleared."""
    if not flags:
        return 0, 0
    on = [f for f in flags if f[3]]
    off = [f for f in flags if not f[3]]
    added = conn.execute(
        "INSERT INTO core.suppressions (donor_id, reason_code, source, source_ref, note, created_by)"
        " SELECT f.donor_id, f.reason, %s, f.remote_id, 'staff flag in the CRM', %s"
        " FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS f(donor_id, reason, remote_id)"
        " ON CONFLICT (donor_id, reason_code, channel, destination) WHERE lifted_at IS NULL DO NOTHING",
        [destination, actor, [f[0] for f in on], [f[1] for f in on], [f[2] for f in on]],
    ).rowcount
    lifted = conn.execute(
        "UPDATE core.suppressions s SET lifted_at = %s, lifted_by = %s,"
        " lift_reason = 'staff cleared the flag'"
        " FROM unnest(%s::uuid[], %s::text[]) AS f(donor_id, reason)"
        " WHERE s.donor_id = f.donor_id AND s.reason_code = f.reason AND s.source = %s"
        " AND s.lifted_at IS NULL",
        [now, actor, [f[0] for f in off], [f[1] for f in off], destination],
    ).rowcount
    return max(added, 0), max(lifted, 0)


def _hubspot_statuses(reader: Any) -> StatusReader | None:
    connector = getattr(reader, "connector", None)
    client = getattr(connector, "client", None)
    if client is None:
        return None
    from donor_sync.delivery.connectors.hubspot.subscriptions_read import read_email_statuses

    def read(emails: Sequence[str]) -> Iterable[Any]:
        return read_email_statuses(client, emails)

    return read


def tap(
    reader: RemoteReader,
    destination: str,
    *,
    settings: ConsentPullbackSettings | None = None,
    statuses: StatusReader | None = None,
) -> tuple[RemoteReader, ConsentTap | None]:
    """Return the reader reconciliation should use, and the tap to :meth:`~ConsentTap.apply` after it.

    A destination consent_pullback.yaml does not name is read as is (tap ``None``). HubSpot
    statuses are read through the reader's connector unless ``statuses`` is given.
    """
    loaded = settings or load_pullback_settings()
    mine = loaded.destinations.get(destination)
    if mine is None:
        return reader, None
    if statuses is None and mine.subscriptions:
        statuses = _hubspot_statuses(reader)
    wrapped = ConsentTap(reader, destination, mine, statuses)
    return wrapped, wrapped
