"""Helpers for the standardize pipeline tests (sample data, landing, truth), and tests of the landing.

Sample data comes from ``sandbox.datagen`` and is landed in raw the way the extractors land it
(:mod:`donor_sync.standardize.sample_landing`).
"""

from __future__ import annotations

import csv
import functools
import json
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from donor_sync.sources.csv_drop.rows import batch_rows
from donor_sync.standardize.pipeline import StandardizeResult, standardize_batches
from donor_sync.standardize.sample_landing import SAMPLE_CSVS, SAMPLE_STREAMS, land_sample
from donor_sync.standardize.settings import StandardizeSettings, load_settings
from sandbox.datagen import GenerationConfig, generate

#: The generator's "today"; no gift is after it, the injected future dates are years after it.
AS_OF = datetime(2025, 12, 31, tzinfo=UTC)
NOW = AS_OF + timedelta(days=1)

#: truth table -> (raw source, object entity) of its records' object identity
OBJECTS: dict[str, tuple[str, str]] = {
    "stripe/customers": ("stripe", "customer"),
    "stripe/charges": ("stripe", "charge"),
    "donorbox/donations": ("donorbox", "donation"),
    "classy/transactions": ("classy", "transaction"),
    "csv/bank_cheque_export": ("bank_cheque", "csv_row"),
    "csv/event_platform_export": ("event_platform", "csv_row"),
}

#: (truth table, path the generator broke) -> intake fields a reason or flag may name
FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("stripe/customers", "email"): frozenset({"email"}),
    ("stripe/customers", "name"): frozenset({"full_name"}),
    ("stripe/customers", "created"): frozenset({"source_updated_at"}),
    ("stripe/charges", "billing_details.email"): frozenset({"email"}),
    ("stripe/charges", "billing_details.name"): frozenset({"full_name"}),
    ("stripe/charges", "amount"): frozenset({"amount", "amount_minor"}),
    ("stripe/charges", "currency"): frozenset({"currency"}),
    ("stripe/charges", "created"): frozenset({"gift_at"}),
    ("stripe/charges", "description"): frozenset({"comment"}),
    ("donorbox/donations", "donor.email"): frozenset({"email"}),
    ("donorbox/donations", "amount"): frozenset({"amount"}),
    ("donorbox/donations", "currency"): frozenset({"currency"}),
    ("donorbox/donations", "donation_date"): frozenset({"gift_at"}),
    ("donorbox/donations", "donor.last_name"): frozenset({"last_name"}),
    ("donorbox/donations", "donor.first_name"): frozenset({"first_name"}),
    ("donorbox/donations", "comment"): frozenset({"comment"}),
    ("classy/transactions", "member_email_address"): frozenset({"email"}),
    ("classy/transactions", "total_gross_amount"): frozenset({"amount"}),
    ("classy/transactions", "currency_code"): frozenset({"currency"}),
    ("classy/transactions", "purchased_at"): frozenset({"gift_at"}),
    ("classy/transactions", "billing_last_name"): frozenset({"last_name"}),
    ("classy/transactions", "billing_first_name"): frozenset({"first_name"}),
    ("classy/transactions", "comment"): frozenset({"comment"}),
    ("csv/bank_cheque_export", "Email"): frozenset({"email"}),
    ("csv/bank_cheque_export", "Amount"): frozenset({"amount"}),
    ("csv/bank_cheque_export", "Currency"): frozenset({"currency"}),
    ("csv/bank_cheque_export", "Deposit Date"): frozenset({"gift_at"}),
    ("csv/bank_cheque_export", "Donor Name"): frozenset({"full_name"}),
    ("csv/bank_cheque_export", "Address 1"): frozenset({"address_line1"}),
    ("csv/event_platform_export", "Email Address"): frozenset({"email"}),
    ("csv/event_platform_export", "Donation Amount"): frozenset({"amount"}),
    ("csv/event_platform_export", "Currency"): frozenset({"currency"}),
    ("csv/event_platform_export", "Order Date"): frozenset({"gift_at"}),
    ("csv/event_platform_export", "Last Name"): frozenset({"last_name"}),
    ("csv/event_platform_export", "First Name"): frozenset({"first_name"}),
    ("csv/event_platform_export", "Street"): frozenset({"address_line1"}),
}

