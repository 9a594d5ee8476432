"""Contacts and deals reach the HubSpot emulator: upserts, partial failures, batch refusals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from donor_sync.delivery.connectors.hubspot import HubSpotConnector
from donor_sync.delivery.contracts import (
    BatchRejectedError,
    Connector,
    FailureClass,
    Operation,
    OutboundRecord,
)
from tests.delivery.connectors.hubspot.conftest import Admin, contact, deal


def test_the_connector_satisfies_the_protocol(connector: HubSpotConnector) -> None:
    assert isinstance(connector, Connector)
    assert connector.destination == "hubspot"
    assert list(connector.entity_order()) == [
        "contact",
        "deal",
        "deal_contact_association",
        "subscription_statuses",
    ]
    assert connector.batch_size("contact", Operation.UPSERT, 5000) == 100
    assert connector.batch_size("deal_contact_association", Operation.UPSERT, 5000) == 100


def test_upsert_creates_then_updates_and_a_rerun_makes_no_duplicate(
    connector: HubSpotConnector, admin: Admin
) -> None:
    records = [contact(i, f"d{i}", f"donor{i}@example.org", firstname=f"F{i}") for i in range(1, 4)]
    first = connector.push("contact", Operation.UPSERT, records)
    assert [(r.outbox_id, r.ok, r.created) for r in first] == [
        (1, True, True),
        (2, True, True),
        (3, True, True),
    ]
    assert len({r.remote_id for r in first}) == 3

    changed = [
        dataclasses.replace(r, outbox_id=r.outbox_id + 10, payload={**r.payload, "lastname": "L"})
        for r in records
    ]
    second = connector.push("contact", Operation.UPSERT, changed)
    assert [(r.ok, r.created) for r in second] == [(True, False)] * 3
    assert [r.remote_id for r in second] == [r.remote_id for r in first]
    again = connector.push("contact", Operation.UPSERT, changed)
    assert [r.remote_id for r in again] == [r.remote_id for r in first]

    state = admin.state()["objects"]["contacts"]
    assert state["count"] == 3
    by_key = {c["properties"]["donor_sync_id"]: c["properties"] for c in state["records"]}
    assert {k: (p["firstname"], p["lastname"]) for k, p in by_key.items()} == {
        "d1": ("F1", "L"),
        "d2": ("F2", "L"),
        "d3": ("F3", "L"),
    }


def test_deals_upsert_on_the_gift_key(connector: HubSpotConnector, admin: Admin) -> None:
    results = connector.push("deal", Operation.UPSERT, [deal(1, "g-1", amount="25.00"), deal(2, "g-2")])
    assert all(r.ok and r.created for r in results)
    rerun = connector.push("deal", Operation.UPSERT, [deal(3, "g-1", amount="30.00")])
    assert (rerun[0].remote_id, rerun[0].created) == (results[0].remote_id, False)
    deals = admin.state()["objects"]["deals"]
    assert deals["count"] == 2
    amounts = {
        d["properties"]["donor_sync_gift_key"]: d["properties"].get("amount") for d in deals["records"]
    }
    assert amounts == {"g-1": "30.00", "g-2": None}


def test_a_207_maps_each_error_to_its_own_record_without_echoing_values(
    connector: HubSpotConnector, admin: Admin
) -> None:
    records = [
        contact(7, "bad-email", "not-an-email"),
        contact(3, "good", "good@example.org"),
        contact(9, "bad-prop", "ok@example.org", favourite_colour="red"),
        contact(4, "good-2", "good2@example.org"),
    ]
    results = connector.push("contact", Operation.UPSERT, records)
    by_id = {r.outbox_id: r for r in results}
    assert [r.outbox_id for r in results] == [7, 3, 9, 4]
    assert by_id[3].ok
    assert by_id[4].ok
    assert (by_id[7].ok, by_id[7].error_class, by_id[7].error_code) == (
        False,
        FailureClass.VALIDATION,
        "INVALID_EMAIL",
    )
    assert (by_id[9].error_class, by_id[9].error_code) == (FailureClass.PERMANENT, "PROPERTY_DOESNT_EXIST")
    assert "favourite_colour" in (by_id[9].message or "")
    assert by_id[7].http_status == 207
    for failed in (by_id[7], by_id[9]):
        assert "@" not in (failed.message or "")
        assert "not-an-email" not in (failed.message or "")
    assert {c["properties"]["donor_sync_id"] for c in admin.contacts()} == {"good", "good-2"}


def test_email_keyed_contacts_map_207_errors_by_the_email_sent(
    make_connector: Callable[..., HubSpotConnector], admin: Admin
) -> None:
    by_email = make_connector(contact_id_property="email")
    records = [
        contact(1, "a", "Ada@Example.org", firstname="Ada"),
        contact(2, "b", "broken@"),
        contact(3, "c", None, firstname="No email"),
        contact(4, "d", "ADA@example.org", lastname="Second donor, same email"),
    ]
    results = by_email.push("contact", Operation.UPSERT, records)
    assert [(r.ok, r.error_code) for r in results] == [
        (True, None),
        (False, "INVALID_EMAIL"),
        (False, "MISSING_ID_PROPERTY"),
        (True, None),
    ]
    # The same email twice goes in two calls (HubSpot refuses duplicate ids in one batch).
    assert results[0].remote_id == results[3].remote_id
    assert [c["properties"]["email"] for c in admin.contacts()] == ["ada@example.org"]


def test_a_batch_refused_as_a_whole_raises_batch_rejected(connector: HubSpotConnector, admin: Admin) -> None:
    admin.settings(batch_max_inputs=2)
    with pytest.raises(BatchRejectedError) as refused:
        connector.push(
            "contact", Operation.UPSERT, [contact(i, f"d{i}", f"p{i}@example.org") for i in range(3)]
        )
    assert (refused.value.error_class, refused.value.error_code) == (
        FailureClass.VALIDATION,
        "TOO_MANY_INPUTS",
    )
    assert refused.value.http_status == 400
    admin.faults({"kind": "status", "status": 400, "path": "batch/upsert", "count": 1})
    with pytest.raises(BatchRejectedError) as faulted:
        connector.push("contact", Operation.UPSERT, [contact(1, "d1", "p1@example.org")])
    assert faulted.value.error_class is FailureClass.VALIDATION
    assert admin.state()["objects"]["contacts"]["count"] == 0


def test_more_than_a_batch_is_sent_in_chunks_of_100(connector: HubSpotConnector, admin: Admin) -> None:
    records = [contact(i, f"d{i}", f"p{i}@example.org") for i in range(1, 251)]
    results = connector.push("contact", Operation.UPSERT, records)
    assert all(r.ok for r in results)
    assert len(results) == 250
    upserts = [r for r in admin.request_log() if r["path"].endswith("/batch/upsert")]
    assert len(upserts) == 3
    assert admin.state()["objects"]["contacts"]["count"] == 250


def test_set_if_empty_fields_keep_values_hubspot_already_holds(
    connector: HubSpotConnector, admin: Admin
) -> None:
    connector.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org", firstname="Ada")])
    records = [
        dataclasses.replace(
            contact(2, "d1", "a@example.org", firstname="Overwritten?", lastname="Lovelace"),
            set_if_empty=frozenset({"firstname"}),
        ),
        dataclasses.replace(
            contact(3, "d2", "b@example.org", firstname="Bea"), set_if_empty=frozenset({"firstname"})
        ),
    ]
    assert all(r.ok for r in connector.push("contact", Operation.UPSERT, records))
    names = {
        c["properties"]["donor_sync_id"]: (c["properties"]["firstname"], c["properties"].get("lastname"))
        for c in admin.contacts()
    }
    assert names == {"d1": ("Ada", "Lovelace"), "d2": ("Bea", None)}


def test_update_by_remote_id_create_once_and_archive(connector: HubSpotConnector, admin: Admin) -> None:
    landed = connector.push("contact", Operation.UPSERT, [contact(1, "d1", "a@example.org", firstname="A")])
    remote = landed[0].remote_id
    update = OutboundRecord(2, "contact", "d1", Operation.UPDATE, {"lastname": "Z"}, remote_id=remote)
    missing = OutboundRecord(3, "contact", "d9", Operation.UPDATE, {"lastname": "Z"}, remote_id="987654")
    results = connector.push("contact", Operation.UPDATE, [update, missing])
    assert (results[0].ok, results[0].remote_id) == (True, remote)
    assert (results[1].ok, results[1].error_class, results[1].error_code) == (
        False,
        FailureClass.PERMANENT,
        "OBJECT_NOT_FOUND",
    )

    create = [
        OutboundRecord(4, "contact", "d1", Operation.CREATE, {"firstname": "Not me"}),
        OutboundRecord(5, "contact", "d2", Operation.CREATE, {"email": "b@example.org", "firstname": "B"}),
    ]
    created = connector.push("contact", Operation.CREATE, create)
    assert [(r.ok, r.created) for r in created] == [(True, False), (True, True)]
    assert created[0].remote_id == remote
    assert {c["properties"]["firstname"] for c in admin.contacts()} == {"A", "B"}

    archive = [
        OutboundRecord(6, "contact", "d1", Operation.ARCHIVE, {}, remote_id=remote),
        OutboundRecord(7, "contact", "d2", Operation.ARCHIVE, {}),  # found by its key
        OutboundRecord(8, "contact", "never-landed", Operation.ARCHIVE, {}),
    ]
    archived = connector.push("contact", Operation.ARCHIVE, archive)
    assert [(r.ok, r.remote_id) for r in archived] == [
        (True, remote),
        (True, created[1].remote_id),
        (True, None),
    ]
    assert admin.state()["objects"]["contacts"]["count"] == 0
