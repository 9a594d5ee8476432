"""Benchmark staging CSV rows into Postgres: our CSV drop loader beside psql \\copy and pandas.to_sql.

Run from the repository root: ``.venv/bin/python bench/staging_copy.py --size 1000000``.

A bank-cheque export of ``--size`` rows (Windows-1252, CRLF, the sample generator's rows repeated
with unique references) is staged in a database of its own (``donor_sync_bench_staging_copy`` on
``$DONOR_SYNC_DB_URL``'s server, else 127.0.0.1:5432), each path in its own process so its peak
RSS is its own, after a TRUNCATE and a CHECKPOINT so each starts from the same state. The machine
is small and shared, so each timed path runs ``--repeats`` times, interleaved, and the median is
reported (every run's time is in the result too):

1. ``ours``: ``load_drop_folder`` on a drop folder holding the file: readiness, hash, strict
   decoding and transcoding to UTF-8, the checks that Postgres reads the file as Python's csv
   module would, ``COPY ... (FORMAT csv)`` into the file's own table ``raw.csv_file_<id>`` (row
   ids from raw.records' sequence, row numbers, the id column in source_id, a block-range index),
   the raw.csv_files and raw.batches rows, commit, archive.
2. ``ours_row_by_row``: the same loader forced onto its careful path (the csv module parses, one
   ``write_row`` per row), which files with invalid bytes or ambiguous quoting take.
3. ``psql_copy``: ``psql \\copy`` of the same file into a plain table of one text column per header
   (Postgres parses the CSV and transcodes from WIN1252): the floor for getting the bytes in.
4. ``pandas_to_sql``: ``pandas.read_csv(dtype=str).to_sql(...)`` through SQLAlchemy (default
   ``method`` and ``chunksize``) into a new table of text columns, on the first ``--to-sql-size``
   rows, extrapolated linearly to ``--size`` (said so in the result).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_common_arguments, comparison, headline, metric, write_result

BENCH_DB = "donor_sync_bench_staging_copy"
FORMAT = "bank_cheque_export"
#: The size ``donor-sync bench --ci`` runs it at.
CI_SIZE = 2_000


def _server_url() -> str:
    return os.environ.get("DONOR_SYNC_DB_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def make_file(path: Path, rows: int, workdir: Path, sample: Path | None = None) -> int:
    """Write a bank-cheque export of ``rows`` rows: the generator's rows repeated, references unique.

    :param sample: a generator output folder to take the rows from (default: 20,000 donors
        generated into ``workdir``).
    """
    from sandbox.datagen import GenerationConfig, generate

    if sample is None:
        sample = workdir / "sample"
        generate(GenerationConfig(donors=20_000, seed=11, out=sample))
    with (sample / "csv" / f"{FORMAT}.csv").open(encoding="cp1252", newline="") as handle:
        header, *body = list(csv.reader(handle))
    with path.open("w", encoding="cp1252", errors="replace", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        for i in range(rows):
            row = list(body[i % len(body)])
            row[0] = f"CHQ-{i + 1:08d}"
            writer.writerow(row)
    return len(header)


# -- children: each path runs in its own process ------------------------------------------------


def _peak_rss_mib() -> float:
    """Return this process's peak RSS (VmHWM: of its own image, unlike ru_maxrss, which keeps the
    parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child_ours(url: str, file: Path, workdir: Path, path: str) -> dict[str, Any]:
    from donor_sync.db import connect
    from donor_sync.sources.csv_drop import formats_dir, load_drop_folder, load_formats
    from donor_sync.sources.csv_drop.loader import file_sha256, load_file
    from donor_sync.sources.csv_drop.readiness import DropFile

    drop = workdir / f"drop_{path}"
    drop.mkdir(exist_ok=True)
    os.link(file, drop / file.name)  # no copy: 200 MB of dirty pages would be written back during the load
    formats = load_formats(formats_dir())
    with connect(url) as conn:
        began = time.perf_counter()
        if path == "copy_csv":
            [result] = load_drop_folder(
                conn,
                drop,
                formats,
                run_id=None,
                quiet_period=timedelta(0),
                now=datetime.now(UTC) + timedelta(1),
            )
            wall = time.perf_counter() - began
            assert result.status == "loaded", result
            rows = result.loaded
        else:
            target = drop / file.name
            outcome = load_file(
                conn,
                DropFile.stat(target),
                formats[FORMAT],
                sha256=file_sha256(target),
                run_id=None,
                allow_fast_path=False,
            )
            conn.commit()
            wall = time.perf_counter() - began
            rows = outcome.loaded
        landed = conn.execute("SELECT load_path FROM raw.csv_files").fetchone()
    shutil.rmtree(drop)
    return {"wall": wall, "rows": rows, "load_path": landed[0] if landed else None}


