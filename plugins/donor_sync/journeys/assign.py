"""Deterministic experiment assignment: a keyed hash of the donor and the experiment picks the arm.

``u = HMAC-SHA256(pseudonym key, "journey-experiment|<experiment id>|<donor id>")`` read as a
number in [0, 1): below the holdout share the donor is held out, else the rest of the interval is
split between the variants by weight. The same donor always lands in the same arm of an
experiment, different experiments are independent, and nobody without the key can predict or
steer an assignment. A donor already enrolled in the experiment keeps the arm recorded then
(:func:`donor_sync.journeys.decide` looks it up), so rotating the key moves nobody.
"""

from __future__ import annotations

from decimal import Decimal

from donor_sync.journeys.rules import Experiment
from donor_sync.privacy.keys import KeyRing

HOLDOUT = "holdout"
_SCALE = 2**64


def unit_interval(ring: KeyRing, experiment_id: str, donor_id: str) -> Decimal:
    """Return the donor's position in [0, 1) for ``experiment_id`` (first 64 bits of the keyed hash)."""
    digest = ring.hmac(f"journey-experiment|{experiment_id}|{donor_id.lower()}")
    return Decimal(int.from_bytes(digest[:8], "big")) / Decimal(_SCALE)


def assign(ring: KeyRing, experiment: Experiment, donor_id: str) -> str:
    """Return the arm of ``donor_id``: ``holdout`` or a variant name."""
    u = unit_interval(ring, experiment.id, donor_id)
    if u < experiment.holdout:
        return HOLDOUT
    rest = (u - experiment.holdout) / (1 - experiment.holdout)
    total = sum(v.weight for v in experiment.variants)
    edge = Decimal(0)
    for variant in experiment.variants:
        edge += variant.weight / total
        if rest < edge:
            return variant.name
    return experiment.variants[-1].name
