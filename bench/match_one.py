"""Benchmark incremental matching: ONE new donor record against N golden records (issue 5: < 50 ms at 1M).

Setup (not timed): N synthetic golden records (realistic names with skewed frequencies, emails,
phones, addresses over a few hundred cities) are COPYed into core.donors of the benchmark's own
database, and their blocking keys are computed by the engine (``match_store.long_keys``, in
chunks) and loaded into core.donor_match_keys with COPY, the indexes built afterwards.

Timed: :func:`donor_sync.resolve.donors.match_record` per probe -- prepare the record, hash and look
its keys up in core.donor_match_keys, read the candidate golden records, score them with the
engine -- over a few hundred probes: perturbed copies of existing records (a first-name typo or
nickname, another email, a dropped phone) and strangers. Reported: median, p95 and max latency,
candidates per probe, and how often a perturbed copy finds its original as the strongest link.

Run from the repository root: ``.venv/bin/python bench/match_one.py --size 1000000``.
CI never runs it.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, bench_url, headline, metric, write_result

FIRST = [
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "christopher",
    "lisa",
    "daniel",
    "nancy",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "carol",
    "kevin",
    "amanda",
    "brian",
    "dorothy",
    "george",
    "melissa",
    "timothy",
    "deborah",
    "ronald",
    "stephanie",
    "edward",
    "rebecca",
    "jason",
    "sharon",
    "jeffrey",
    "laura",
    "ryan",
    "cynthia",
    "jacob",
    "kathleen",
    "gary",
    "amy",
    "nicholas",
    "angela",
    "eric",
    "shirley",
    "jonathan",
    "anna",
    "stephen",
    "brenda",
    "larry",
    "pamela",
    "justin",
    "emma",
    "scott",
    "nicole",
    "brandon",
    "helen",
    "benjamin",
    "samantha",
    "samuel",
    "katherine",
    "gregory",
    "christine",
    "alexander",
    "debra",
    "frank",
    "rachel",
    "patrick",
    "carolyn",
    "raymond",
    "janet",
    "jack",
    "catherine",
    "dennis",
    "maria",
    "jerry",
    "heather",
    "tyler",
    "diane",
    "aaron",
    "ruth",
    "jose",
    "julie",
    "adam",
    "olivia",
    "nathan",
    "joyce",
    "henry",
    "virginia",
    "douglas",
    "victoria",
    "zachary",
    "kelly",
    "peter",
    "lauren",
    "kyle",
    "christina",
    "ethan",
    "joan",
    "walter",
    "evelyn",
    "noah",
    "judith",
    "jeremy",
    "megan",
    "christian",
    "andrea",
    "keith",
    "cheryl",
    "roger",
    "hannah",
    "terry",
    "jacqueline",
    "gerald",
    "martha",
    "harold",
    "gloria",
    "sean",
    "teresa",
    "austin",
    "ann",
    "carl",
    "sara",
    "arthur",
    "madison",
    "lawrence",
    "frances",
    "dylan",
    "kathryn",
    "jesse",
    "janice",
    "jordan",
    "jean",
    "bryan",
    "abigail",
    "billy",
    "alice",
    "joe",
    "judy",
    "bruce",
    "sophia",
    "gabriel",
    "grace",
    "logan",
    "denise",
    "albert",
    "amber",
    "willie",
    "doris",
    "alan",
    "marilyn",
    "juan",
    "danielle",
    "wayne",
    "beverly",
    "elijah",
    "isabella",
    "randy",
    "theresa",
    "roy",
    "diana",
    "vincent",
    "natalie",
    "ralph",
    "brittany",
    "eugene",
    "charlotte",
    "russell",
    "marie",
    "bobby",
    "kayla",
    "mason",
    "alexis",
    "philip",
    "lori",
    "louis",
]
NICK = {
    "robert": "bob",
    "william": "bill",
    "james": "jim",
    "elizabeth": "liz",
    "margaret": "peggy",
    "richard": "dick",
    "katherine": "kate",
    "michael": "mike",
    "jennifer": "jen",
    "thomas": "tom",
}
SYLLABLES_A = [
    "smi",
    "th",
    "john",
    "son",
    "wil",
    "liam",
    "brow",
    "n",
    "jo",
    "nes",
    "gar",
    "cia",
    "mil",
    "ler",
    "da",
    "vis",
    "rod",
    "ri",
    "guez",
    "mar",
    "tin",
    "hern",
    "an",
    "dez",
    "lo",
    "pez",
    "gon",
    "za",
    "lez",
    "wil",
    "son",
    "and",
    "er",
    "son",
    "tho",
    "mas",
    "tay",
    "lor",
    "moo",
    "re",
    "jack",
    "son",
    "lee",
    "per",
    "ez",
    "whi",
    "te",
    "har",
    "ris",
    "san",
    "chez",
    "cla",
    "rk",
    "ram",
    "i",
    "rez",
    "lew",
    "is",
    "rob",
    "in",
    "son",
    "wal",
    "ker",
    "you",
    "ng",
    "al",
    "len",
    "king",
    "wri",
    "ght",
    "sco",
    "tt",
    "tor",
    "res",
    "ngu",
    "yen",
    "hil",
    "l",
    "flo",
    "res",
    "gre",
    "en",
    "ad",
    "ams",
    "nel",
    "son",
    "bak",
    "er",
    "hal",
    "l",
    "riv",
    "era",
    "cam",
    "pb",
    "ell",
    "mit",
    "ch",
    "ell",
    "car",
    "ter",
]
STREETS = [
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Walnut",
    "Spring",
    "North",
    "Ridge",
    "Church",
    "Willow",
    "Mill",
    "Sunset",
    "Railroad",
    "Jackson",
    "Cherry",
    "Highland",
    "Franklin",
    "Lincoln",
    "Madison",
    "Center",
    "River",
    "Chestnut",
    "Union",
    "Forest",
    "Meadow",
    "Prospect",
    "Spruce",
    "Adams",
    "Jefferson",
    "Broad",
    "Market",
    "Water",
    "Green",
]
SUFFIX = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Pl", "Way", "Blvd")
DOMAINS = (
    "gmail.example.com",
    "yahoo.example.com",
    "outlook.example.com",
    "comcast.example.net",
    "icloud.example.com",
    "aol.example.com",
    "proton.example.org",
)
STATES = [
    "CA",
    "TX",
    "FL",
    "NY",
    "PA",
    "IL",
    "OH",
    "GA",
    "NC",
    "MI",
    "NJ",
    "VA",
    "WA",
    "AZ",
    "MA",
    "TN",
    "IN",
    "MO",
    "MD",
    "WI",
    "CO",
    "MN",
    "SC",
    "AL",
    "LA",
    "KY",
    "OR",
    "OK",
    "CT",
    "UT",
    "IA",
    "NV",
    "AR",
    "MS",
    "KS",
    "NM",
    "NE",
    "ID",
    "WV",
    "HI",
    "NH",
    "ME",
    "MT",
    "RI",
    "DE",
    "SD",
    "ND",
    "AK",
    "VT",
    "WY",
    "DC",
]


def surnames(rng: np.random.Generator, count: int) -> np.ndarray:
    """Return ``count`` distinct made-up surnames (two or three syllables)."""
    found: set[str] = set()
    while len(found) < count:
        parts = rng.choice(SYLLABLES_A, size=(count, 3))
        three = rng.random(count) < 0.4
        for row, long in zip(parts.tolist(), three.tolist(), strict=True):
            found.add("".join(row if long else row[:2]).capitalize())
    return np.array(sorted(found)[:count], dtype=object)


def synthesize(size: int, seed: int) -> pd.DataFrame:
    """Return ``size`` golden records with Zipf-skewed names and places."""
    rng = np.random.default_rng(seed)
    last_pool = surnames(rng, 40_000)
    zipf_last = np.minimum(rng.zipf(1.3, size) - 1, len(last_pool) - 1)
    zipf_first = np.minimum(rng.zipf(1.4, size) - 1, len(FIRST) - 1)
    first = np.array([f.capitalize() for f in FIRST], dtype=object)[zipf_first]
    last = last_pool[zipf_last]
    n_cities = 600
    city_names = np.array(
        [
            f"{c}{s}"
            for c, s in zip(
                rng.choice(surnames(rng, n_cities), n_cities),
                rng.choice(["ville", "ton", " City", "burg", " Falls", "field"], n_cities),
                strict=True,
            )
        ],
        dtype=object,
    )
    city_state = rng.choice(np.array(STATES, dtype=object), n_cities)
    city_zip = rng.integers(1000, 99000, n_cities)
    city = np.minimum(rng.zipf(1.2, size) - 1, n_cities - 1)
    number = rng.integers(1, 9999, size)
    street = np.array(STREETS, dtype=object)[rng.integers(0, len(STREETS), size)]
    suffix = np.array(SUFFIX, dtype=object)[rng.integers(0, len(SUFFIX), size)]
    has_email = rng.random(size) < 0.8
    has_phone = rng.random(size) < 0.6
    domain = np.array(DOMAINS, dtype=object)[rng.integers(0, len(DOMAINS), size)]
    ids = np.arange(size)
    email = np.where(
        has_email,
        pd.Series(first).str.lower()
        + "."
        + pd.Series(last).str.lower()
        + pd.Series(ids).astype(str)
        + "@"
        + domain,
        None,
    )
    phone = np.where(
        has_phone,
        "+1"
        + pd.Series(rng.integers(201, 989, size)).astype(str)
        + pd.Series(rng.integers(2_000_000, 9_999_999, size)).astype(str),
        None,
    )
    zips = pd.Series(city_zip[city] + rng.integers(0, 30, size)).astype(str).str.zfill(5)
    return pd.DataFrame(
        {
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "address_line1": pd.Series(number).astype(str) + " " + street + " " + suffix,
            "city": city_names[city],
            "region": city_state[city],
            "postal_code": zips,
            "country_code": "US",
            "address_validated": True,
        }
    )


def seed(conn: Any, golden: pd.DataFrame, rules: Any, chunk: int) -> tuple[dict[str, float], np.ndarray]:
    """COPY the golden records and their match keys (indexes built after); return timings and donor ids."""
    from donor_sync.identity import prepare
    from donor_sync.resolve import match_store

    timings: dict[str, float] = {}
    start = time.perf_counter()
    ids = conn.execute(
        "SELECT gen_random_uuid()::text FROM generate_series(1, %s)", (len(golden),)
    ).fetchall()
    golden = golden.assign(donor_id=[r[0] for r in ids])
    columns = ["donor_id", *[c for c in golden.columns if c != "donor_id"]]
    buffer = io.StringIO()
    golden[columns].to_csv(buffer, index=False, header=False)
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY core.donors ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy,
    ):
        copy.write(buffer.getvalue())
    timings["copy_donors_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    conn.execute("DROP INDEX core.donor_match_keys_lookup_idx")
    conn.execute("ALTER TABLE core.donor_match_keys DROP CONSTRAINT donor_match_keys_pkey")
    conn.execute("CREATE UNLOGGED TABLE bench_keys (donor_id uuid, pass smallint, key text)")
    keys_total = 0
    for at in range(0, len(golden), chunk):
        part = golden.iloc[at : at + chunk].reset_index(drop=True)
        prepared = prepare(match_store.identity_frame(part), nicknames=rules.nicknames)
        keys = match_store.long_keys(prepared, rules.dedup)
        out = pd.DataFrame(
            {
                "donor_id": part["donor_id"].to_numpy()[keys["row"].to_numpy()],
                "pass": keys["pass"],
                "key": keys["key"],
            }
        )
        buffer = io.StringIO()
        out.to_csv(buffer, index=False, header=False)
        with conn.cursor() as cur, cur.copy("COPY bench_keys FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())
        keys_total += len(out)
        print(f"  keys: {at + len(part):,} records", flush=True)
    timings["compute_and_copy_keys_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    conn.execute(
        "INSERT INTO core.donor_match_keys (donor_id, pass, key_hash)"
        " SELECT donor_id, pass, hashtextextended(key, 0) FROM bench_keys"
    )
    conn.execute("DROP TABLE bench_keys")
    conn.execute(
        "CREATE TABLE bench_order AS SELECT ord::int - 1 AS row, id AS donor_id FROM unnest(%s::uuid[])"
        " WITH ORDINALITY AS t(id, ord)",
        (golden["donor_id"].tolist(),),
    )
    conn.execute("ALTER TABLE core.donor_match_keys ADD PRIMARY KEY (donor_id, pass)")
    conn.execute(
        "CREATE INDEX donor_match_keys_lookup_idx ON core.donor_match_keys (pass, key_hash) INCLUDE"
        " (donor_id)"
    )
    conn.execute(
        "INSERT INTO core.donor_match_keys_version (rules_version) VALUES (%s)",
        (match_store.blocking_version(rules.dedup),),
    )
    conn.commit()
    timings["hash_and_index_keys_s"] = round(time.perf_counter() - start, 2)
    timings["key_rows"] = keys_total
    return timings, golden["donor_id"].to_numpy(dtype=object)


def probes(golden: pd.DataFrame, count: int, seed_value: int) -> list[tuple[dict[str, Any], int | None]]:
    """Return ``count`` probes: (record, row of its original or None for a stranger)."""
    rng = np.random.default_rng(seed_value + 1)
    strangers = synthesize(count, seed_value + 99)
    out: list[tuple[dict[str, Any], int | None]] = []
    for i in range(count):
        if i % 3 == 2:
            out.append((strangers.iloc[i].to_dict(), None))
            continue
        row = int(rng.integers(0, len(golden)))
        record = golden.iloc[row].to_dict()
        kind = i % 4
        first = str(record["first_name"])
        if kind == 0:
            record["email"] = f"{first.lower()}{i}@work.example.org"
        elif kind == 1:
            record["first_name"] = NICK.get(first.lower(), first[:-1] + first[-1] * 2).capitalize()
            record["phone"] = None
        elif kind == 2:
            record["first_name"] = first[0] + first[2] + first[1] + first[3:] if len(first) > 3 else first
        else:
            record["address_line1"] = str(record["address_line1"]).replace(" St", " Street")
            record["email"] = None
        out.append((record, row))
    return out


#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 2_000
#: The README table's row.
HEADLINES = [
    headline(
        "matching one new donor against {p.size:,} golden records (stored blocking keys, scored by the"
        " engine with the active match model and the name-part guards)",
        "{median_latency} ms median, {p95_latency} ms p95, {max_latency} ms max over {p.probes} probes;"
        " {perturbed_copies_found:.0%} of perturbed copies find their original",
        ["median_latency"],
    )
]


def main() -> int:
    """Seed N golden records, time a few hundred single-record matches, write the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="golden records (default 1,000,000)")
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the seeded database of an earlier run with the same size and seed",
    )
    add_common_arguments(parser)
    args = parser.parse_args()

    from donor_sync.db import connect, drop_database, ensure_database
    from donor_sync.db.migrations import upgrade
    from donor_sync.resolve.donors import load_resolve_rules, match_record

    url = bench_url(f"donor_sync_bench_match_one_{args.size}_{args.seed}")
    rules = load_resolve_rules()
    print(f"synthesizing {args.size:,} golden records", flush=True)
    golden = synthesize(args.size, args.seed)
    reuse = False
    if args.reuse:
        try:
            with connect(url) as conn:
                rows = conn.execute("SELECT donor_id::text FROM bench_order ORDER BY row").fetchall()
            reuse = len(rows) == args.size
        except Exception:
            reuse = False
    if not reuse:
        drop_database(url)
        ensure_database(url)
        upgrade(url)
    with connect(url) as conn:
        if reuse:
            setup: dict[str, float] = {"reused_seeded_database": 1}
            golden_ids = np.array([r[0] for r in rows], dtype=object)
        else:
            setup, golden_ids = seed(conn, golden, rules, args.chunk)
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE core.donors")
        conn.execute("VACUUM ANALYZE core.donor_match_keys")
        conn.autocommit = False
        print(f"seeded: {setup}", flush=True)
        probe_list = probes(golden, args.probes, args.seed)
        for record, _ in probe_list[:10]:  # warm the caches and the nickname table
            match_record(conn, record, rules=rules)
        latencies: list[float] = []
        candidates: list[int] = []
        found = originals = 0
        for record, row in probe_list:
            start = time.perf_counter()
            scored = match_record(conn, record, rules=rules)
            latencies.append((time.perf_counter() - start) * 1000)
            candidates.append(len(scored))
            if row is not None:
                originals += 1
                found += int(
                    len(scored) > 0
                    and scored["donor_id"].iat[0] == golden_ids[row]
                    and str(scored["band"].iat[0]) in ("auto_merge", "review")
                )
        conn.rollback()
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(latencies)
    print(
        f"{len(latencies)} probes against {args.size:,} golden records: median {median:.1f} ms, p95"
        f" {p95:.1f} ms,"
        f" max {ordered[-1]:.1f} ms; candidates per probe median {statistics.median(candidates):.0f};"
        f" originals found {found}/{originals}"
    )
    path = write_result(
        "match_one",
        {"size": args.size, "probes": len(latencies), "seed": args.seed},
        [
            metric("median_latency", round(median, 2), "ms", goal="< 50"),
            metric("p95_latency", round(p95, 2), "ms"),
            metric("max_latency", round(ordered[-1], 2), "ms"),
            metric("candidates_per_probe_median", float(statistics.median(candidates)), "count"),
            metric("perturbed_copies_found", round(found / max(originals, 1), 4), "share"),
            *[metric(k, float(v), "s" if k.endswith("_s") else "count") for k, v in setup.items()],
        ],
        headlines=HEADLINES,
        results_dir=args.results_dir,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
