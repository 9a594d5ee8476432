"""Tests of the sample-data generator: determinism, truth completeness, shapes, noise and bad records."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.datagen import GenerationConfig, GenerationResult, generate
from sandbox.datagen.vocab import load_vocabulary

N = 1500
EXPONENT = {"usd": 2, "eur": 2, "gbp": 2, "cad": 2, "jpy": 0}
ISO_CURRENCIES = {"USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF", "MXN", "NZD", "SEK"}
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
CSV_AMOUNT_RE = re.compile(r"^(\d{1,3}(,\d{3})*|\d+)(\.\d{2})?$")
STRIPE_PREFIX = {
    "customers": "cus_",
    "charges": "ch_",
    "payment_intents": "pi_",
    "refunds": "re_",
    "events": "evt_",
}
STRIPE_OBJECT = {
    "customers": "customer",
    "charges": "charge",
    "payment_intents": "payment_intent",
    "refunds": "refund",
    "events": "event",
}
ID_FIELD = {
    "stripe/customers": "id",
    "stripe/charges": "id",
    "stripe/payment_intents": "id",
    "stripe/refunds": "id",
    "stripe/events": "id",
    "donorbox/donations": "id",
    "classy/transactions": "id",
    "csv/bank_cheque_export": "Reference",
    "csv/event_platform_export": "Order ID",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> GenerationResult:
    """Generate one small data set shared by the tests of this module."""
    out = tmp_path_factory.mktemp("datagen") / "a"
    return generate(GenerationConfig(donors=N, seed=7, out=out))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        return [json.loads(line) for line in handle]


def _csv(path: Path) -> list[dict[str, str]]:
    encoding = "cp1252" if "bank" in path.name else "utf-8-sig"
    errors = "strict" if "bank" in path.name else "surrogateescape"
    with path.open(encoding=encoding, errors=errors, newline="") as handle:
        return list(csv.DictReader(handle))


def _records(out: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for name in ID_FIELD:
        jsonl = out / f"{name}.jsonl"
        found[name] = _jsonl(jsonl) if jsonl.exists() else _csv(out / f"{name}.csv")  # type: ignore[assignment]
    return found


def _truth(out: Path, name: str) -> list[dict[str, str]]:
    with (out / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _get(obj: dict[str, Any], path: str) -> Any:
    if path in obj:
        return obj[path]
    for key in path.split("."):
        obj = obj[key]
    return obj


def _digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    """The same seed reproduces every byte; another seed changes the data."""
    first = generate(GenerationConfig(donors=300, seed=11, out=tmp_path / "a"))
    second = generate(GenerationConfig(donors=300, seed=11, out=tmp_path / "b"))
    third = generate(GenerationConfig(donors=300, seed=12, out=tmp_path / "c"))
    assert _digest(first.out) == _digest(second.out)
    other = _digest(third.out)
    changed = [name for name, digest in _digest(first.out).items() if other.get(name) != digest]
    assert "stripe/charges.jsonl" in changed
    assert "truth/persons.csv" in changed


def test_manifest_counts_match_files(run: GenerationResult) -> None:
    """Every count in the manifest is the number of records in its file."""
    manifest = json.loads((run.out / "truth" / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["donors"] == N
    assert manifest["generator_version"]
    assert manifest["config"]["bad_share"] == 0.02
    for name, count in manifest["counts"].items():
        path = run.out / name
        if name.endswith(".jsonl"):
            actual = sum(1 for _ in path.open("rb"))
        else:
            actual = len(_csv(path)) if name.startswith("csv/") else len(_truth(run.out, Path(name).name))
        assert actual == count, name
    expected = {f"stripe/{n}.jsonl" for n in STRIPE_PREFIX} | {
        "donorbox/donations.jsonl",
        "classy/transactions.jsonl",
        "csv/bank_cheque_export.csv",
        "csv/event_platform_export.csv",
        "truth/persons.csv",
        "truth/records.csv",
        "truth/households.csv",
        "truth/gift_links.csv",
        "truth/bad_records.csv",
    }
    assert expected <= set(manifest["counts"])


def test_every_source_record_appears_exactly_once_in_truth(run: GenerationResult) -> None:
    """records.csv lists each record of each source file once, with a known person."""
    truth = _truth(run.out, "records.csv")
    keys = Counter((row["source"], row["source_record_id"]) for row in truth)
    assert max(keys.values()) == 1
    persons = {row["person_id"] for row in _truth(run.out, "persons.csv")}
    assert {row["person_id"] for row in truth} <= persons
    for name, records in _records(run.out).items():
        ids = [str(r[ID_FIELD[name]]) for r in records]
        assert len(ids) == len(set(ids)), name
        assert set(ids) == {rid for source, rid in keys if source == name}, name


def test_stripe_objects_have_prefixes_and_minor_units(run: GenerationResult) -> None:
    """Stripe ids carry their prefixes; amounts are integers in the currency's minor units."""
    bad = {(r["source"], r["source_record_id"]) for r in _truth(run.out, "bad_records.csv")}
    gifts = {r["gift_id"]: r for r in _truth(run.out, "gifts.csv")}
    charge_gift = {
        r["source_record_id"]: r["gift_id"]
        for r in _truth(run.out, "records.csv")
        if r["source"] == "stripe/charges"
    }
    for name, prefix in STRIPE_PREFIX.items():
        for obj in _jsonl(run.out / "stripe" / f"{name}.jsonl"):
            assert obj["id"].startswith(prefix)
            assert obj["object"] == STRIPE_OBJECT[name]
            assert isinstance(obj["created"], int)
    seen_jpy = False
    for charge in _jsonl(run.out / "stripe" / "charges.jsonl"):
        assert charge["payment_intent"].startswith("pi_")
        if charge["customer"] is not None:
            assert charge["customer"].startswith("cus_")
        if ("stripe/charges", charge["id"]) in bad:
            continue
        gift = gifts[charge_gift[charge["id"]]]
        exponent = EXPONENT[charge["currency"]]
        assert isinstance(charge["amount"], int)
        assert charge["amount"] > 0
        assert charge["currency"] == gift["currency"].lower()
        assert charge["amount"] == round(float(gift["amount"]) * 10**exponent)
        if charge["currency"] == "jpy":
            seen_jpy = True
            assert "." not in gift["amount"]
        else:
            assert re.fullmatch(r"\d+\.\d{2}", gift["amount"])
    assert seen_jpy
    currencies = Counter(c["currency"] for c in _jsonl(run.out / "stripe" / "charges.jsonl"))
    assert currencies.most_common(1)[0][0] == "usd"
    assert {"eur", "gbp", "cad", "jpy"} <= set(currencies)


