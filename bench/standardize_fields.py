"""Benchmark the field standardizers over N intake rows built from generated sample data.

Run from the repository root: ``.venv/bin/python bench/standardize_fields.py --size 1000000``.

The sample generator writes ~3 gift records per donor across Stripe charges, Donorbox donations,
Classy transactions and the two CSV exports, so the benchmark generates ``size / 3`` donors (not
timed), projects every record into intake columns the way the projection step does (text as
received, one frame per source: :func:`load_intake`), tops the rows up to exactly ``size`` by
re-using records with fresh ids if needed, and then times each standardizer over every source
frame, the way the pipeline calls them (one call per source, the source's own date format and
minor units). It records the time of each function, the total, and the peak memory of the process
(input frames included) and its growth over the loaded frames.

:func:`load_intake` is also used by ``tests/standardize/test_fields_sample.py``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec
import pandas as pd
from _common import add_common_arguments, headline, metric, write_result

RECORDS_PER_DONOR = 3.04
NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: staging limits used for clean_text (characters)
MAX_LENGTHS = {
    "full_name": 300,
    "first_name": 100,
    "last_name": 100,
    "organization_name": 300,
    "address_line1": 200,
    "address_line2": 200,
    "city": 100,
    "comment": 2000,
    "designation": 200,
    "campaign": 200,
}
TEXT_COLUMNS = tuple(MAX_LENGTHS)
#: per source: strftime format of gift_at (None: ISO 8601 / epoch)
DATE_FORMATS: dict[str, str | None] = {
    "stripe/charges": None,
    "donorbox/donations": None,
    "classy/transactions": None,
    "csv/bank_cheque_export": "%m/%d/%Y",
    "csv/event_platform_export": None,
}


def _text(value: Any) -> str | None:
    """Return a JSON value as the text a ``->>`` projection gives (true/false, numbers as written)."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    decoder = msgspec.json.Decoder()
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield decoder.decode(line)


def _frame(rows: list[dict[str, Any]], ids: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype=object)
    frame.insert(0, "source_id", ids)
    return frame


def _stripe(path: Path) -> pd.DataFrame:
    rows, ids = [], []
    for r in _records(path):
        billing = r.get("billing_details") or {}
        address = billing.get("address") or {}
        meta = r.get("metadata") or {}
        ids.append(r["id"])
        rows.append(
            {
                "full_name": billing.get("name"),
                "email": billing.get("email"),
                "phone": billing.get("phone"),
                "address_line1": address.get("line1"),
                "address_line2": address.get("line2"),
                "city": address.get("city"),
                "region": address.get("state"),
                "postal_code": address.get("postal_code"),
                "country": address.get("country"),
                "amount_minor": _text(r.get("amount")),
                "currency": r.get("currency"),
                "gift_at": _text(r.get("created")),
                "landing_url": meta.get("landing_url"),
                "consent_text": meta.get("contact_preferences"),
                "comment": r.get("description"),
                "campaign": meta.get("campaign"),
                "designation": meta.get("designation"),
            }
        )
    return _frame(rows, ids)


def _donorbox(path: Path) -> pd.DataFrame:
    rows, ids = [], []
    for r in _records(path):
        donor = r.get("donor") or {}
        answers = {q.get("question"): q.get("answer") for q in r.get("questions") or []}
        ids.append(str(r["id"]))
        rows.append(
            {
                "full_name": donor.get("name"),
                "first_name": donor.get("first_name"),
                "last_name": donor.get("last_name"),
                "organization_name": r.get("donating_company"),
                "email": donor.get("email"),
                "phone": donor.get("phone"),
                "address_line1": donor.get("address"),
                "address_line2": donor.get("address_line_2"),
                "city": donor.get("city"),
                "region": donor.get("state"),
                "postal_code": donor.get("zip_code"),
                "country": donor.get("country"),
                "amount": _text(r.get("amount")),
                "currency": r.get("currency"),
                "fee_amount": _text(r.get("processing_fee")),
                "gift_at": r.get("donation_date"),
                "utm_source": r.get("utm_source"),
                "utm_medium": r.get("utm_medium"),
                "utm_campaign": r.get("utm_campaign"),
                "utm_term": r.get("utm_term"),
                "utm_content": r.get("utm_content"),
                "email_opt_in": _text(r.get("join_mailing_list")),
                "consent_text": answers.get("Contact preferences"),
                "comment": r.get("comment"),
                "campaign": (r.get("campaign") or {}).get("name"),
                "designation": r.get("designation"),
            }
        )
    return _frame(rows, ids)


