"""The blast-radius guard: stop a run that would remove or overwrite too much of a destination.

A mapping change, a bad filter or an empty source can turn a routine run into one that archives
every contact or rewrites every opportunity. Before anything is written, the run's destructive
writes (delete, archive, unsubscribe, merge away) and overwrites (updates of records that landed)
are compared, per entity, with the records that landed there (``sync.destination_state`` rows
with a live remote id). Over the configured share (``include/mappings/delivery.yaml``,
``blast_radius``) the run raises :class:`BlastRadiusExceeded`, which fails the task and alerts;
a person who checked the plan (``donor-sync outbox plan``) re-runs it with approval, and the
approval is written to ``sync.audit_log``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

import psycopg

from donor_sync.delivery.outbox.counts import EntityCounts
from donor_sync.delivery.settings import BlastRadius
from donor_sync.errors import DonorSyncError

APPROVED_ACTION = "delivery.blast_radius_approved"


@dataclass(frozen=True)
class EntityExposure:
    """How much of one entity's landed records a run would destroy or overwrite."""

    entity: str
    landed: int
    destructive: int
    overwrites: int
    destructive_share: float | None
    overwrite_share: float | None
    #: Limits this entity goes over: ``destructive``, ``overwrite``.
    exceeded: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "entity": self.entity,
            "landed": self.landed,
            "destructive": self.destructive,
            "overwrites": self.overwrites,
            "destructive_share": _round(self.destructive_share),
            "overwrite_share": _round(self.overwrite_share),
            "exceeded": list(self.exceeded),
        }


def _round(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's reading of one run of one destination."""

    destination: str
    limits: BlastRadius
    entities: tuple[EntityExposure, ...]

    @property
    def exceeded(self) -> bool:
        return any(e.exceeded for e in self.entities)

    def describe(self) -> str:
        """One line per entity over a limit: counts and shares (no ids, no PII)."""
        parts = []
        for e in self.entities:
            if "destructive" in e.exceeded:
                parts.append(
                    f"{e.entity}: {e.destructive} of {e.landed} landed records deleted, archived or merged "
                    f"({e.destructive_share:.1%} > {self.limits.max_destructive_share:.1%})"
                )
            if "overwrite" in e.exceeded:
                parts.append(
                    f"{e.entity}: {e.overwrites} of {e.landed} landed records overwritten "
                    f"({e.overwrite_share:.1%} > {self.limits.max_overwrite_share:.1%})"
                )
        return "; ".join(parts) or "within limits"

    def as_dict(self) -> dict[str, object]:
        return {
            "destination": self.destination,
            "exceeded": self.exceeded,
            "limits": self.limits.model_dump(),
            "entities": [e.as_dict() for e in self.entities],
        }


class BlastRadiusExceeded(DonorSyncError):  # noqa: N818 - an outcome, named for what the run met
    """A run would remove or overwrite more of a destination than its settings allow."""

    def __init__(self, verdict: GuardVerdict) -> None:
        super().__init__(
            f"{verdict.destination}: blast-radius guard stopped the run before it wrote anything: "
            f"{verdict.describe()}. Check `donor-sync outbox plan --destination {verdict.destination}`, "
            "then re-run with approval (DAG param approve_blast_radius, or --approve) if it is intended."
        )
        self.verdict = verdict


def landed_counts(conn: psycopg.Connection, destination: str) -> dict[str, int]:
    """Return the records per entity that landed in ``destination`` and were not removed."""
    rows = conn.execute(
        "SELECT entity, count(*) FROM sync.destination_state WHERE destination = %s"
        " AND remote_id IS NOT NULL AND remote_deleted_at IS NULL GROUP BY entity",
        (destination,),
    ).fetchall()
    return {entity: int(n) for entity, n in rows}


def evaluate(
    destination: str, counts: Mapping[str, EntityCounts], landed: Mapping[str, int], limits: BlastRadius
) -> GuardVerdict:
    """Compare a run's destructive writes and overwrites with the landed records, per entity."""
    exposures = []
    for entity in sorted(set(counts) | set(landed)):
        c = counts.get(entity, EntityCounts(entity))
        n = landed.get(entity, 0)
        destructive_share = c.destructive / n if n else None
        overwrite_share = c.updates / n if n else None
        exceeded: list[str] = []
        if n and n >= limits.min_records:
            if destructive_share is not None and destructive_share > limits.max_destructive_share:
                exceeded.append("destructive")
            if overwrite_share is not None and overwrite_share > limits.max_overwrite_share:
                exceeded.append("overwrite")
        exposures.append(
            EntityExposure(
                entity, n, c.destructive, c.updates, destructive_share, overwrite_share, tuple(exceeded)
            )
        )
    return GuardVerdict(destination, limits, tuple(exposures))


def enforce(
    conn: psycopg.Connection,
    verdict: GuardVerdict,
    *,
    approved: bool,
    actor: str,
    run_id: str | UUID | None = None,
) -> None:
    """Stop the run when the verdict exceeds a limit, unless approved; audit an approval.

    :raises BlastRadiusExceeded: over a limit and not approved.
    """
    if not verdict.exceeded:
        return
    if not approved:
        raise BlastRadiusExceeded(verdict)
    conn.execute(
        "INSERT INTO sync.audit_log (actor, action, object_type, object_id, details, run_id)"
        " VALUES (%s, %s, 'destination', %s, %s, %s::uuid)",
        (
            actor,
            APPROVED_ACTION,
            verdict.destination,
            json.dumps(verdict.as_dict()),
            str(run_id) if run_id else None,
        ),
    )