def test_gift_links_point_at_records_in_both_platforms(run: GenerationResult) -> None:
    """Each linked gift is a Stripe charge naming the other platform's record, which names it back."""
    links = _truth(run.out, "gift_links.csv")
    assert links
    charges = {c["id"]: c for c in _jsonl(run.out / "stripe" / "charges.jsonl")}
    records = _records(run.out)
    other = {
        name: {str(r["id"]): r for r in records[name]}
        for name in ("donorbox/donations", "classy/transactions")
    }
    truth = {(r["source"], r["source_record_id"]): r for r in _truth(run.out, "records.csv")}
    for link in links:
        charge = charges[link["stripe_charge_id"]]
        target = other[link["other_source"]][link["other_record_id"]]
        key = (
            "donorbox_donation_id" if link["other_source"].startswith("donorbox") else "classy_transaction_id"
        )
        assert charge["metadata"][key] == link["other_record_id"]
        if link["other_source"].startswith("donorbox"):
            assert target["stripe_charge_id"] == charge["id"]
        both = (
            truth[("stripe/charges", charge["id"])],
            truth[(link["other_source"], link["other_record_id"])],
        )
        assert both[0]["person_id"] == both[1]["person_id"] == link["person_id"]
        assert both[0]["gift_id"] == both[1]["gift_id"] == link["gift_id"]
    assert {link["other_source"] for link in links} == {"donorbox/donations", "classy/transactions"}