def _classy(path: Path) -> pd.DataFrame:
    rows, ids = [], []
    for r in _records(path):
        utm = r.get("utm") or {}
        meta = r.get("metadata") or {}
        ids.append(str(r["id"]))
        rows.append(
            {
                "full_name": r.get("member_name"),
                "first_name": r.get("billing_first_name"),
                "last_name": r.get("billing_last_name"),
                "email": r.get("member_email_address"),
                "phone": r.get("member_phone"),
                "address_line1": r.get("billing_address1"),
                "address_line2": r.get("billing_address2"),
                "city": r.get("billing_city"),
                "region": r.get("billing_state"),
                "postal_code": r.get("billing_postal_code"),
                "country": r.get("billing_country"),
                "amount": _text(r.get("total_gross_amount")),
                "currency": r.get("currency_code"),
                "fee_amount": _text(r.get("fees_amount")),
                "gift_at": r.get("purchased_at"),
                "utm_source": utm.get("source"),
                "utm_medium": utm.get("medium"),
                "utm_campaign": utm.get("campaign"),
                "utm_term": utm.get("term"),
                "utm_content": utm.get("content"),
                "landing_url": meta.get("landing_url"),
                "consent_text": meta.get("contact_preferences"),
                "comment": r.get("comment"),
            }
        )
    return _frame(rows, ids)


_BANK = {
    "Reference": "source_id",
    "Donor Name": "full_name",
    "Address 1": "address_line1",
    "Address 2": "address_line2",
    "City": "city",
    "State/Province": "region",
    "Postcode": "postal_code",
    "Country": "country",
    "Phone": "phone",
    "Email": "email",
    "Amount": "amount",
    "Currency": "currency",
    "Deposit Date": "gift_at",
    "Fund": "designation",
    "Appeal": "campaign",
    "Do Not Mail": "do_not_mail",
    "Do Not Call": "do_not_call",
    "Email Opt Out": "email_opt_out",
    "Deceased": "deceased",
    "Contact Preferences": "consent_text",
}
_EVENT = {
    "Order ID": "source_id",
    "Order Date": "gift_at",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Email Address": "email",
    "Mobile": "phone",
    "Street": "address_line1",
    "Street 2": "address_line2",
    "Town": "city",
    "Region": "region",
    "Zip": "postal_code",
    "Country Code": "country",
    "Event Name": "campaign",
    "Donation Amount": "amount",
    "Currency": "currency",
    "Marketing Opt-In": "email_opt_in",
    "SMS Opt-In": "sms_opt_in",
    "Landing Page": "landing_url",
    "Preferences": "consent_text",
}


def _csv(path: Path, mapping: dict[str, str], encoding: str) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        dtype=object,
        keep_default_na=False,
        na_values=[],
        encoding=encoding,
        encoding_errors="replace",
    )
    frame = frame.rename(columns=mapping)[list(mapping.values())]
    return frame.replace("", None)


def load_intake(out: Path) -> dict[str, pd.DataFrame]:
    """Project a sample-data folder into intake frames, one per source (text as received).

    Columns are pyarrow-backed strings with NA for missing, as the pipeline's projections return
    them (``COPY ... TO STDOUT`` read by pyarrow).
    """
    frames = {
        "stripe/charges": _stripe(out / "stripe" / "charges.jsonl"),
        "donorbox/donations": _donorbox(out / "donorbox" / "donations.jsonl"),
        "classy/transactions": _classy(out / "classy" / "transactions.jsonl"),
        "csv/bank_cheque_export": _csv(out / "csv" / "bank_cheque_export.csv", _BANK, "cp1252"),
        "csv/event_platform_export": _csv(out / "csv" / "event_platform_export.csv", _EVENT, "utf-8-sig"),
    }
    return {name: frame.astype("string[pyarrow]") for name, frame in frames.items()}