def _child_pandas(url: str, file: Path, rows: int) -> dict[str, Any]:
    """``read_csv`` then ``to_sql`` (default method and chunksize) into a new table of text columns."""
    import pandas as pd
    import psycopg
    import sqlalchemy

    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url))
    began = time.perf_counter()
    frame = pd.read_csv(file, encoding="cp1252", dtype=str, keep_default_na=False, nrows=rows)
    frame.to_sql("bench_pandas", engine, if_exists="replace", index=False)
    wall = time.perf_counter() - began
    engine.dispose()
    return {"wall": wall, "rows": len(frame)}


# -- parent -------------------------------------------------------------------------------------------


def _spawn(*args: str) -> tuple[dict[str, Any], float]:
    """Run this script as a child with ``args``; return its JSON output and its peak RSS in MiB."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True, check=True
    )
    output: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return output, float(output["peak_rss_mib"])


def _psql(url: str, *commands: str) -> tuple[float, float]:
    """Run psql with ``commands`` (-c each, one session); return wall seconds and psql's peak RSS in MiB.

    GNU time reports the peak RSS (``%M``) of psql, its child, whose image is psql's own.
    """
    argv = ["/usr/bin/time", "-f", "%M", "psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    for command in commands:
        argv += ["-c", command]
    began = time.perf_counter()
    completed = subprocess.run(argv, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - began
    if completed.returncode != 0:
        raise RuntimeError(f"psql failed: {completed.stderr.strip()[-500:]}")
    return wall, int(completed.stderr.strip().splitlines()[-1]) / 1024


def _reset(url: str) -> None:
    from donor_sync.db import connect

    with connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.bench_text, public.bench_pandas")
        for (table,) in conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits").fetchall():
            conn.execute(f"DROP TABLE {table}")
        conn.execute("TRUNCATE raw.records, raw.csv_files, raw.batches CASCADE")
        conn.execute("CHECKPOINT")


def _count(url: str, table: str) -> int:
    from donor_sync.db import connect

    with connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def sections(parameters: dict[str, Any], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the result's metrics (ours), comparisons (psql \\copy, pandas.to_sql) and headline."""
    by_name = {m["name"]: m for m in metrics}
    ours = by_name["ours_wall_time"]["value"]
    # The benchmark's own ratios, from the unrounded medians.
    ratios = {}
    if "ratio_ours_to_psql_copy" in by_name:
        ratios["psql_copy_wall_time"] = by_name["ratio_ours_to_psql_copy"]["value"]
    if by_name.get("ratio_to_sql_to_ours", {}).get("value"):
        ratios["pandas_to_sql_wall_time"] = round(1 / by_name["ratio_to_sql_to_ours"]["value"], 4)
    compared = []
    for name, label, system in (
        (
            "psql_copy_wall_time",
            "psql \\copy",
            "psql \\copy of the same file into a plain table of text columns, same run",
        ),
        (
            "pandas_to_sql_wall_time",
            "pandas.to_sql",
            "pandas.read_csv + to_sql (default method and chunksize) into text columns, same run",
        ),
    ):
        if name in by_name:
            entry = by_name[name]
            compared.append(
                comparison(
                    system,
                    label=label
                    + (
                        f", extrapolated from {entry['measured_rows']:,} rows"
                        if "measured_rows" in entry
                        else ""
                    ),
                    metric="ours_wall_time",
                    ours=ours,
                    theirs=entry["value"],
                    unit="s",
                    better="lower",
                    metrics=[{**entry, "name": "wall_time"}],
                    ratio=ratios.get(name),
                )
            )
    labels = {
        "ours_wall_time": "our loader",
        "ratio_ours_to_psql_copy": "ours / psql \\copy",
        "ratio_to_sql_to_ours": "pandas.to_sql / ours",
    }
    ours_metrics = [
        {**m, "label": labels[m["name"]]} if m["name"] in labels else m
        for m in metrics
        if m["name"] not in ("psql_copy_wall_time", "pandas_to_sql_wall_time")
    ]
    return {
        "metrics": ours_metrics,
        "compared": compared,
        "headlines": [
            headline(
                "staging {p.size:,} CSV rows ({p.file_bytes:MB} MB, cp1252) into `raw` (a table per file,"
                " by `COPY ... (FORMAT csv)`)",
                "{ours_wall_time} s, {ours_wall_time.peak_rss_mib:.0f} MiB peak RSS; the careful row-by-row"
                " path {ours_row_by_row_wall_time} s",
                ["ours_wall_time", "ratio_ours_to_psql_copy", "ratio_to_sql_to_ours"],
            )
        ],
    }


