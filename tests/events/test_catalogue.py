"""The catalogue: every schema is valid draft 2020-12, ids are stable, envelopes are checked."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from donor_sync.events.catalogue import (
    CATALOGUE,
    EVENT_NAMESPACE,
    Event,
    InvalidEventError,
    event_id,
    load_schema,
    schema_path,
    validate_envelope,
)


@pytest.mark.parametrize("event_type", list(CATALOGUE))
def test_every_schema_is_valid_and_its_examples_pass(event_type: str) -> None:
    for version in CATALOGUE[event_type]:
        schema = load_schema(event_type, version)
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["type"]["const"] == event_type
        assert schema["examples"], "each schema carries an example for docs/events.md"
        for example in schema["examples"]:
            validate_envelope(example)


def test_schema_files_are_exactly_the_catalogue() -> None:
    folder = schema_path("donation.created", 1).parent
    on_disk = sorted(p.name for p in folder.glob("*.json"))
    assert on_disk == sorted(f"{t}.v{v}.json" for t, vs in CATALOGUE.items() for v in vs)


def test_data_refuses_unknown_fields_so_pii_cannot_slip_in() -> None:
    example = json.loads(json.dumps(load_schema("donation.created", 1)["examples"][0]))
    example["data"]["email"] = "jane@example.org"
    with pytest.raises(InvalidEventError) as caught:
        validate_envelope(example)
    assert "jane" not in str(caught.value), "errors name paths, never values"
    assert "data" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param({"version": 2}, "unknown type/version", id="unknown-version"),
        pytest.param({"type": "donor.updated"}, "unknown type/version", id="unknown-type"),
        pytest.param({"id": "not-a-uuid"}, "id:", id="bad-id"),
    ],
)
def test_a_broken_envelope_is_refused(change: dict[str, object], path: str) -> None:
    example = {**load_schema("donor.erased", 1)["examples"][0], **change}
    with pytest.raises(InvalidEventError, match=path):
        validate_envelope(example)


def test_ids_are_stable_per_fact_and_erasures_keep_the_issue_7_id() -> None:
    request_id = uuid.uuid4()
    assert event_id("donor.erased", f"donor.erased:{request_id}") == str(
        uuid.uuid5(EVENT_NAMESPACE, str(request_id))
    )
    a = Event("donation.created", 1, "donation.created:stripe:ch_1", datetime(2026, 1, 1, tzinfo=UTC), {})
    b = Event(
        "donation.created", 1, "donation.created:stripe:ch_1", datetime(2026, 2, 1, tzinfo=UTC), {"x": 1}
    )
    c = Event("donation.created", 1, "donation.created:stripe:ch_2", datetime(2026, 1, 1, tzinfo=UTC), {})
    assert a.id == b.id != c.id
    assert a.envelope()["occurred_at"] == "2026-01-01T00:00:00+00:00"