#: Kinds of bad data that are errors (quarantine) and the flag each other kind must raise.
ERROR_KINDS = frozenset(
    {"invalid_email", "malformed_amount", "unknown_currency", "future_date", "oversized", "invalid_utf8"}
)
FLAG_OF_KIND = {
    "injection_sql": "sql_like",
    "injection_html": "markup",
    "injection_formula": "formula_like",
    "mojibake": "mojibake_repaired",
}

#: Every raw record landed (raw.records and CSV rows), as a relation aliased ``r``.
ALL_RAW = "raw.all_records(ARRAY(SELECT batch_id FROM raw.batches)) r"


@functools.cache
def sample(donors: int = 300, seed: int = 7, bad_share: float = 0.02) -> Path:
    """Generate (once per process) and return a sample-data folder."""
    out = Path(tempfile.mkdtemp(prefix="ds-standardize-sample-")) / "data"
    generate(GenerationConfig(donors=donors, seed=seed, bad_share=bad_share, out=out))
    return out


def rules() -> StandardizeSettings:
    """Return the shipped rules with the sandbox's Stripe account expected in test mode."""
    return load_settings().with_expect_livemode("stripe", False)


def land_and_standardize(
    db: psycopg.Connection, data: Path, *, settings: StandardizeSettings | None = None
) -> tuple[list[int], StandardizeResult]:
    """Land a sample folder and standardize every batch; return the batch ids and the result."""
    batches = sorted(land_sample(db, data).values())
    result = standardize_batches(db, batches, settings=settings or rules(), now=NOW)
    return batches, result


