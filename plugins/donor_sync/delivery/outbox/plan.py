"""Dry run: what a queue run of a destination would do, without writing anything.

The plan counts creates (no remote record yet), updates (remote record, payload changed),
deletes and archives (mirror), merges, unchanged, skipped and withdrawn records per entity,
says whether the blast-radius guard would stop the run, and shows up to N sample records per
entity and action. Sample payloads are masked for display (``J***``) unless the caller asks for
them in clear (the command line audits that as PII access).

It runs in a transaction that is always rolled back: the outbox, destination state, merges and
watermarks are untouched, whatever the scope.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from donor_sync.delivery.outbox.counts import EntityCounts
from donor_sync.delivery.outbox.guard import GuardVerdict
from donor_sync.delivery.outbox.pipeline import prepare
from donor_sync.delivery.outbox.renderer import Renderer
from donor_sync.delivery.outbox.scope import Scope
from donor_sync.delivery.outbox.work_tables import PLAN_TABLE
from donor_sync.delivery.settings import DestinationSettings, load_delivery_settings

#: Actions samples are shown for.
SAMPLED_ACTIONS = ("create", "update", "delete", "archive")

# Values shown in clear in a masked sample: uuids (donor, household ids) and keys that carry a
# digit after a lower-case prefix (gift and plan keys such as stripe:ch_3Nx...). Everything
# else that is text is masked: names, emails, addresses, dates of birth, free text.
_IDENTIFIER = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    r"|^[a-z][a-z0-9_]*:[A-Za-z0-9_.-]*[0-9][A-Za-z0-9_.-]*$"
)


def mask_value(value: Any) -> Any:
    """Mask the text in a payload value for display (first character, then ``***``)."""
    if isinstance(value, Mapping):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    if isinstance(value, str):
        if not value or _IDENTIFIER.match(value):
            return value
        return value[0] + "***"
    return value


@dataclass(frozen=True)
class Sample:
    """One record a run would write, for display."""

    entity: str
    action: str
    record_key: str
    operation: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """What a queue run of one destination would do."""

    destination: str
    scope: str
    entities: dict[str, EntityCounts]
    rows_read: dict[str, int]
    merges_api: int
    merges_listed: int
    verdict: GuardVerdict
    samples: tuple[Sample, ...]
    pii_revealed: bool = False

    @property
    def totals(self) -> EntityCounts:
        """The counts over every entity."""
        sums: dict[str, int] = {}
        for counts in self.entities.values():
            for name, value in counts.as_dict().items():
                if name != "queued":
                    sums[name] = sums.get(name, 0) + value
        return EntityCounts("*", **sums)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (DAG XCom, ``--json``); payloads as masked or revealed above."""
        return {
            "destination": self.destination,
            "scope": self.scope,
            "rows_read": self.rows_read,
            "entities": {e: c.as_dict() for e, c in self.entities.items()},
            "merges": {"api": self.merges_api, "listed": self.merges_listed},
            "guard": self.verdict.as_dict(),
            "samples": [
                {
                    "entity": s.entity,
                    "action": s.action,
                    "record_key": s.record_key,
                    "operation": s.operation,
                    "payload": s.payload,
                }
                for s in self.samples
            ],
            "pii_revealed": self.pii_revealed,
        }


def _samples(conn: psycopg.Connection, per_action: int, *, reveal_pii: bool) -> tuple[Sample, ...]:
    if per_action <= 0:
        return ()
    rows = conn.execute(
        "SELECT entity, action, record_key, operation, payload FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY entity, action ORDER BY record_key) AS n"
        f"  FROM {PLAN_TABLE} WHERE action = ANY(%s)) s"
        " WHERE n <= %s ORDER BY entity, action, record_key",
        (list(SAMPLED_ACTIONS), per_action),
    ).fetchall()
    return tuple(
        Sample(entity, action, key, op, payload if reveal_pii else mask_value(payload))
        for entity, action, key, op, payload in rows
    )


def plan_destination(
    conn: psycopg.Connection,
    destination: str,
    mapping: Renderer,
    *,
    scope: Scope | None = None,
    samples: int = 5,
    reveal_pii: bool = False,
    settings: DestinationSettings | None = None,
) -> Plan:
    """Return what :func:`~donor_sync.delivery.outbox.queue_destination` would do now; write nothing.

    :param samples: sample records per entity and action (creates, updates, deletes, archives).
    :param reveal_pii: show sample payloads in clear (the caller audits the access).
    """
    scope = scope or Scope.incremental()
    settings = settings or load_delivery_settings().for_destination(destination)
    with conn.transaction(force_rollback=True):
        prepared = prepare(conn, destination, mapping, scope, settings)
        shown = _samples(conn, samples, reveal_pii=reveal_pii)
    api = settings.merges.method == "api"
    to_merge = [m for m in prepared.merges if not m.same_record]
    return Plan(
        destination=destination,
        scope=scope.describe(),
        entities=prepared.counts,
        rows_read=prepared.rows_read,
        merges_api=len(to_merge) if api else 0,
        merges_listed=0 if api else len(to_merge),
        verdict=prepared.verdict,
        samples=shown,
        pii_revealed=reveal_pii,
    )
