"""The dead-letter queue: records a destination would not take, until a person replays, edits or
discards them (``donor-sync dlq``, the ``dlq_replay`` DAG). See :mod:`.store`."""

from __future__ import annotations

from donor_sync.delivery.dlq.store import (
    ActionResult,
    DeadLetter,
    DeadLetterError,
    SelectionReport,
    apply_edits,
    count_dead_letters,
    dead_letter_render_errors,
    discard,
    edit,
    get_dead_letter,
    list_dead_letters,
    replay,
    replay_selection,
)

__all__ = [
    "ActionResult",
    "DeadLetter",
    "DeadLetterError",
    "SelectionReport",
    "apply_edits",
    "count_dead_letters",
    "dead_letter_render_errors",
    "discard",
    "edit",
    "get_dead_letter",
    "list_dead_letters",
    "replay",
    "replay_selection",
]