def truth_rows(data: Path, name: str) -> list[dict[str, str]]:
    """Return a truth CSV's rows."""
    with (data / "truth" / f"{name}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def count_lines(data: Path) -> int:
    """Return how many records the sample folder holds (jsonl lines and CSV data rows)."""
    total = 0
    for relative, *_ in SAMPLE_STREAMS:
        with (data / relative).open(encoding="utf-8") as handle:
            total += sum(1 for line in handle if line.strip())
    for name in SAMPLE_CSVS:
        total += int(json.loads((data / "truth" / "manifest.json").read_text())["counts"][f"csv/{name}.csv"])
    return total


def flags_of(db: psycopg.Connection, raw_record_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Return every review flag staged for these raw records (donor and gift rows)."""
    rows = db.execute(
        "SELECT review_flags FROM staging.donors WHERE raw_record_id = ANY(%(ids)s)"
        " UNION ALL SELECT review_flags FROM staging.gifts WHERE raw_record_id = ANY(%(ids)s)",
        {"ids": list(raw_record_ids)},
    ).fetchall()
    return [flag for (flags,) in rows for flag in flags]


def test_sample_landing_lands_every_record_once_per_version(db: psycopg.Connection) -> None:
    data = sample()
    batches = land_sample(db, data)
    assert len(batches) == len(SAMPLE_STREAMS) + len(SAMPLE_CSVS)
    landed = db.execute("SELECT count(*), sum(records_loaded) FROM raw.batches").fetchone()
    records = db.execute(f"SELECT count(*) FROM {ALL_RAW}").fetchone()
    assert landed is not None
    assert records is not None
    assert records[0] == landed[1] == count_lines(data)
    again = land_sample(db, data)
    assert db.execute(f"SELECT count(*) FROM {ALL_RAW}").fetchone() == records  # idempotent
    assert set(again) == set(batches)


def test_csv_rows_land_through_the_csv_loader(db: psycopg.Connection) -> None:
    batches = land_sample(db, sample())
    rows = batch_rows(db, batches["bank_cheque/bank_cheque_export"])
    assert rows
    first = rows[0]
    assert (first.source, first.row_number) == ("bank_cheque", 1)
    with_ids = [row for row in rows if row.cells["Reference"].strip()]
    assert all(row.cells["Reference"].strip() == row.source_id for row in with_ids)
    assert first.line is not None
    assert first.line >= 2
    assert db.execute(
        "SELECT load_path FROM raw.csv_files WHERE batch_id = %s", (first.batch_id,)
    ).fetchone() == ("copy_csv",)


# -- crafted records ------------------------------------------------------------------------------


def donation(donation_id: int, **changes: Any) -> dict[str, Any]:
    """Return a Donorbox donation as its API returns it, with ``changes`` (``donor`` merged)."""
    donor = {
        "id": 2000000 + donation_id % 1000,
        "name": "Jacob Balby",
        "first_name": "Jacob",
        "last_name": "Balby",
        "email": f"jacob.balby{donation_id}@proton.example.org",
        "phone": None,
        "address": "408 Forest Drive",
        "address_line_2": None,
        "city": "Savannah",
        "state": "GA",
        "zip_code": "31483",
        "country": "US",
    }
    donor.update(changes.pop("donor", {}))
    payload: dict[str, Any] = {
        "id": donation_id,
        "campaign": {"id": 100014, "name": "Spring Appeal 2019"},
        "donor": donor,
        "amount": "100.00",
        "recurring": False,
        "amount_refunded": "0.00",
        "stripe_charge_id": None,
        "paypal_transaction_id": f"PP{donation_id}",
        "status": "paid",
        "donation_type": "paypal",
        "donation_date": "2024-04-25T12:46:26.000Z",
        "anonymous_donation": False,
        "designation": "Food Program",
        "join_mailing_list": False,
        "comment": None,
        "currency": "usd",
        "processing_fee": 3.2,
        "questions": [],
        "plan_id": None,
    }
    payload.update(changes)
    return payload


def charge(charge_id: str, **changes: Any) -> dict[str, Any]:
    """Return a Stripe charge as its API returns it, with ``changes``."""
    payload: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": 2500,
        "amount_refunded": 0,
        "billing_details": {
            "address": {
                "city": "Tampa",
                "country": "US",
                "line1": "1327 Church St",
                "line2": None,
                "postal_code": "33676",
                "state": "FL",
            },
            "email": f"{charge_id.lower()}@gmail.example.com",
            "name": "Debra Langstead",
            "phone": None,
        },
        "created": 1700000000,
        "currency": "usd",
        "customer": None,
        "description": "Donation: General Giving",
        "disputed": False,
        "invoice": None,
        "livemode": False,
        "metadata": {"campaign": "General Giving"},
        "payment_method_details": {"card": {"last4": "7878", "brand": "visa"}, "type": "card"},
        "status": "succeeded",
    }
    payload.update(changes)
    return payload


def event(
    event_id: str, obj: dict[str, Any], *, kind: str = "charge.succeeded", created: int
) -> dict[str, Any]:
    """Return a Stripe event carrying ``obj``."""
    return {"id": event_id, "object": "event", "type": kind, "created": created, "data": {"object": obj}}


def land(db: psycopg.Connection, source: str, records: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Land crafted ``(entity, payload)`` records as one loaded batch of ``source``; return its id."""
    from donor_sync.sources.extract import parse_iso
    from donor_sync.sources.raw_landing import RawRecord, finish_batch, land_records, open_batch

    def stamp(payload: dict[str, Any]) -> datetime | None:
        try:
            if isinstance(payload.get("created"), int):
                return datetime.fromtimestamp(payload["created"], UTC)
            when = payload.get("updated_at") or payload.get("donation_date")
            return parse_iso(str(when)) if when else None
        except (ValueError, OverflowError, OSError):
            return None  # a mutated timestamp: the extractor would record none

    batch = open_batch(db, source=source, stream="test", channel="api", run_id=None)
    raw = [RawRecord(entity, str(p["id"]), p, stamp(p)) for entity, p in records]
    read, loaded = land_records(db, batch_id=batch, source=source, channel="api", records=raw)
    finish_batch(db, batch, read=read, loaded=loaded, cursor=None)
    return batch


def disposition(
    db: psycopg.Connection, source: str, entity: str, source_id: str
) -> list[tuple[str, str | None]]:
    """Return the dispositions of the raw records of one (source, entity, source_id), oldest first."""
    return [
        (str(d), r)
        for d, r in db.execute(
            "SELECT d.disposition, d.reason FROM staging.dispositions d"
            f" JOIN {ALL_RAW} USING (raw_record_id)"
            " WHERE r.source = %s AND r.entity = %s AND r.source_id = %s ORDER BY r.raw_record_id",
            (source, entity, source_id),
        ).fetchall()
    ]
