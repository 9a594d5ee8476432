"""The standardizers over generated sample data, checked against the generator's ground truth.

Sample data for a few thousand donors is projected into intake columns by the benchmark's
projection (``bench/standardize_fields.py:load_intake``: text as received, one frame per source),
standardized the way the pipeline calls the functions, and compared with ``truth/``: the true
persons and gifts behind each record, the noise each appearance got, and every deliberately bad
record. Agreement is asserted per source with the rates printed on failure.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pandas as pd
import phonenumbers
import pytest

from donor_sync.standardize import fields
from donor_sync.standardize.columns import DONOR_COLUMNS as STAGED_DONOR_COLUMNS
from donor_sync.standardize.fields.addresses import parse_streets
from sandbox.datagen import GenerationConfig, generate

REPO = Path(__file__).resolve().parents[2]
DONORS = 3000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAME_NOISE = {"nickname", "first_typo", "first_initial", "last_typo", "last_changed", "name_swap"}
EMAIL_NOISE = {"email_dropped", "email_changed", "email_typo"}
PHONE_NOISE = {"phone_dropped", "phone_changed"}
ADDRESS_NOISE = {"moved", "street_typo", "address_missing"}
MAX_LENGTHS = {"full_name": 300, "first_name": 100, "last_name": 100, "address_line1": 200, "comment": 1000}


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_standardize_fields", REPO / "bench" / "standardize_fields.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _customers(path: Path) -> pd.DataFrame:
    rows = []
    decoder = msgspec.json.Decoder()
    for line in path.read_bytes().splitlines():
        record = decoder.decode(line)
        rows.append(
            {
                "source_id": record["id"],
                "full_name": record.get("name"),
                "email": record.get("email"),
                "created": str(record["created"]),
            }
        )
    return pd.DataFrame(rows, dtype=object)


def _csv(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8", newline="") as handle:
        return pd.DataFrame(list(csv.DictReader(handle)), dtype=object)


@dataclass
class Standardized:
    """One source's intake frame, its standardized columns, its issues and the truth behind it."""

    intake: pd.DataFrame
    values: pd.DataFrame
    issues: pd.DataFrame
    truth: pd.DataFrame  # per row: person fields, appearance noise, gift fields


@dataclass
class Sample:
    """Every gift source standardized, plus Stripe customers and the bad-record list."""

    sources: dict[str, Standardized]
    customers: Standardized
    bad: pd.DataFrame


