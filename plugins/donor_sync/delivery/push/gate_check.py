"""The privacy gate as the push's dependency check asks it: why are these donors kept out?

A record waiting for a dependency (a Braze donation event waiting for its donor's user) whose
donor the destination's gate now blocks waits for a record that will never exist: the claim
settles it as skipped instead (:mod:`donor_sync.delivery.push.claim`). The gate is loaded on
first use, so a push whose records never wait costs nothing; a destination the privacy policy
does not name (a test destination, an event subscriber) has no gate here and its records wait
as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

import psycopg

from donor_sync.errors import ConfigError
from donor_sync.privacy.gate import DestinationGate, load_gate

log = logging.getLogger(__name__)

#: Why each donor is blocked (None: allowed); donors it cannot judge are left out.
DonorGate = Callable[[psycopg.Connection, Collection[str]], Mapping[str, str | None]]


class GateCheck:
    """``destination``'s privacy gate, loaded on first call (``loader``: tests pass their own)."""

    def __init__(self, destination: str, loader: Callable[[str], DestinationGate] = load_gate) -> None:
        self.destination = destination
        self._loader = loader
        self._gate: DestinationGate | None = None
        self._unavailable = False

    def _load(self) -> DestinationGate | None:
        if self._gate is None and not self._unavailable:
            try:
                self._gate = self._loader(self.destination)
            except ConfigError as exc:
                self._unavailable = True
                log.info("%s: no privacy gate to check waiting records against (%s)", self.destination, exc)
        return self._gate

    def __call__(self, conn: psycopg.Connection, donor_ids: Collection[str]) -> Mapping[str, str | None]:
        """Return, per donor id, why the gate blocks it (None: allowed); empty without a gate."""
        gate = self._load()
        if gate is None or not donor_ids:
            return {}
        try:
            return gate.decide(conn, donor_ids)
        except ConfigError as exc:  # e.g. tombstones exist but no tombstone key ring is configured
            log.warning("%s: the privacy gate could not judge waiting records (%s)", self.destination, exc)
            return {}