def _column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    return frame[name] if name in frame.columns else None


def _top_up(frames: dict[str, pd.DataFrame], size: int) -> dict[str, pd.DataFrame]:
    """Trim or extend the frames to ``size`` rows in total, keeping each source's share."""
    total = sum(len(f) for f in frames.values())
    out: dict[str, pd.DataFrame] = {}
    remaining = size
    names = list(frames)
    for i, name in enumerate(names):
        frame = frames[name]
        want = remaining if i == len(names) - 1 else round(size * len(frame) / total)
        remaining -= want
        if want <= len(frame):
            frame = frame.iloc[:want]
        else:
            repeats = -(-want // len(frame))
            frame = pd.concat([frame] * repeats, ignore_index=True).iloc[:want]
        out[name] = frame.reset_index(drop=True)
    return out


def steps(config: Any) -> list[tuple[str, Callable[[str, pd.DataFrame], Any]]]:
    """Return the standardizers as the pipeline calls them, per source frame."""
    from donor_sync.standardize import fields as f

    def text(_source: str, frame: pd.DataFrame) -> Any:
        return f.clean_text(frame[[c for c in TEXT_COLUMNS if c in frame.columns]], MAX_LENGTHS)

    def names(_source: str, frame: pd.DataFrame) -> Any:
        return f.standardize_names(
            _column(frame, "full_name"),
            _column(frame, "first_name"),
            _column(frame, "last_name"),
            organization_name=_column(frame, "organization_name"),
        )

    def emails(_source: str, frame: pd.DataFrame) -> Any:
        return f.normalize_emails(frame["email"])

    def addresses(_source: str, frame: pd.DataFrame) -> Any:
        result = f.normalize_addresses(
            frame["address_line1"],
            frame["address_line2"],
            frame["city"],
            frame["region"],
            frame["postal_code"],
            frame["country"],
        )
        frame["_country_code"] = result.values["country_code"]
        return result

    def phones(_source: str, frame: pd.DataFrame) -> Any:
        return f.to_e164(frame["phone"], frame["_country_code"])

    def amounts(_source: str, frame: pd.DataFrame) -> Any:
        main = f.parse_amounts(_column(frame, "amount"), _column(frame, "amount_minor"), frame["currency"])
        if "fee_amount" in frame.columns:
            f.parse_optional_amounts(frame["fee_amount"], None, frame["currency"], field="fee_amount")
        return main

    def timestamps(source: str, frame: pd.DataFrame) -> Any:
        return f.parse_timestamps(
            frame["gift_at"], fmt=DATE_FORMATS[source], timezone="America/New_York", now=NOW
        )

    def utm(_source: str, frame: pd.DataFrame) -> Any:
        explicit = frame[[c for c in frame.columns if c.startswith("utm_")]]
        return f.extract_utm(explicit, _column(frame, "landing_url"), None, config)

    def flags(_source: str, frame: pd.DataFrame) -> Any:
        columns = [
            c
            for c in ("email_opt_in", "sms_opt_in", "email_opt_out", "do_not_mail", "do_not_call", "deceased")
            if c in frame.columns
        ]
        return f.parse_flag_fields(frame[columns])

    def consent(_source: str, frame: pd.DataFrame) -> Any:
        return f.parse_consent_field(frame["consent_text"])

    return [
        ("clean_text", text),
        ("standardize_names", names),
        ("normalize_emails", emails),
        ("normalize_addresses", addresses),
        ("to_e164", phones),
        ("parse_amounts", amounts),
        ("parse_timestamps", timestamps),
        ("extract_utm", utm),
        ("parse_flag_fields", flags),
        ("parse_consent_field", consent),
    ]


def _rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


class PeakRss(threading.Thread):
    """Sample this process's resident memory every ``interval`` seconds and keep the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        """Start sampling."""
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.done.is_set():
            self.peak = max(self.peak, _rss_gib())
            self.done.wait(self.interval)

    def stop(self) -> float:
        """Stop and return the peak in GiB."""
        self.done.set()
        self.join()
        return max(self.peak, _rss_gib())


#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 5_000
#: The README table's row.
HEADLINES = [
    headline(
        "field standardizers alone over {rows:,} rows",
        "{total_time} s ({total_cpu_time} s CPU), {peak_rss} GiB peak RSS ({input_frames} GiB of it the"
        " input frames)",
        ["total_time", "peak_rss"],
    )
]


def main() -> int:
    """Generate, project, then time every standardizer over ``--size`` rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.standardize.fields import load_utm_config
    from sandbox.datagen import GenerationConfig, generate

    donors = max(10, round(args.size / RECORDS_PER_DONOR))
    with tempfile.TemporaryDirectory(prefix="standardize-bench-") as tmp:
        began = time.perf_counter()
        generate(GenerationConfig(donors=donors, seed=args.seed, out=Path(tmp) / "out"))
        generated = time.perf_counter() - began
        began = time.perf_counter()
        frames = _top_up(load_intake(Path(tmp) / "out"), args.size)
        loaded = time.perf_counter() - began
    rows = {name: len(frame) for name, frame in frames.items()}
    frames_gib = sum(int(f.memory_usage(deep=True).sum()) for f in frames.values()) / 1024**3
    config = load_utm_config()
    gc.collect()
    baseline = _rss_gib()
    sampler = PeakRss()
    sampler.start()
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    issues: dict[str, int] = {}
    wall_began, cpu_began = time.perf_counter(), time.process_time()
    for name, step in steps(config):
        began, cpu_start = time.perf_counter(), time.process_time()
        count = 0
        for source, frame in frames.items():
            count += len(step(source, frame).issues)
        timings[name] = time.perf_counter() - began
        cpu[name] = time.process_time() - cpu_start
        issues[name] = count
        print(f"{name:22s} {timings[name]:7.2f} s wall {cpu[name]:7.2f} s cpu {count:>9,} issues", flush=True)
    total = time.perf_counter() - wall_began
    total_cpu = time.process_time() - cpu_began
    load = Path("/proc/loadavg").read_text().split()[0]
    peak = sampler.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    metrics = [
        metric("total_time", round(total, 2), "s", goal="well under 60", load_average_after=float(load)),
        metric("total_cpu_time", round(total_cpu, 2), "s", note="process CPU time: robust to other load"),
        *(
            metric(f"time_{name}", round(seconds, 2), "s", cpu_s=round(cpu[name], 2), issues=issues[name])
            for name, seconds in timings.items()
        ),
        metric(
            "peak_rss", round(peak, 3), "GiB", goal="well under 4", note="sampled every 50 ms while timing"
        ),
        metric("input_frames", round(frames_gib, 3), "GiB", note="the intake frames themselves (pyarrow)"),
        metric(
            "rss_with_input_frames",
            round(baseline, 3),
            "GiB",
            note="before the first standardizer (frames plus what projecting the sample left in the heap)",
        ),
        metric("peak_rss_growth", round(peak - baseline, 3), "GiB", note="peak minus the loaded frames"),
        metric(
            "ru_maxrss", round(max_rss, 3), "GiB", note="whole run, including projecting the sample files"
        ),
        metric("rows", sum(rows.values()), "rows", per_source=rows),
        metric("sample_generation_time", round(generated, 1), "s", note="not part of the total"),
        metric("projection_time", round(loaded, 1), "s", note="not part of the total"),
    ]
    path = write_result(
        "standardize_fields",
        {"size": args.size, "seed": args.seed, "donors": donors, "cpu_bound_processes": 1},
        metrics,
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(f"{args.size:,} rows: {total:.1f} s, peak RSS {peak:.2f} GiB (frames {baseline:.2f} GiB): {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