def _standardize(
    source: str, frame: pd.DataFrame, config: Any, date_format: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    def col(name: str) -> pd.Series | None:
        return frame[name] if name in frame.columns else None

    text_columns = [c for c in MAX_LENGTHS if c in frame.columns]
    cleaned = fields.clean_text(frame[text_columns], MAX_LENGTHS)
    text = frame.copy()
    for column in text_columns:
        text[column] = cleaned.values[column]
    tcol = text.get
    results = [
        cleaned,
        fields.standardize_names(
            tcol("full_name"),
            tcol("first_name"),
            tcol("last_name"),
            organization_name=tcol("organization_name"),
        ),
        fields.normalize_emails(frame["email"]),
    ]
    addresses = fields.normalize_addresses(
        tcol("address_line1"),
        col("address_line2"),
        col("city"),
        col("region"),
        col("postal_code"),
        col("country"),
    )
    results += [
        addresses,
        fields.to_e164(frame["phone"], addresses.values["country_code"]),
        fields.parse_amounts(col("amount"), col("amount_minor"), frame["currency"]),
        fields.parse_timestamps(frame["gift_at"], fmt=date_format, now=NOW),
        fields.extract_utm(
            frame[[c for c in frame.columns if c.startswith("utm_")]], col("landing_url"), None, config
        ),
        fields.parse_consent_field(frame["consent_text"]),
    ]
    values = pd.concat(
        [
            r.values.drop(columns=[c for c in ("address_line1",) if c in r.values.columns and r is cleaned])
            for r in results[1:]
        ],
        axis=1,
    )
    values["comment"] = cleaned.values["comment"] if "comment" in cleaned.values.columns else None
    issues = pd.concat([r.issues for r in results], ignore_index=True)
    return values, issues


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    out = tmp_path_factory.mktemp("sample") / "out"
    generate(GenerationConfig(donors=DONORS, seed=11, out=out))
    bench = _bench()
    frames = bench.load_intake(out)
    truth = out / "truth"
    records = _csv(truth / "records.csv")
    persons = _csv(truth / "persons.csv").add_prefix("p_").rename(columns={"p_person_id": "person_id"})
    apps = _csv(truth / "appearances.csv")[["appearance_id", "noise"]]
    gifts = _csv(truth / "gifts.csv")[
        ["gift_id", "created", "currency", "amount_minor", "amount"]
    ].add_prefix("g_")
    joined = (
        records.merge(persons, on="person_id", how="left")
        .merge(apps, on="appearance_id", how="left")
        .merge(gifts, left_on="gift_id", right_on="g_gift_id", how="left")
    )
    config = fields.load_utm_config()
    sources: dict[str, Standardized] = {}
    for source, frame in frames.items():
        mine = joined[joined["source"] == source].set_index("source_record_id")
        row_truth = mine.reindex(frame["source_id"].astype(str)).reset_index(drop=True)
        values, issues = _standardize(source, frame, config, bench.DATE_FORMATS[source])
        sources[source] = Standardized(frame, values, issues, row_truth)
    customers = _customers(out / "stripe" / "customers.jsonl")
    cleaned = fields.clean_text(customers[["full_name"]], MAX_LENGTHS)
    names = fields.standardize_names(cleaned.values["full_name"], None, None)
    emails = fields.normalize_emails(customers["email"])
    created = fields.parse_timestamps(customers["created"], now=NOW, field="created")
    customer_result = fields.FieldResult.concat(names, emails, created)
    customer_issues = pd.concat([cleaned.issues, customer_result.issues], ignore_index=True)
    mine = joined[joined["source"] == "stripe/customers"].set_index("source_record_id")
    sources_truth = mine.reindex(customers["source_id"]).reset_index(drop=True)
    return Sample(
        sources,
        Standardized(customers, customer_result.values, customer_issues, sources_truth),
        _csv(truth / "bad_records.csv"),
    )


def _clean_rows(std: Standardized, bad: pd.DataFrame, source: str, noise: set[str]) -> pd.Series:
    """Rows with no bad record and none of the given noise tags."""
    broken = set(bad.loc[bad["source"] == source, "source_record_id"])
    ids = std.intake["source_id"].astype(str)
    tags = std.truth["noise"].fillna("").str.split(";")
    noisy = tags.map(lambda t: bool(noise & set(t)))
    return ~ids.isin(broken) & ~noisy & std.truth["person_id"].notna()


def _rate(hit: pd.Series) -> float:
    return float(hit.mean()) if len(hit) else 1.0


def _report(name: str, rates: dict[str, tuple[float, int]]) -> str:
    return f"{name}: " + ", ".join(f"{s} {r:.4f} of {n}" for s, (r, n) in rates.items())


def _all(sample: Sample) -> Iterator[tuple[str, Standardized]]:
    yield from sample.sources.items()
    yield "stripe/customers", sample.customers


def test_names_match_the_true_persons_where_the_record_was_not_noised(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    for source, std in _all(sample):
        rows = _clean_rows(std, sample.bad, source, NAME_NOISE)
        got = std.values.loc[rows, ["first_name", "last_name"]].astype(object)
        want = std.truth.loc[rows, ["p_first_name", "p_last_name"]].to_numpy()
        hit = pd.Series([tuple(g) == tuple(w) for g, w in zip(got.to_numpy(), want, strict=True)], dtype=bool)
        rates[source] = (_rate(hit), int(rows.sum()))
        assert rows.sum() > 100, source
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("names", rates)


def test_emails_are_valid_and_match_the_truth_where_not_noised(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    for source, std in _all(sample):
        rows = _clean_rows(std, sample.bad, source, EMAIL_NOISE) & std.truth["p_email"].fillna("").ne("")
        got = std.values.loc[rows, "email_key"]
        hit = got.eq(std.truth.loc[rows, "p_email"].str.lower()).fillna(False)
        rates[source] = (_rate(hit), int(rows.sum()))
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("emails", rates)


def test_phones_match_the_true_e164_numbers_libphonenumber_accepts(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    for source, std in sample.sources.items():
        rows = _clean_rows(std, sample.bad, source, PHONE_NOISE) & std.truth["p_phone"].fillna("").ne("")
        # A national number can only be read in the row's country: leave out the few rows whose
        # generated number belongs to another country than the address (a US number, a French address).
        phone_code = [
            phonenumbers.parse(p, None).country_code if p else 0 for p in std.truth["p_phone"].fillna("")
        ]
        row_code = [phonenumbers.country_code_for_region(c) for c in std.intake["country"].fillna("US")]
        same_country = pd.Series(
            [a == b for a, b in zip(phone_code, row_code, strict=True)], index=rows.index
        )
        rows &= std.intake["phone"].fillna("").str.startswith("+").astype(bool) | same_country
        truth = std.truth.loc[rows, "p_phone"]
        valid = truth.map(lambda p: phonenumbers.is_valid_number(phonenumbers.parse(p, None))).astype(bool)
        got = std.values.loc[rows, "phone"]
        same = got.eq(truth.astype("string[pyarrow]")).fillna(False).astype(bool)
        hit = (valid & same) | (~valid & got.isna())
        rates[source] = (_rate(hit), int(rows.sum()))
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("phones", rates)


def test_addresses_match_the_true_address_and_validate(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    validated: dict[str, tuple[float, int]] = {}
    for source, std in sample.sources.items():
        rows = _clean_rows(std, sample.bad, source, ADDRESS_NOISE) & std.truth["p_country"].isin(["US", "CA"])
        truth = std.truth.loc[rows]
        expected_line1 = parse_streets(truth["p_street"].astype("string[pyarrow]"))["street"]
        got = std.values.loc[rows]
        zip5 = got["postal_code"].str.slice(0, 5).where(truth["p_country"].eq("US"), got["postal_code"])
        hit = (
            got["address_line1"].eq(expected_line1)
            & got["region"].eq(truth["p_state"])
            & got["country_code"].eq(truth["p_country"])
            & zip5.eq(truth["p_postal_code"])
        ).fillna(False)
        rates[source] = (_rate(hit), int(rows.sum()))
        validated[source] = (_rate(got["address_validated"]), int(rows.sum()))
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("addresses", rates)
    assert all(rate == 1.0 for rate, _ in validated.values()), _report("validated", validated)


def test_amounts_and_currencies_match_the_true_gifts_exactly(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    for source, std in sample.sources.items():
        rows = _clean_rows(std, sample.bad, source, set()) & std.truth["g_gift_id"].notna()
        truth = std.truth.loc[rows]
        got = std.values.loc[rows]
        hit = pd.Series(
            [
                a == Decimal(ta) and c == tc and int(m) == int(tm)
                for a, c, m, ta, tc, tm in zip(
                    got["amount"],
                    got["currency"],
                    got["amount_minor"].fillna(-1),
                    truth["g_amount"],
                    truth["g_currency"],
                    truth["g_amount_minor"],
                    strict=True,
                )
            ],
            dtype=bool,
        )
        rates[source] = (_rate(hit), int(rows.sum()))
        assert rows.sum() > 100, source
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("amounts", rates)


def test_gift_times_match_the_true_gifts(sample: Sample) -> None:
    rates: dict[str, tuple[float, int]] = {}
    for source, std in sample.sources.items():
        rows = _clean_rows(std, sample.bad, source, set()) & std.truth["g_gift_id"].notna()
        truth = pd.to_datetime(std.truth.loc[rows, "g_created"], utc=True)
        got = std.values.loc[rows, "gift_at"]
        if source == "csv/bank_cheque_export":  # a deposit date: noon of the true day
            hit = got.eq(truth.dt.floor("D") + pd.Timedelta(hours=12))
        elif source == "stripe/charges":  # a charge made for a Donorbox/Classy gift is seconds later
            hit = (got - truth).abs() <= pd.Timedelta(minutes=10)
        else:
            hit = got.eq(truth)
        rates[source] = (_rate(hit.fillna(False)), int(rows.sum()))
    assert all(rate == 1.0 for rate, _ in rates.values()), _report("gift_at", rates)


#: (source, bad field path) -> the intake column it lands in
FIELD_COLUMNS = {
    ("stripe/customers", "email"): "email",
    ("stripe/customers", "name"): "full_name",
    ("stripe/customers", "created"): "created",
    ("stripe/charges", "billing_details.email"): "email",
    ("stripe/charges", "amount"): "amount_minor",
    ("stripe/charges", "currency"): "currency",
    ("stripe/charges", "created"): "gift_at",
    ("stripe/charges", "billing_details.name"): "full_name",
    ("stripe/charges", "description"): "comment",
    ("donorbox/donations", "donor.email"): "email",
    ("donorbox/donations", "amount"): "amount",
    ("donorbox/donations", "currency"): "currency",
    ("donorbox/donations", "donation_date"): "gift_at",
    ("donorbox/donations", "donor.last_name"): "last_name",
    ("donorbox/donations", "donor.first_name"): "first_name",
    ("donorbox/donations", "comment"): "comment",
    ("classy/transactions", "member_email_address"): "email",
    ("classy/transactions", "total_gross_amount"): "amount",
    ("classy/transactions", "currency_code"): "currency",
    ("classy/transactions", "purchased_at"): "gift_at",
    ("classy/transactions", "billing_last_name"): "last_name",
    ("classy/transactions", "billing_first_name"): "first_name",
    ("classy/transactions", "comment"): "comment",
    ("csv/bank_cheque_export", "Email"): "email",
    ("csv/bank_cheque_export", "Amount"): "amount",
    ("csv/bank_cheque_export", "Currency"): "currency",
    ("csv/bank_cheque_export", "Deposit Date"): "gift_at",
    ("csv/bank_cheque_export", "Donor Name"): "full_name",
    ("csv/bank_cheque_export", "Address 1"): "address_line1",
    ("csv/event_platform_export", "Email Address"): "email",
    ("csv/event_platform_export", "Donation Amount"): "amount",
    ("csv/event_platform_export", "Currency"): "currency",
    ("csv/event_platform_export", "Order Date"): "gift_at",
    ("csv/event_platform_export", "Last Name"): "last_name",
    ("csv/event_platform_export", "First Name"): "first_name",
    ("csv/event_platform_export", "Street"): "address_line1",
}
#: kind of bad value -> issue codes, any of which proves it was caught
EXPECTED = {
    "invalid_email": {"invalid_email"},
    "malformed_amount": {"malformed_amount", "negative_amount"},
    "unknown_currency": {"unknown_currency"},
    "future_date": {"future_timestamp"},
    "mojibake": {"mojibake_repaired"},
    "invalid_utf8": {"invalid_encoding"},
    "injection_formula": {"formula_like"},
    "injection_html": {"markup"},
    "oversized": {"too_long"},
}
NAME_COLUMNS = {"full_name", "first_name", "last_name"}


def test_every_injected_bad_record_is_caught_or_handled(sample: Sample) -> None:
    by_source = dict(_all(sample))
    assert set(sample.bad["kind"]) <= {*EXPECTED, "injection_sql"}
    missed: list[tuple[str, str, str, str]] = []
    counts: dict[str, int] = {}
    for bad in sample.bad.itertuples():
        std = by_source[bad.source]
        column = FIELD_COLUMNS[(bad.source, bad.field)]
        position = std.intake.index[std.intake["source_id"].astype(str) == bad.source_record_id]
        assert len(position) == 1, bad
        row = position[0]
        found = std.issues[std.issues["row"] == row]
        codes = set(found["code"])
        counts[bad.kind] = counts.get(bad.kind, 0) + 1
        if bad.kind == "injection_sql":
            # parameterized COPY makes it harmless: kept exactly, and flagged on names for review
            value = std.intake.at[row, column]
            parts = [
                "name_prefix",
                "first_name",
                "middle_name",
                "last_name",
                "name_suffix",
                "nickname",
                "organization_name",
            ]
            kept = " ".join(str(v) for v in std.values.loc[row, parts] if pd.notna(v))
            ok = value.split()[0].lower() in kept.lower() and "unusual_name_characters" in codes
        elif bad.kind == "malformed_amount" and str(std.intake.at[row, column]) == "$25.00":
            # the currency's own symbol is accepted; another currency's is malformed
            dollars = std.values.at[row, "currency"] in {"USD", "CAD"}
            ok = std.values.at[row, "amount"] == Decimal("25.00") if dollars else "malformed_amount" in codes
        else:
            ok = bool(codes & EXPECTED[bad.kind])
        if not ok:
            missed.append((bad.source, bad.field, bad.kind, ", ".join(sorted(codes))))
    assert sum(counts.values()) > 100
    assert not missed, missed


# staging.donors' standardized columns (the writer's own list), less birth_date, which the sample
# frames here do not standardize.
DONOR_COLUMNS = tuple(c for c in STAGED_DONOR_COLUMNS if c != "birth_date")
GIFT_COLUMNS = ("amount", "currency", "currency_exponent", "amount_minor", "gift_at")


def _python(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value


def test_standardized_values_satisfy_the_staging_checks(sample: Sample, db: Any) -> None:
    """Every donor row, and every gift row whose amount, currency and time parsed, loads into staging.

    The tables' CHECKs and domains (email LIKE, E.164, ISO country and currency codes, exponent,
    amount_minor = amount * 10^exponent) are the contract; a failure here is a standardizer bug.
    """
    donors = gifts = 0
    raw_id = 0
    with db.cursor() as cur:
        for source, std in sample.sources.items():
            system = source.split("/")[0]
            with cur.copy(
                "COPY staging.donors (raw_record_id, batch_id, source, source_id, "
                f"{', '.join(DONOR_COLUMNS)}) FROM STDIN"
            ) as copy:
                for position in range(len(std.values)):
                    raw_id += 1
                    row = std.values.iloc[position]
                    copy.write_row(
                        (
                            raw_id,
                            1,
                            system,
                            str(std.intake["source_id"].iloc[position]),
                            *(_python(row[c]) for c in DONOR_COLUMNS),
                        )
                    )
                    donors += 1
            usable = std.values[list(GIFT_COLUMNS)].notna().all(axis=1)
            with cur.copy(
                "COPY staging.gifts (raw_record_id, batch_id, source, entity, source_id, gift_key, status, "
                f"{', '.join(GIFT_COLUMNS)}) FROM STDIN"
            ) as copy:
                for position in range(len(std.values)):
                    if not usable.iloc[position]:
                        continue
                    raw_id += 1
                    row = std.values.iloc[position]
                    source_id = str(std.intake["source_id"].iloc[position])
                    copy.write_row(
                        (
                            raw_id,
                            1,
                            system,
                            "gift",
                            source_id,
                            f"{system}:{source_id}",
                            "succeeded",
                            *(_python(row[c]) for c in GIFT_COLUMNS),
                        )
                    )
                    gifts += 1
        cur.execute(
            "SELECT count(*), count(email), count(phone), count(*) FILTER (WHERE address_validated) "
            "FROM staging.donors"
        )
        counts = cur.fetchone()
        cur.execute("SELECT count(*), sum(amount_minor) FROM staging.gifts")
        gift_counts = cur.fetchone()
    assert counts is not None
    assert gift_counts is not None
    assert counts[0] == donors
    assert counts[1] > donors * 0.6
    assert counts[3] > donors * 0.6
    assert gift_counts[0] == gifts > 0.95 * sum(len(s.values) for s in sample.sources.values())
