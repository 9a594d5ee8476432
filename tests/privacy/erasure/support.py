"""One donor, Zebulon Quixwright, received through every channel (Stripe API, Donorbox API, a Stripe
webhook, an event-platform CSV row), standardized and resolved as the pipeline does, with
everything the rest of the system attaches to a donor; and the PII scan of every table."""

from __future__ import annotations

import base64
import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from donor_sync.privacy.contracts import ErasureSubject, Receipt, RemoteRef
from donor_sync.privacy.keys import StaticKeys
from donor_sync.resolve import load_giving_settings, resolve_donors, resolve_gifts
from donor_sync.sources.raw_landing import RawRecord, finish_batch, land_records, open_batch
from donor_sync.standardize.pipeline import standardize_batches
from donor_sync.standardize.sample_landing import land_csv_sample
from tests.resolve.test_donors_support import rules as resolve_rules
from tests.standardize.test_pipeline_support import charge, donation
from tests.standardize.test_pipeline_support import rules as standardize_rules

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)
KEYS = StaticKeys({"tombstone": {"current": "t1", "keys": {"t1": base64.b64encode(b"k" * 32).decode()}}})
ROTATED = StaticKeys(
    {
        "tombstone": {
            "current": "t2",
            "keys": {"t1": base64.b64encode(b"k" * 32).decode(), "t2": base64.b64encode(b"z" * 32).decode()},
        }
    }
)

EMAIL = "zebulon.quixwright@example.org"
PHONE = "+16175550199"
#: strings that must not remain anywhere after the erasure (case-insensitive)
PII = ("zebulon", "quixwright", "wisteria", "5550199", "555-0199")


def _customer() -> dict[str, Any]:
    return {
        "id": "cus_ZQ1",
        "object": "customer",
        "address": {
            "city": "Marbleton",
            "country": "US",
            "line1": "77 Wisteria Quay",
            "line2": None,
            "postal_code": "02139",
            "state": "MA",
        },
        "created": 1700000000,
        "email": "Zebulon.Quixwright@example.org",
        "name": "Zebulon Quixwright",
        "phone": "(617) 555-0199",
        "livemode": False,
        "metadata": {},
    }


def _charge(charge_id: str, created: int) -> dict[str, Any]:
    return charge(
        charge_id,
        customer="cus_ZQ1",
        created=created,
        billing_details={
            "address": {
                "city": "Marbleton",
                "country": "US",
                "line1": "77 Wisteria Quay",
                "line2": None,
                "postal_code": "02139",
                "state": "MA",
            },
            "email": EMAIL,
            "name": "Zebulon Quixwright",
            "phone": None,
        },
    )


def _donation() -> dict[str, Any]:
    return donation(
        990001,
        donor={
            "id": 2990001,
            "name": "Zebulon Quixwright",
            "first_name": "Zebulon",
            "last_name": "Quixwright",
            "email": EMAIL,
            "phone": "617-555-0199",
            "address": "77 Wisteria Quay",
            "city": "Marbleton",
            "state": "MA",
            "zip_code": "02139",
            "country": "US",
        },
    )


def _land(db: psycopg.Connection, source: str, channel: str, records: list[RawRecord]) -> int:
    batch = open_batch(db, source=source, stream="test", channel=channel, run_id=None)
    read, loaded = land_records(db, batch_id=batch, source=source, channel=channel, records=records)
    finish_batch(db, batch, read=read, loaded=loaded, cursor=None)
    return batch


def _webhook(db: psycopg.Connection, event_id: str, obj: dict[str, Any]) -> int:
    body = {
        "id": event_id,
        "object": "event",
        "type": "charge.succeeded",
        "created": obj["created"],
        "data": {"object": obj},
    }
    row = db.execute(
        "INSERT INTO raw.webhook_inbox (source, event_id, event_type, body, body_sha256, body_bytes,"
        " signature_scheme, signature_verified, processed_at)"
        " VALUES ('stripe', %s, 'charge.succeeded', %s, sha256(%s::bytea), 10, 'stripe_v1', true, now())"
        " ON CONFLICT (source, event_id) DO UPDATE SET body = EXCLUDED.body RETURNING webhook_event_id",
        (event_id, json.dumps(body), json.dumps(body).encode()),
    ).fetchone()
    assert row is not None
    return _land(
        db,
        "stripe",
        "webhook",
        [RawRecord("charge", obj["id"], obj, datetime.fromtimestamp(obj["created"], UTC), row[0])],
    )


