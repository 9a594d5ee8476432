"""A donor merge in core reaches the CRMs: merged through HubSpot's merge API, listed for
Salesforce, and every destination id of the merged donor points at the survivor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from donor_sync.delivery import run as delivery
from donor_sync.delivery.connectors.hubspot.factory import connector_from_connection
from donor_sync.delivery.outbox import list_merges
from donor_sync.resolve import load_resolve_rules, merge_donors
from sandbox.common.runner import Sandbox
from tests.delivery.outbox.support import add_donor, add_gift


@pytest.fixture
def hubspot(start_sandbox: Callable[..., Sandbox]) -> object:
    box = start_sandbox("hubspot")
    conn = crm_connections_hubspot(box)
    connector = connector_from_connection(conn["host"], None, conn["password"], conn["extra"])
    connector.ensure_properties()
    return box, connector


def crm_connections_hubspot(box: Sandbox) -> dict[str, object]:
    ca = str(box.tls.ca_cert)
    return {"host": box["hubspot"].base_url, "password": "pat-na1-sandbox", "extra": {"ca_bundle": ca}}


def _contacts(box: Sandbox) -> dict[str, str | None]:
    store = box["hubspot"].emulator.store  # type: ignore[attr-defined]
    kind = next(k for k in store.types.values() if k.name == "contacts")
    return {r.id: r.properties.get("donor_sync_id") for r in store.of(kind).values() if not r.archived}


def test_a_merge_in_core_merges_the_hubspot_contacts_and_lists_the_salesforce_pair(
    db: psycopg.Connection, hubspot: tuple[Sandbox, object]
) -> None:
    box, connector = hubspot
    jane = add_donor(db, "Jane", "Okafor")
    janet = add_donor(db, "Janet", "Okafor")
    add_gift(db, janet, "stripe:ch_merge_1")
    db.commit()
    delivery.queue(db, "hubspot", run_id=None, actor="test")
    first = delivery.push(db, connector, run_id=None, worker_id="test-1")  # type: ignore[arg-type]
    assert first.totals()["succeeded"] >= 3
    before = _contacts(box)
    assert sorted(k for k in before.values() if k) == sorted([jane, janet])
    # Two Salesforce contacts too, so the Salesforce side has a pair to list.
    for donor, contact in ((jane, "003JANE"), (janet, "003JANET")):
        db.execute(
            "INSERT INTO sync.destination_state (destination, entity, record_key, donor_id, remote_id)"
            " VALUES ('salesforce', 'contact', %s, %s, %s)",
            (donor, donor, contact),
        )
    db.commit()

    merge_donors(db, jane, janet, rules=load_resolve_rules(), actor="test", now=datetime.now(UTC))
    db.commit()
    queued = delivery.queue(db, "hubspot", run_id=None, actor="test")
    assert queued.merges.queued == 1
    pushed = delivery.push(db, connector, run_id=None, worker_id="test-2")  # type: ignore[arg-type]
    assert pushed.totals()["dead_lettered"] == 0

    after = _contacts(box)
    assert list(after.values()) == [jane], "HubSpot holds one contact, the survivor's"
    [hubspot_merge] = list_merges(db, destination="hubspot", statuses=("pending", "merged", "failed"))
    assert (hubspot_merge.method, hubspot_merge.status) == ("api", "merged")
    # Every HubSpot id of both donors is the survivor's now; the deal follows its contact.
    owners = db.execute(
        "SELECT DISTINCT donor_id::text FROM core.donor_sources"
        " WHERE system = 'hubspot' AND role = 'destination'"
    ).fetchall()
    assert owners == [(jane,)]

    delivery.queue(db, "salesforce", run_id=None, actor="test")
    [listed] = list_merges(db, destination="salesforce")
    assert (listed.method, listed.status) == ("crm_task", "pending")
    assert (listed.survivor_key, listed.merged_key) == (jane, janet)