def test_nickname_typo_and_contact_noise_present(run: GenerationResult) -> None:
    """Some persons appear under a nickname, with typos, and with changed contacts or addresses."""
    vocab = load_vocabulary()
    pairs = {(formal, nick) for formal, nicks in vocab.nicknames.items() for nick in nicks}
    persons = {r["person_id"]: r for r in _truth(run.out, "persons.csv")}
    firsts: dict[str, set[str]] = defaultdict(set)
    truth = {(r["source"], r["source_record_id"]): r["person_id"] for r in _truth(run.out, "records.csv")}
    for customer in _jsonl(run.out / "stripe" / "customers.jsonl"):
        if isinstance(customer["name"], str) and customer["name"]:
            firsts[truth[("stripe/customers", customer["id"])]].add(customer["name"].split(" ")[0].strip())
    for tx in _jsonl(run.out / "classy" / "transactions.jsonl"):
        firsts[truth[("classy/transactions", str(tx["id"]))]].add(str(tx["billing_first_name"]).strip())
    nickname_people = [
        pid for pid, names in firsts.items() if any((persons[pid]["first_name"], n) in pairs for n in names)
    ]
    assert nickname_people, "no record uses a nickname of its person's first name"
    noise = Counter(tag for r in _truth(run.out, "appearances.csv") for tag in r["noise"].split(";") if tag)
    for tag in ("nickname", "first_typo", "last_typo", "email_changed", "phone_changed", "moved", "case"):
        assert noise[tag] > 0, tag


def test_households_share_surname_and_address(run: GenerationResult) -> None:
    """Households have at least two distinct persons sharing surname and address, not nickname twins."""
    vocab = load_vocabulary()
    persons = {r["person_id"]: r for r in _truth(run.out, "persons.csv")}
    groups: dict[str, list[str]] = defaultdict(list)
    for row in _truth(run.out, "households.csv"):
        groups[row["household_id"]].append(row["person_id"])
    assert len(groups) >= N * 0.04
    for members in groups.values():
        assert len(set(members)) >= 2
        rows = [persons[m] for m in members]
        assert len({(r["last_name"], r["street"], r["unit"], r["postal_code"]) for r in rows}) == 1
        canon = [vocab.canonical.get(r["first_name"], r["first_name"]) for r in rows]
        assert len(set(canon)) == len(canon)


def test_flags_and_consents_of_every_kind(run: GenerationResult) -> None:
    """Deceased and do-not-contact flags exist; consents cover opt-in, soft opt-in and opt-out."""
    persons = _truth(run.out, "persons.csv")
    assert any(p["deceased"] == "true" and p["deceased_date"] for p in persons)
    assert any(p["do_not_contact"] == "true" for p in persons)
    consents = _truth(run.out, "consents.csv")
    assert {c["status"] for c in consents} == {"opt_in", "soft_opt_in", "opt_out"}
    assert {c["channel"] for c in consents} >= {"email", "sms", "mail", "phone"}
    truth = {(r["source"], r["source_record_id"]) for r in _truth(run.out, "records.csv")}
    assert all((c["source"], c["source_record_id"]) in truth and c["captured_at"] for c in consents)


