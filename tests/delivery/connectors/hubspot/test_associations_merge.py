"""Deal-contact associations and contact merges reach the HubSpot emulator."""

from __future__ import annotations

from collections.abc import Callable

from donor_sync.delivery.connectors.hubspot import AssociationType, HubSpotConnector
from donor_sync.delivery.contracts import FailureClass, Operation, OutboundRecord, RecordRef
from tests.delivery.connectors.hubspot.conftest import Admin, contact, deal


def _association(outbox_id: int, gift_key: str, donor_id: str, refs: dict[RecordRef, str]) -> OutboundRecord:
    depends = (RecordRef("deal", gift_key), RecordRef("contact", donor_id))
    return OutboundRecord(
        outbox_id,
        "deal_contact_association",
        gift_key,
        Operation.UPSERT,
        {},
        depends_on=depends,
        remote_refs={ref: refs[ref] for ref in depends if ref in refs},
    )


def _linked_contacts(admin: Admin, deal_id: str) -> dict[int, list[str | None]]:
    body = admin.api("GET", f"/crm/v4/objects/deals/{deal_id}/associations/contacts").json()
    return {r["toObjectId"]: [t["label"] for t in r["associationTypes"]] for r in body["results"]}


def _land(connector: HubSpotConnector) -> dict[RecordRef, str]:
    contacts = connector.push(
        "contact",
        Operation.UPSERT,
        [contact(1, "ada", "ada@example.org"), contact(2, "bo", "bo@example.org")],
    )
    deals = connector.push("deal", Operation.UPSERT, [deal(3, "g1"), deal(4, "g2"), deal(5, "g3")])
    keys = [
        RecordRef("contact", "ada"),
        RecordRef("contact", "bo"),
        RecordRef("deal", "g1"),
        RecordRef("deal", "g2"),
        RecordRef("deal", "g3"),
    ]
    ids = [r.remote_id for r in [*contacts, *deals]]
    assert all(ids)
    return {ref: str(remote) for ref, remote in zip(keys, ids, strict=True)}


def test_associations_link_each_deal_to_its_own_contact(connector: HubSpotConnector, admin: Admin) -> None:
    refs = _land(connector)
    ada, bo = refs[RecordRef("contact", "ada")], refs[RecordRef("contact", "bo")]
    g1, g2 = refs[RecordRef("deal", "g1")], refs[RecordRef("deal", "g2")]
    records = [
        _association(10, "g1", "ada", refs),
        _association(11, "g2", "bo", refs),
        _association(12, "g9", "ada", {**refs, RecordRef("deal", "g9"): "999999"}),  # deal gone
        _association(13, "g3", "nobody", refs),  # contact not landed yet
    ]
    results = connector.push("deal_contact_association", Operation.UPSERT, records)
    assert [(r.ok, r.remote_id) for r in results[:2]] == [(True, f"{g1}:{ada}"), (True, f"{g2}:{bo}")]
    assert (results[2].ok, results[2].error_class, results[2].error_code) == (
        False,
        FailureClass.PERMANENT,
        "OBJECT_NOT_FOUND",
    )
    assert (results[3].ok, results[3].error_class, results[3].error_code) == (
        False,
        FailureClass.TRANSIENT,
        "DEPENDENCY_NOT_LANDED",
    )
    assert _linked_contacts(admin, g1) == {int(ada): [None]}
    assert _linked_contacts(admin, g2) == {int(bo): [None]}
    links = admin.state()["association_links"]
    again = connector.push("deal_contact_association", Operation.UPSERT, records[:2])
    assert all(r.ok for r in again)
    assert admin.state()["association_links"] == links  # linking twice adds nothing

    unlinked = connector.push(
        "deal_contact_association", Operation.ARCHIVE, [_association(14, "g1", "ada", refs)]
    )
    assert unlinked[0].ok
    assert _linked_contacts(admin, g1) == {}
    assert _linked_contacts(admin, g2) == {int(bo): [None]}


def test_labelled_associations_use_the_connection_types(
    make_connector: Callable[..., HubSpotConnector], connector: HubSpotConnector, admin: Admin
) -> None:
    refs = _land(connector)
    label = admin.api("POST", "/crm/v4/associations/deals/contacts/labels", {"label": "Donor"}).json()[
        "results"
    ][0]
    labelled = make_connector(
        deal_contact_association_types=(AssociationType("USER_DEFINED", label["typeId"]),)
    )
    results = labelled.push(
        "deal_contact_association", Operation.UPSERT, [_association(20, "g1", "ada", refs)]
    )
    assert results[0].ok
    g1, ada = refs[RecordRef("deal", "g1")], refs[RecordRef("contact", "ada")]
    assert _linked_contacts(admin, g1) == {int(ada): ["Donor"]}


def _merge(outbox_id: int, primary: str, merged: str) -> OutboundRecord:
    payload = {"primary_remote_id": primary, "merged_remote_id": merged}
    return OutboundRecord(outbox_id, "contact", "ada", Operation.MERGE, payload)


def test_merge_keeps_the_primary_and_a_replay_is_not_a_failure(
    connector: HubSpotConnector, admin: Admin
) -> None:
    landed = connector.push(
        "contact",
        Operation.UPSERT,
        [
            contact(1, "ada", "ada@example.org", firstname="Ada"),
            contact(2, "ada-dup", "ada.l@example.org", lastname="Lovelace"),
        ],
    )
    primary, merged = (str(r.remote_id) for r in landed)
    result = connector.push("contact", Operation.MERGE, [_merge(3, primary, merged)])[0]
    assert (result.ok, result.remote_id) == (True, primary)
    state = admin.state()["objects"]["contacts"]
    assert state["count"] == 1
    survivor = state["records"][0]["properties"]
    assert (survivor["firstname"], survivor["lastname"], survivor["hs_merged_object_ids"]) == (
        "Ada",
        "Lovelace",
        merged,
    )

    replay = connector.push("contact", Operation.MERGE, [_merge(4, primary, merged)])[0]
    assert (replay.ok, replay.remote_id) == (True, primary)

    unknown = connector.push(
        "contact", Operation.MERGE, [_merge(5, primary, "424242"), _merge(6, "434343", primary)]
    )
    assert [(r.ok, r.error_class, r.error_code) for r in unknown] == [
        (False, FailureClass.PERMANENT, "MERGE_SOURCE_NOT_FOUND"),
        (False, FailureClass.PERMANENT, "MERGE_PRIMARY_NOT_FOUND"),
    ]
    incomplete = connector.push("contact", Operation.MERGE, [_merge(7, primary, "")])[0]
    assert (incomplete.error_class, incomplete.error_code) == (FailureClass.VALIDATION, "MERGE_IDS_MISSING")