def main() -> int:
    """Stage ``--size`` rows each way and write bench/results/staging_copy.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path (median reported)")
    parser.add_argument("--to-sql-size", type=int, default=100_000, help="rows pandas.to_sql really writes")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.child:
        kind, url, file, extra = args.child[0], args.child[1], Path(args.child[2]), args.child[3]
        runners = {
            "ours": lambda: _child_ours(url, file, Path(extra), args.child[4]),
            "pandas": lambda: _child_pandas(url, file, int(extra)),
        }
        print(json.dumps({**runners[kind](), "peak_rss_mib": _peak_rss_mib()}))
        return 0

    from donor_sync.db import drop_database, ensure_database, with_database
    from donor_sync.db.migrations import upgrade

    if shutil.which("psql") is None or not Path("/usr/bin/time").exists():
        raise SystemExit("psql (on PATH) and GNU time (/usr/bin/time) are needed for the psql comparison")
    load_start = round(os.getloadavg()[0], 2)
    url = with_database(_server_url(), BENCH_DB)
    drop_database(url)
    ensure_database(url)
    upgrade(url)
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ours_row_by_row": [], "psql_copy": []}
    with tempfile.TemporaryDirectory(prefix="staging-copy-bench-") as tmp:
        work = Path(tmp)
        file = work / f"{FORMAT}.csv"
        width = make_file(file, args.size, work)
        size_bytes = file.stat().st_size
        columns = ", ".join(f"c{i} text" for i in range(width))
        copy_text = (
            f"\\copy public.bench_text ({', '.join(f'c{i}' for i in range(width))}) FROM '{file}'"
            " WITH (FORMAT csv, HEADER true, ENCODING 'WIN1252')"
        )
        for _ in range(args.repeats):
            for path in ("copy_csv", "row_by_row"):
                _reset(url)
                ours, ours_rss = _spawn("ours", url, str(file), str(work), path)
                assert ours["rows"] == args.size
                assert ours["load_path"] == path, ours
                runs["ours" if path == "copy_csv" else "ours_row_by_row"].append((ours["wall"], ours_rss))
            _reset(url)
            text_wall, text_rss = _psql(url, f"CREATE TABLE public.bench_text ({columns})", copy_text)
            assert _count(url, "public.bench_text") == args.size
            runs["psql_copy"].append((text_wall, text_rss))

        to_sql_rows = min(args.to_sql_size, args.size)
        _reset(url)
        measured, pandas_rss = _spawn("pandas", url, str(file), str(to_sql_rows))
        assert measured["rows"] == to_sql_rows
        pandas_wall = measured["wall"] * args.size / to_sql_rows
        _reset(url)
    if not args.keep:
        drop_database(url)

    def rate(wall: float) -> float:
        return round(float(args.size) / wall, 1)

    def median(name: str) -> tuple[float, float]:
        walls = sorted(w for w, _ in runs[name])
        return statistics.median(walls), max(r for _, r in runs[name])

    ours_wall, ours_rss = median("ours")
    slow_wall, slow_rss = median("ours_row_by_row")
    psql_wall, psql_rss = median("psql_copy")
    metrics = [
        metric(
            "ours_wall_time",
            round(ours_wall, 2),
            "s",
            rows_per_s=rate(ours_wall),
            peak_rss_mib=round(ours_rss, 1),
            runs_s=[round(w, 2) for w, _ in runs["ours"]],
        ),
        metric(
            "ours_row_by_row_wall_time",
            round(slow_wall, 2),
            "s",
            rows_per_s=rate(slow_wall),
            peak_rss_mib=round(slow_rss, 1),
            runs_s=[round(w, 2) for w, _ in runs["ours_row_by_row"]],
            note="the careful path (csv module, one write_row per row), taken by files COPY could misread",
        ),
        metric(
            "psql_copy_wall_time",
            round(psql_wall, 2),
            "s",
            rows_per_s=rate(psql_wall),
            peak_rss_mib=round(psql_rss, 1),
            runs_s=[round(w, 2) for w, _ in runs["psql_copy"]],
            note="psql \\copy of the file into a plain table of text columns; psql client RSS only",
        ),
        metric(
            "pandas_to_sql_wall_time",
            round(pandas_wall, 2),
            "s",
            rows_per_s=rate(pandas_wall),
            peak_rss_mib=round(pandas_rss, 1),
            measured_rows=to_sql_rows,
            measured_wall_s=round(measured["wall"], 2),
            note=f"read_csv + to_sql into text columns, measured on the first {to_sql_rows:,} rows, "
            "extrapolated linearly; RSS of that run",
        ),
        metric("ratio_ours_to_psql_copy", round(ours_wall / psql_wall, 2), "ratio", goal="<= 2"),
        metric("ratio_to_sql_to_ours", round(pandas_wall / ours_wall, 2), "ratio", goal=">= 10"),
    ]
    parameters = {
        "size": args.size,
        "repeats": args.repeats,
        "to_sql_size": to_sql_rows,
        "file_bytes": size_bytes,
        "format": FORMAT,
        # The machine (and its Postgres) is shared: its load says how quiet the run was.
        "load_average_1m_start": load_start,
        "load_average_1m_end": round(os.getloadavg()[0], 2),
    }
    path = write_result(
        "staging_copy", parameters, **sections(parameters, metrics), results_dir=args.results_dir
    )
    for m in metrics:
        print(
            f"{m['name']}: {m['value']} {m['unit']}"
            + (f" ({m['rows_per_s']:,} rows/s)" if "rows_per_s" in m else "")
        )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