def test_gift_variety(run: GenerationResult) -> None:
    """Recurring gifts with failures, refunds, UTM landing URLs, tributes and campaigns all occur."""
    gifts = _truth(run.out, "gifts.csv")
    assert any(g["recurring"] == "true" and g["status"] == "failed" for g in gifts)
    assert _jsonl(run.out / "stripe" / "refunds.jsonl")
    assert any("utm_source=" in g["landing_url"] for g in gifts)
    assert {g["tribute_type"] for g in gifts} >= {"honor", "memory"}
    assert len({g["campaign"] for g in gifts}) > 5
    failed = [c for c in _jsonl(run.out / "stripe" / "charges.jsonl") if c["status"] == "failed"]
    assert failed
    assert all(c["failure_code"] for c in failed)


def _is_bad(kind: str, value: Any, as_of: datetime, source: str = "") -> bool:
    if kind == "invalid_email":
        return not (isinstance(value, str) and EMAIL_RE.fullmatch(value) and ".." not in value)
    if kind == "malformed_amount":
        if source.startswith("stripe/"):
            return not (type(value) is int and value > 0)
        if source == "classy/transactions":
            return not (type(value) in (int, float) and value > 0 and not math.isnan(value))
        return not (isinstance(value, str) and CSV_AMOUNT_RE.fullmatch(value))
    if kind == "unknown_currency":
        return str(value).upper() not in ISO_CURRENCIES
    if kind == "future_date":
        if isinstance(value, int):
            return value > as_of.timestamp()
        text = str(value)
        if re.fullmatch(r"\d{2}/\d{2}/\d{4}", text):
            text = f"{text[6:]}-{text[:2]}-{text[3:5]}"
        return text[:10] > as_of.date().isoformat()
    if kind == "mojibake":
        return any(marker in str(value) for marker in ("Ã", "â€", "Â"))
    if kind == "invalid_utf8":
        return any("\udc80" <= ch <= "\udcff" for ch in str(value))
    if kind == "injection_sql":
        return bool(re.search(r"(--|'\s*OR\s*'|DROP TABLE|DELETE FROM|UNION SELECT)", str(value)))
    if kind == "injection_formula":
        return str(value)[:1] in "=+-@"
    if kind == "injection_html":
        return "<" in str(value) and ">" in str(value)
    if kind == "oversized":
        return len(str(value)) > 1000
    raise AssertionError(kind)


def test_bad_records_share_and_badness(run: GenerationResult) -> None:
    """About 2 % of eligible records are bad, and each is bad in the field and way the truth names."""
    manifest = run.manifest
    bad = _truth(run.out, "bad_records.csv")
    eligible = manifest["totals"]["bad_eligible_records"]
    assert 0.012 <= len(bad) / eligible <= 0.03
    as_of = datetime.fromisoformat(manifest["as_of"])
    records = _records(run.out)
    by_id = {name: {str(r[ID_FIELD[name]]): r for r in rows} for name, rows in records.items()}
    kinds = Counter()
    for row in bad:
        record = by_id[row["source"]][row["source_record_id"]]
        value = _get(record, row["field"])
        assert _is_bad(row["kind"], value, as_of, row["source"]), row
        kinds[row["kind"]] += 1
    assert set(kinds) >= {
        "invalid_email",
        "malformed_amount",
        "unknown_currency",
        "future_date",
        "mojibake",
        "injection_sql",
        "injection_formula",
        "injection_html",
        "oversized",
    }


def test_good_records_are_not_flagged_bad(run: GenerationResult) -> None:
    """Records outside the bad list pass the same checks (emails valid, amounts well formed)."""
    bad = {(r["source"], r["source_record_id"]) for r in _truth(run.out, "bad_records.csv")}
    for donation in _records(run.out)["donorbox/donations"]:
        if ("donorbox/donations", str(donation["id"])) in bad:
            continue
        assert re.fullmatch(r"\d+(\.\d{2})?", donation["amount"])
        if donation["donor"]["email"]:
            assert EMAIL_RE.fullmatch(donation["donor"]["email"])


