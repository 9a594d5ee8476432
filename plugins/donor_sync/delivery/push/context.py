"""Who is pushing to which destination, shared by the claim, the result writer and the engine.

``claimed_by`` is the lease token written into ``sync.outbox.claimed_by``: a worker may write
results only for rows it still holds under that token, so a worker that outlived its lease (and
whose rows another run reclaimed) cannot overwrite what the other run does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID, uuid4

import psycopg

from donor_sync.delivery.push.settings import PushOptions
from donor_sync.retry_ladder import RETRY_LADDER


@dataclass(frozen=True)
class PushContext:
    """One push of one destination by one worker.

    :param claimed_by: lease token, unique per push call (see :func:`lease_token`).
    :param rng: source of retry jitter; tests pass a seeded one.
    :param donor_gate: why the destination's privacy gate blocks donors (None: allowed), asked
        about the donors of records waiting for a dependency (see
        :class:`~donor_sync.delivery.push.gate_check.GateCheck`); None: nothing is asked.
    """

    destination: str
    claimed_by: str
    options: PushOptions = field(default_factory=PushOptions)
    run_id: UUID | None = None
    rng: random.Random = field(default_factory=random.Random)
    ladder: tuple[timedelta, ...] = RETRY_LADDER
    donor_gate: Callable[[psycopg.Connection, Collection[str]], Mapping[str, str | None]] | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this worker."""
        return f"push:{self.claimed_by}"


def lease_token(worker_id: str) -> str:
    """Return a lease token for one push call of ``worker_id`` (a task instance, a CLI run).

    The random suffix keeps two calls of the same worker (an Airflow task retry) apart.
    """
    return f"{worker_id}#{uuid4().hex[:12]}"
