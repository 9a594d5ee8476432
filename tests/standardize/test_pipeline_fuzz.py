"""Random payload mutations never crash standardization, and every record is still accounted for."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.standardize.reconcile import reconcile
from tests.standardize.test_pipeline_support import NOW, charge, donation, event, land, rules

_ids = itertools.count(1)

#: Text Postgres can store in jsonb (no NUL: raw landing could not keep it, before standardization).
text = st.text(max_size=40).filter(lambda s: "\x00" not in s)

#: Anything a source might send where a value is expected.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
    | st.sampled_from(["", "N/A", "$25.00", "1,2", "2099-01-01T00:00:00Z", "=cmd|' /C calc'!A0", "<b>x</b>"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return every key path of a JSON object (dict keys only)."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.append((*prefix, key))
            found.extend(_paths(value, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with a few values replaced, keys deleted, or the whole object broken."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(obj)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(values)
        else:
            del parent[path[-1]]
    return obj


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[str, str, dict[str, Any]]]:
    """Return a few (source, entity, payload) records mutated from valid ones."""
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        n = next(_ids)
        kind = draw(st.sampled_from(["donation", "charge", "event"]))
        if kind == "donation":
            payload = draw(mutated(donation(n)))
            out.append(("donorbox", "donation", {**payload, "id": n}))
        elif kind == "charge":
            payload = draw(mutated(charge(f"ch_{n}")))
            out.append(("stripe", "charge", {**payload, "id": f"ch_{n}"}))
        else:
            payload = draw(mutated(event(f"evt_{n}", charge(f"ch_{n}"), created=1_700_000_000)))
            out.append(("stripe", "event", {**payload, "id": f"evt_{n}"}))
    return out


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(records=batches())
def test_mutated_payloads_never_crash_and_every_record_is_accounted_for(
    db: psycopg.Connection, records: list[tuple[str, str, dict[str, Any]]]
) -> None:
    db.rollback()  # an example that failed leaves nothing behind for the next one
    batch_ids = []
    for source in {s for s, _, _ in records}:
        batch_ids.append(land(db, source, [(e, p) for s, e, p in records if s == source]))
    result = standardize_batches(db, batch_ids, settings=rules(), now=NOW)
    assert reconcile(db, batch_ids) == []
    landed = db.execute("SELECT count(*) FROM raw.records WHERE batch_id = ANY(%s)", (batch_ids,)).fetchone()
    assert landed is not None
    assert result.staged + result.quarantined + result.skipped == landed[0]
