"""Run the whole generation: persons, appearances, gifts, consents, source files, bad records, truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.datagen.arrays import STR, StrArray, cat, iso_date, iso_ms, to_str
from sandbox.datagen.bad_records import inject
from sandbox.datagen.config import GENERATOR_VERSION, GenerationConfig, GenerationResult
from sandbox.datagen.consent import make_consents
from sandbox.datagen.gifts import SOURCES, make_gifts
from sandbox.datagen.noise import make_appearances
from sandbox.datagen.people import make_persons
from sandbox.datagen.sources import Renderer, decimal_strings
from sandbox.datagen.tables import Gather, Lazy, SourceTable
from sandbox.datagen.vocab import STREET_TYPES, load_vocabulary
from sandbox.datagen.writer import write_csv, write_json, write_tables, write_tables_parallel

DAY = 86_400


def write_records(
    path: Path, tables: list[SourceTable], person_id: StrArray, app_id: StrArray, gift_id: StrArray
) -> int:
    """Write truth/records.csv table by table: source, record id, person, appearance, gift."""
    path.parent.mkdir(parents=True, exist_ok=True)
    none = np.asarray("", dtype=STR)
    total = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("source,source_record_id,person_id,appearance_id,gift_id\n")
        for table in tables:
            step = 50_000
            for lo in range(0, len(table), step):
                sl = slice(lo, lo + step)
                gift = table.gift[sl]
                cells = zip(
                    table.ids[sl].tolist(),
                    person_id[table.person[sl]].tolist(),
                    app_id[table.appearance[sl]].tolist(),
                    np.where(gift >= 0, gift_id[np.maximum(gift, 0)], none).tolist(),
                    strict=True,
                )
                prefix = table.name + ","
                handle.write("".join([f"{prefix}{r},{p},{a},{g}\n" for r, p, a, g in cells]))
            total += len(table)
    return total


def _true_false(mask: np.ndarray) -> StrArray:
    out: StrArray = np.where(mask, "true", "false").astype(STR)
    return out


def _installment(recurring: np.ndarray, installment: np.ndarray) -> StrArray:
    out: StrArray = np.where(recurring, to_str(installment), np.asarray("", dtype=STR)).astype(STR)
    return out


def _status(failed: np.ndarray, refund_minor: np.ndarray, amount_minor: np.ndarray) -> StrArray:
    out: StrArray = np.where(
        failed, "failed", np.where(refund_minor >= amount_minor, "refunded", "succeeded")
    ).astype(STR)
    return out


def generate(config: GenerationConfig) -> GenerationResult:  # noqa: PLR0915 - the pipeline, in order
    """Generate the sample data described by ``config`` into ``config.out``."""
    began = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    streams = np.random.default_rng(config.seed).spawn(8)
    vocab = load_vocabulary()
    start, as_of = int(config.start.timestamp()), int(config.as_of.timestamp())
    n = config.donors

    persons = make_persons(streams[0], vocab, n, config.household_share, config.household_shared_email_share)
    rng = streams[1]
    copies = 1 + np.minimum(rng.poisson(config.duplicate_rate, n), 5)
    person_idx = np.repeat(np.arange(n, dtype=np.int64), copies)
    rank = np.arange(len(person_idx), dtype=np.int64) - np.repeat(np.cumsum(copies) - copies, copies)
    weights = np.array([config.source_weights[s] for s in SOURCES], dtype=np.float64)
    app_source = rng.choice(len(SOURCES), size=len(person_idx), p=weights / weights.sum()).astype(np.int64)
    apps = make_appearances(streams[2], vocab, persons, person_idx, rank)
    gifts = make_gifts(streams[3], vocab, apps, app_source, start, as_of, config.link_share)
    consents = make_consents(streams[4], gifts, n)

    # Deceased donors die after their last gift.
    last_gift = np.full(n, start, dtype=np.int64)
    np.maximum.at(last_gift, gifts["person_idx"], gifts["ts"])
    death = np.minimum(last_gift + streams[5].integers(30, 400, n) * DAY, as_of - DAY)

    renderer = Renderer(streams[6], persons, apps, gifts, consents, app_source)
    tables = renderer.tables()
    bad: list[tuple[str, str, str, str]] = []
    eligible = 0
    for table in tables:
        if table.bad_eligible:
            eligible += len(table)
            bad.extend(inject(streams[7], table, config.bad_share, as_of))

    counts: dict[str, int] = {}
    wait = None
    if config.workers > 1 and n >= 5_000:
        wait = write_tables_parallel(out, tables, config.chunk_size, config.workers)
    else:
        counts.update(write_tables(out, tables, config.chunk_size))

    truth = out / "truth"
    person_id = persons["person_id"]
    app_id = cat("A", to_str(np.arange(len(person_idx)), 9))
    gift_id = gifts["gift_id"]
    none = np.asarray("", dtype=STR)

    full_type = np.array([t[0] for t in STREET_TYPES], dtype=STR)[persons["street_type"]]
    street = cat(to_str(persons["street_number"]), " ", persons["street_name"], " ", full_type)
    household_id = np.where(persons["household"] >= 0, cat("H", to_str(persons["household"], 8)), none)
    counts["truth/persons.csv"] = write_csv(
        truth / "persons.csv",
        (
            "person_id",
            "first_name",
            "last_name",
            "gender",
            "email",
            "phone",
            "street",
            "unit",
            "city",
            "state",
            "postal_code",
            "country",
            "household_id",
            "household_role",
            "employer",
            "occupation",
            "deceased",
            "deceased_date",
            "do_not_contact",
        ),
        [
            person_id,
            persons["first_name"],
            persons["last_name"],
            persons["gender"],
            persons["email"],
            persons["phone"],
            street,
            persons["unit"],
            persons["city"],
            persons["state"],
            persons["postal_code"],
            persons["country"],
            household_id,
            persons["household_role"],
            persons["employer"],
            persons["occupation"],
            np.where(persons["deceased"], "true", "false"),
            np.where(persons["deceased"], iso_date(death), none),
            np.where(persons["do_not_contact"], "true", "false"),
        ],
    )
    in_household = np.flatnonzero(persons["household"] >= 0)
    order = in_household[
        np.lexsort((persons["household_role"][in_household] != "head", persons["household"][in_household]))
    ]
    counts["truth/households.csv"] = write_csv(
        truth / "households.csv",
        ("household_id", "person_id", "role"),
        [household_id[order], person_id[order], persons["household_role"][order]],
    )
    counts["truth/appearances.csv"] = write_csv(
        truth / "appearances.csv",
        ("appearance_id", "person_id", "source", "rank", "noise"),
        [
            app_id,
            Gather(person_id, person_idx),
            Gather(np.array(SOURCES, dtype=STR), app_source),
            rank,
            apps["noise"],
        ],
    )
    counts["truth/records.csv"] = write_records(truth / "records.csv", tables, person_id, app_id, gift_id)
    counts["truth/gifts.csv"] = write_csv(
        truth / "gifts.csv",
        (
            "gift_id",
            "person_id",
            "appearance_id",
            "source",
            "source_record_id",
            "created",
            "currency",
            "amount_minor",
            "amount",
            "recurring",
            "installment",
            "status",
            "refunded_minor",
            "campaign",
            "designation",
            "tribute_type",
            "honoree",
            "landing_url",
        ),
        [
            gift_id,
            Gather(person_id, gifts["person_idx"]),
            Gather(app_id, gifts["appearance"]),
            renderer.gift_record_source,
            renderer.gift_record,
            Lazy(iso_ms, gifts["ts"]),
            gifts["currency"],
            gifts["amount_minor"],
            Lazy(decimal_strings, gifts["amount_minor"], gifts["exponent"]),
            Lazy(_true_false, gifts["recurring"]),
            Lazy(_installment, gifts["recurring"], gifts["installment"]),
            Lazy(_status, gifts["failed"], gifts["refund_minor"], gifts["amount_minor"]),
            gifts["refund_minor"],
            gifts["campaign"],
            gifts["designation"],
            gifts["tribute_type"],
            gifts["honoree"],
            gifts["landing_url"],
        ],
    )
    links = renderer.links
    counts["truth/gift_links.csv"] = write_csv(
        truth / "gift_links.csv",
        ("gift_id", "person_id", "stripe_charge_id", "other_source", "other_record_id"),
        [
            gift_id[links["gift"]],
            person_id[gifts["person_idx"][links["gift"]]],
            links["charge"],
            links["other_source"],
            links["other_id"],
        ],
    )
    counts["truth/consents.csv"] = write_csv(
        truth / "consents.csv",
        (
            "person_id",
            "channel",
            "purpose",
            "status",
            "lawful_basis",
            "captured_at",
            "source",
            "source_record_id",
        ),
        [
            Gather(person_id, consents["person_idx"]),
            consents["channel"],
            consents["purpose"],
            consents["status"],
            consents["basis"],
            Lazy(iso_ms, consents["ts"]),
            Gather(renderer.gift_record_source, consents["gift"]),
            Gather(renderer.gift_record, consents["gift"]),
        ],
    )
    if wait is not None:
        counts = {**wait(), **counts}
    bad_cols = [list(col) for col in zip(*bad, strict=True)] if bad else [[], [], [], []]
    counts["truth/bad_records.csv"] = write_csv(
        truth / "bad_records.csv", ("source", "source_record_id", "field", "kind"), bad_cols
    )

    manifest: dict[str, Any] = {
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "donors": n,
        "as_of": config.as_of.isoformat(),
        "config": {k: v for k, v in config.to_json().items() if k != "out"},
        "counts": counts,
        "totals": {
            "persons": n,
            "appearances": len(person_idx),
            "gifts": len(gift_id),
            "households": len(np.unique(persons["household"][in_household])),
            "gift_links": len(links["gift"]),
            "bad_records": len(bad),
            "bad_eligible_records": eligible,
        },
        "bad_eligible_sources": sorted(t.name for t in tables if t.bad_eligible),
    }
    write_json(out / "truth" / "manifest.json", manifest)
    return GenerationResult(out=out, manifest=manifest, seconds=time.perf_counter() - began)
