"""The delivery outbox: what each destination must receive, computed from core, only what changed.

``queue_destination`` reads the core rows that changed (or all, or named ones), renders them with
the destination's mapping, and queues in ``sync.outbox`` only the records whose minimized payload
differs from what the destination last received, following each object's sync mode (upsert,
update only, create only, mirror) and the donor merges; the blast-radius guard stops a run that
would remove or overwrite too much before anything is written. ``plan_destination`` is the dry
run of the same computation.
"""

from __future__ import annotations

from donor_sync.delivery.outbox.counts import EntityCounts
from donor_sync.delivery.outbox.guard import BlastRadiusExceeded, GuardVerdict
from donor_sync.delivery.outbox.merges import (
    DestinationMerge,
    MergeError,
    get_merge,
    list_merges,
    mark_merge_done,
)
from donor_sync.delivery.outbox.pipeline import QueueReport, queue_destination
from donor_sync.delivery.outbox.plan import Plan, Sample, mask_value, plan_destination
from donor_sync.delivery.outbox.queue import queue_records
from donor_sync.delivery.outbox.renderer import (
    MappedObject,
    MappingUnavailableError,
    Renderer,
    default_renderer,
)
from donor_sync.delivery.outbox.scope import Scope, ScopeKind
from donor_sync.delivery.outbox.source_rows import iter_source_rows
from donor_sync.delivery.outbox.status import StatusRow, outbox_status

__all__ = [
    "BlastRadiusExceeded",
    "DestinationMerge",
    "EntityCounts",
    "GuardVerdict",
    "MappedObject",
    "MappingUnavailableError",
    "MergeError",
    "Plan",
    "QueueReport",
    "Renderer",
    "Sample",
    "Scope",
    "ScopeKind",
    "StatusRow",
    "default_renderer",
    "get_merge",
    "iter_source_rows",
    "list_merges",
    "mark_merge_done",
    "mask_value",
    "outbox_status",
    "plan_destination",
    "queue_destination",
    "queue_records",
]