def test_windows_1252_export_is_not_utf8(run: GenerationResult) -> None:
    """The bank export decodes as cp1252, and its non-ASCII bytes are not valid UTF-8."""
    raw = (run.out / "csv" / "bank_cheque_export.csv").read_bytes()
    text = raw.decode("cp1252")
    assert "\r\n" in text
    assert any(ord(ch) > 127 for ch in text)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    assert "Donor Name" in rows[0]


def test_event_export_has_invalid_utf8_only_where_listed(run: GenerationResult) -> None:
    """The UTF-8 event export holds invalid bytes exactly in the records listed as invalid_utf8."""
    listed = {
        r["source_record_id"] for r in _truth(run.out, "bad_records.csv") if r["kind"] == "invalid_utf8"
    }
    broken = set()
    for row in _csv(run.out / "csv" / "event_platform_export.csv"):
        if any(_is_bad("invalid_utf8", v, datetime.now()) for v in row.values()):
            broken.add(row["Order ID"])
    assert broken == listed


@pytest.mark.slow
def test_larger_run_stays_consistent(tmp_path: Path) -> None:
    """A 20,000-donor run keeps the truth complete and the shares in range."""
    result = generate(GenerationConfig(donors=20_000, seed=3, out=tmp_path / "big"))
    totals = result.manifest["totals"]
    assert totals["persons"] == 20_000
    assert 0.015 <= totals["bad_records"] / totals["bad_eligible_records"] <= 0.025
    assert (
        sum(v for k, v in result.counts.items() if not k.startswith("truth/"))
        == result.counts["truth/records.csv"]
    )


def test_charge_and_intent_text_match_the_dict_builders() -> None:
    """The fast text rendering of charges and payment intents equals encoding the dict builders' objects."""
    import msgspec
    import numpy as np

    from sandbox.datagen.consent import make_consents
    from sandbox.datagen.gifts import make_gifts
    from sandbox.datagen.noise import make_appearances
    from sandbox.datagen.people import make_persons
    from sandbox.datagen.sources import Renderer, _charge_rows, _intent_rows, charge_and_intent_lines

    n = 2000
    streams = np.random.default_rng(5).spawn(8)
    vocab = load_vocabulary()
    persons = make_persons(streams[0], vocab, n, 0.08, 0.05)
    copies = 1 + np.minimum(streams[1].poisson(0.4, n), 5)
    person_idx = np.repeat(np.arange(n, dtype=np.int64), copies)
    rank = np.arange(len(person_idx), dtype=np.int64) - np.repeat(np.cumsum(copies) - copies, copies)
    app_source = streams[1].choice(5, size=len(person_idx), p=[0.4, 0.25, 0.2, 0.08, 0.07]).astype(np.int64)
    apps = make_appearances(streams[2], vocab, persons, person_idx, rank)
    gifts = make_gifts(streams[3], vocab, apps, app_source, 1_546_300_800, 1_767_139_200, 0.5)
    consents = make_consents(streams[4], gifts, n)
    tables = {t.name: t for t in Renderer(streams[6], persons, apps, gifts, consents, app_source).tables()}
    charges = tables["stripe/charges"]
    c = charges.chunk(0, len(charges))
    lines, intents = charge_and_intent_lines(c, len(charges))
    assert lines == [msgspec.json.encode(obj) for obj in _charge_rows(c, len(charges))]
    assert intents == [msgspec.json.encode(obj) for obj in _intent_rows(c, len(charges))]
    assert any(b'"status":"failed"' in line for line in lines)
    assert any(b'"address":null' in line for line in lines)


def test_campaign_ids_are_one_per_campaign_name(run: GenerationResult) -> None:
    """Donorbox and Classy number campaigns consistently: one id per campaign name, and back."""
    records = _records(run.out)
    ids: dict[str, set[int]] = defaultdict(set)
    for donation in records["donorbox/donations"]:
        campaign = donation["campaign"]
        if isinstance(campaign, dict):
            ids[campaign["name"]].add(campaign["id"])
    assert ids
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len({next(iter(found)) for found in ids.values()}) == len(ids)