def _csv(tmp: Path, sample: Path, event: str) -> Path:
    source = sample / "csv" / "event_platform_export.csv"
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        template = next(reader)
    template.update(
        {
            "Order ID": "ORD-ZQ1",
            "Attendee ID": "A-ZQ1",
            "First Name": "Zebulon",
            "Last Name": "Quixwright",
            "Email Address": EMAIL,
            "Mobile": "617 555 0199",
            "Street": "77 Wisteria Quay",
            "Street 2": "",
            "Town": "Marbleton",
            "Region": "MA",
            "Zip": "02139",
            "Country Code": "US",
            "Dedication": "",
            "Event Name": event,
        }
    )
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / f"event_platform_zq_{tmp.name}.csv"
    with out.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerow(template)
    return out


def land_subject(
    db: psycopg.Connection, tmp: Path, sample: Path, *, webhook_event: str = "evt_ZQ2"
) -> list[int]:
    """Land the subject's records through every channel (plus one other donor); return the batches."""
    other = donation(990002)  # Jacob Balby, who must survive the erasure untouched
    batches = [
        _land(
            db,
            "stripe",
            "api",
            [
                RawRecord("customer", "cus_ZQ1", _customer(), datetime.fromtimestamp(1700000000, UTC)),
                RawRecord(
                    "charge", "ch_ZQ1", _charge("ch_ZQ1", 1700000100), datetime.fromtimestamp(1700000100, UTC)
                ),
            ],
        ),
        _land(
            db,
            "donorbox",
            "api",
            [
                RawRecord("donation", "990001", _donation(), None),
                RawRecord("donation", "990002", other, None),
            ],
        ),
        _webhook(db, webhook_event, _charge("ch_ZQ2", 1700000200)),
        land_csv_sample(db, _csv(tmp, sample, webhook_event), "event_platform_export"),
    ]
    db.commit()
    return batches


def standardize_and_resolve(db: psycopg.Connection, batches: list[int], *, keys: StaticKeys = KEYS) -> None:
    """Run standardize and resolve (donors, then gifts) over the batches, as a sync run does."""
    standardize_batches(db, batches, settings=standardize_rules(), now=NOW)
    resolve_donors(db, batches, rules=resolve_rules(), now=NOW, actor="test:erasure", erased_keys=keys)
    resolve_gifts(db, batches, now=NOW, settings=load_giving_settings())
    db.commit()


def subject_donor(db: psycopg.Connection) -> UUID:
    """Return the subject's (single, live) donor id."""
    rows = db.execute(
        "SELECT donor_id FROM core.donors WHERE lower(email) = %s AND merged_into IS NULL", (EMAIL,)
    ).fetchall()
    assert len(rows) == 1, rows
    return UUID(str(rows[0][0]))


def pii_hits(db: psycopg.Connection, needles: tuple[str, ...] = PII) -> list[str]:
    """Scan every text, jsonb and array column of every table in raw, staging, core and sync."""
    patterns = [f"%{n}%" for n in needles]
    columns = db.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema IN ('raw', 'staging', 'core', 'sync') AND t.table_type = 'BASE TABLE'"
        " AND (c.data_type IN ('text', 'jsonb', 'json', 'character varying', 'ARRAY', 'USER-DEFINED')"
        "      OR c.domain_name IS NOT NULL)"
        " ORDER BY 1, 2, 3"
    ).fetchall()
    hits = []
    for schema, table, column in columns:
        count = db.execute(
            f'SELECT count(*) FROM ONLY "{schema}"."{table}" WHERE "{column}"::text ILIKE ANY(%s)',
            (patterns,),
        ).fetchone()
        if count and count[0]:
            hits.append(f"{schema}.{table}.{column}: {count[0]}")
    return hits


@dataclass
class FakeEraser:
    """A destination eraser for pipeline tests: records what it was given, answers as told."""

    system: str
    fail: bool = False
    seen: list[ErasureSubject] | None = None

    def erase(self, subject: ErasureSubject) -> Receipt:
        if self.seen is None:
            self.seen = []
        self.seen.append(subject)
        if self.fail:
            return Receipt(self.system, "deleted", "failed", error="HTTP 503 from the vendor")
        refs = tuple(subject.remote_ids.get(self.system, ())) or (RemoteRef("contact", "r-1"),)
        return Receipt(
            self.system, "deleted", "done", remote_refs=refs, verified=True, verification="GET 404"
        )
