"""The outbox with the shipped mappings (include/mappings/destinations): the seam works end to end."""

from __future__ import annotations

import psycopg
import pytest

from donor_sync.delivery.outbox import (
    MappingUnavailableError,
    Renderer,
    Scope,
    default_renderer,
    plan_destination,
    queue_destination,
)
from tests.delivery.outbox.support import add_donor, add_gift, add_household, add_plan, table_counts


def _renderer(destination: str) -> Renderer:
    try:
        return default_renderer(destination)
    except MappingUnavailableError as exc:  # the mapping engine is another part of delivery
        pytest.skip(str(exc))


@pytest.mark.parametrize("destination", ["salesforce", "hubspot"])
def test_shipped_mapping_queues_once_and_then_nothing(db: psycopg.Connection, destination: str) -> None:
    renderer = _renderer(destination)
    jane = add_donor(db, "Jane", "Okafor")
    add_household(db, "Okafor Household", [(jane, "primary")])
    add_plan(db, jane, "stripe:sub_1")
    add_gift(db, jane, "stripe:ch_1")
    add_gift(db, jane, "stripe:ch_2", "40.00")
    db.commit()
    before = table_counts(db)
    plan = plan_destination(db, destination, renderer)
    assert table_counts(db) == before
    first = queue_destination(db, destination, renderer)
    db.commit()
    assert first.queued > 0
    assert first.entities == plan.entities
    assert getattr(renderer, "errors", []) == []
    contact = db.execute(
        "SELECT count(*) FROM sync.outbox WHERE destination = %s AND entity = 'contact' AND record_key = %s",
        (destination, jane),
    ).fetchone()
    assert contact == (1,)
    again = queue_destination(db, destination, renderer, scope=Scope.full())
    db.commit()
    assert again.queued == 0
    assert again.unchanged == first.queued
