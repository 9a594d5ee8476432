"""Benchmark staging CSV rows into Postgres: our CSV drop loader beside psql \\copy and pandas.to_sql.

Run from the repository root: ``.venv/bin/python bench/staging_copy.py --size 1000000``.

A bank-cheque export of ``--size`` rows (Windows-1252, CRLF, the sample generator's rows repeated
with unique references) is staged in a database of its own (``donor_sync_bench_staging_copy`` on
``$DONOR_SYNC_DB_URL``'s server, else 127.0.0.1:5432), each path in its own process so its peak
RSS is its own, after a TRUNCATE and a CHECKPOINT so each starts from the same state:

1. ``ours``: ``load_drop_folder`` on a drop folder holding the file: hash, decode, parse, one
   jsonb payload per row, binary COPY into ``raw.records`` (generated payload hash, unique version
   key, foreign keys, four indexes), raw.csv_files and raw.batches rows, commit, archive.
2. ``psql_text_table``: ``psql \\copy`` of the CSV into a plain table of 22 text columns (Postgres
   parses the CSV and transcodes from WIN1252): the floor for getting the bytes into Postgres.
   No jsonb, no hash, no index, no line numbers, no encoding checks.
3. ``psql_text_then_sql``: the same ``\\copy``, then one ``INSERT ... SELECT jsonb_build_object(...)
   ... ON CONFLICT DO NOTHING`` into ``raw.records``: the same end state from SQL alone (its line
   numbers assume no line breaks inside cells).
4. ``psql_prebuilt_stream``: ``psql \\copy`` of the exact binary COPY stream our loader sends
   (written to a file beforehand, untimed) straight into ``raw.records``: what Postgres alone
   needs to land these rows in this table, so ours minus this is our loader's own cost.
5. ``pandas_to_sql``: ``pandas.read_csv(dtype=str).to_sql(...)`` through SQLAlchemy (default
   ``method`` and ``chunksize``) into a new plain text table, on the first ``--to-sql-size`` rows,
   extrapolated linearly to ``--size`` (said so in the result).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
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

from _common import metric, write_result

BENCH_DB = "donor_sync_bench_staging_copy"
FORMAT = "bank_cheque_export"


def _server_url() -> str:
    return os.environ.get("DONOR_SYNC_DB_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def make_file(path: Path, rows: int, workdir: Path) -> int:
    """Write a bank-cheque export of ``rows`` rows: the generator's rows repeated, references unique."""
    from sandbox.datagen import GenerationConfig, generate

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


def _child_ours(url: str, file: Path, workdir: Path) -> dict[str, Any]:
    from donor_sync.db import connect
    from donor_sync.sources.csv_drop import formats_dir, load_drop_folder, load_formats

    drop = workdir / "drop"
    drop.mkdir(exist_ok=True)
    shutil.copy(file, drop / file.name)
    formats = load_formats(formats_dir())
    with connect(url) as conn:
        began = time.perf_counter()
        [result] = load_drop_folder(
            conn, drop, formats, run_id=None, quiet_period=timedelta(0), now=datetime.now(UTC) + timedelta(1)
        )
        wall = time.perf_counter() - began
    assert result.status == "loaded", result
    return {"wall": wall, "rows": result.loaded}


def _child_stream(url: str, file: Path, out: Path) -> dict[str, Any]:
    """Write the binary COPY stream the loader would send for ``file`` (batch 1, csv_file 1)."""
    from donor_sync.sources.csv_drop import formats_dir, load_formats
    from donor_sync.sources.csv_drop.decoding import RowReader, resolve_encoding
    from donor_sync.sources.csv_drop.landing import StreamCounts, copy_blocks

    fmt = load_formats(formats_dir())[FORMAT]
    counts = StreamCounts()
    with file.open("rb") as handle, out.open("wb") as sink:
        encoding = resolve_encoding(fmt, handle.read(1 << 20), file_name=file.name)
        handle.seek(0)
        reader = RowReader(handle, encoding, fmt, file_name=file.name)
        for block in copy_blocks(
            reader,
            fmt,
            batch_id=1,
            csv_file_id=1,
            fetched_at=datetime.now(UTC),
            sha256_hex="0" * 64,
            counts=counts,
        ):
            sink.write(block)
    return {"rows": counts.rows}


def _child_pandas(url: str, file: Path, rows: int, target: str) -> dict[str, Any]:
    """``read_csv`` then ``to_sql`` (default method and chunksize) into a new text table or raw.records."""
    import pandas as pd
    import psycopg
    import sqlalchemy
    from sqlalchemy.dialects.postgresql import JSONB

    engine = sqlalchemy.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url))
    began = time.perf_counter()
    frame = pd.read_csv(file, encoding="cp1252", dtype=str, keep_default_na=False, nrows=rows)
    if target == "text_table":
        frame.to_sql("bench_pandas", engine, if_exists="replace", index=False)
    else:  # the same rows as our loader lands: one jsonb payload per row, appended to raw.records
        now = datetime.now(UTC)
        records = pd.DataFrame(
            {
                "batch_id": 1,
                "source": "bank_cheque",
                "entity": "csv_row",
                "source_id": frame["Reference"],
                "channel": "csv",
                "fetched_at": now,
                "payload": [
                    {"row": row, "line": i + 2, "encoding_errors": []}
                    for i, row in enumerate(frame.to_dict("records"))
                ],
                "csv_file_id": 1,
                "csv_line": range(2, len(frame) + 2),
            }
        )
        records.to_sql(
            "records", engine, schema="raw", if_exists="append", index=False, dtype={"payload": JSONB()}
        )
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
        conn.execute("TRUNCATE raw.records, raw.csv_files, raw.batches CASCADE")
        conn.execute("CHECKPOINT")


def _seed_batch(url: str) -> None:
    """Batch 1 and csv_file 1, which the psql paths' rows point at (as the loader's own would)."""
    from donor_sync.db import connect

    with connect(url) as conn:
        conn.execute("ALTER TABLE raw.batches ALTER COLUMN batch_id RESTART WITH 1")
        conn.execute("ALTER TABLE raw.csv_files ALTER COLUMN csv_file_id RESTART WITH 1")
        conn.execute(
            "INSERT INTO raw.batches (source, stream, channel) VALUES ('bank_cheque', %s, 'csv')", (FORMAT,)
        )
        conn.execute(
            "INSERT INTO raw.csv_files (source, format, path, sha256, size_bytes, encoding, rows, batch_id)"
            " VALUES ('bank_cheque', %s, 'bench', sha256('bench'), 0, 'cp1252', 0, 1)",
            (FORMAT,),
        )
        conn.commit()


def _count(url: str, table: str) -> int:
    from donor_sync.db import connect

    with connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def main() -> int:
    """Stage ``--size`` rows the five ways and write bench/results/staging_copy.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--to-sql-size", type=int, default=100_000, help="rows pandas.to_sql really writes")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, file, extra = args.child[0], args.child[1], Path(args.child[2]), args.child[3]
        runners = {
            "ours": lambda: _child_ours(url, file, Path(extra)),
            "stream": lambda: _child_stream(url, file, Path(extra)),
            "pandas": lambda: _child_pandas(url, file, int(extra), args.child[4]),
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
    with tempfile.TemporaryDirectory(prefix="staging-copy-bench-") as tmp:
        work = Path(tmp)
        file = work / f"{FORMAT}.csv"
        width = make_file(file, args.size, work)
        size_bytes = file.stat().st_size
        with file.open(encoding="cp1252", newline="") as handle:
            header = next(csv.reader(handle))

        _reset(url)
        ours, ours_rss = _spawn("ours", url, str(file), str(work))
        assert ours["rows"] == args.size

        columns = ", ".join(f"c{i} text" for i in range(width))
        copy_text = (
            f"\\copy public.bench_text ({', '.join(f'c{i}' for i in range(width))}) FROM '{file}'"
            " WITH (FORMAT csv, HEADER true, ENCODING 'WIN1252')"
        )
        _reset(url)
        text_wall, text_rss = _psql(url, f"CREATE TABLE public.bench_text ({columns})", copy_text)
        assert _count(url, "public.bench_text") == args.size

        keys = ", ".join("'" + h.replace("'", "''") + "'" for h in header)
        values = ", ".join(f"c{i}" for i in range(width))
        insert = (
            "INSERT INTO raw.records (batch_id, source, entity, source_id, channel, fetched_at, payload,"
            " csv_file_id, csv_line)"
            " SELECT 1, 'bank_cheque', 'csv_row', c0, 'csv', now(), jsonb_build_object('row',"
            f" jsonb_object(ARRAY[{keys}], ARRAY[{values}]), 'line', line, 'encoding_errors', '[]'::jsonb),"
            " 1, line FROM public.bench_text"
            " ON CONFLICT (source, entity, source_id, payload_sha256) DO NOTHING"
        )
        _reset(url)
        _seed_batch(url)
        sql_wall, sql_rss = _psql(
            url,
            f"CREATE TABLE public.bench_text ({columns}, line bigint GENERATED ALWAYS AS IDENTITY (START 2))",
            copy_text,
            insert,
        )
        assert _count(url, "raw.records") == args.size

        stream = work / "stream.bin"
        _spawn("stream", url, str(file), str(stream))
        _reset(url)
        _seed_batch(url)
        stream_wall, stream_rss = _psql(
            url,
            "\\copy raw.records (batch_id, source, entity, source_id, channel, fetched_at, payload,"
            f" csv_file_id, csv_line) FROM '{stream}' (FORMAT binary)",
        )
        assert _count(url, "raw.records") == args.size
        stream_bytes = stream.stat().st_size

        _reset(url)
        plain_wall, _ = _psql(
            url,
            "CREATE TABLE public.bench_text (raw_record_id bigint GENERATED ALWAYS AS IDENTITY,"
            " batch_id bigint, source text, entity text, source_id text, channel text,"
            " fetched_at timestamptz, received_at timestamptz DEFAULT now(), payload jsonb,"
            " csv_file_id bigint, csv_line bigint)",
            "\\copy public.bench_text (batch_id, source, entity, source_id, channel, fetched_at, payload,"
            f" csv_file_id, csv_line) FROM '{stream}' (FORMAT binary)",
        )
        assert _count(url, "public.bench_text") == args.size

        to_sql_rows = min(args.to_sql_size, args.size)
        pandas: dict[str, tuple[float, float, float]] = {}
        for target in ("text_table", "raw_records"):
            _reset(url)
            _seed_batch(url)
            measured, rss = _spawn("pandas", url, str(file), str(to_sql_rows), target)
            assert measured["rows"] == to_sql_rows
            pandas[target] = (measured["wall"] * args.size / to_sql_rows, measured["wall"], rss)
        _reset(url)
    if not args.keep:
        drop_database(url)

    def rate(wall: float) -> float:
        return round(float(args.size) / wall, 1)

    ours_wall = ours["wall"]
    metrics = [
        metric(
            "ours_wall_time",
            round(ours_wall, 2),
            "s",
            rows_per_s=rate(ours_wall),
            peak_rss_mib=round(ours_rss, 1),
        ),
        metric(
            "psql_text_table_wall_time",
            round(text_wall, 2),
            "s",
            rows_per_s=rate(text_wall),
            peak_rss_mib=round(text_rss, 1),
            note="psql client RSS only; the server does the parsing",
        ),
        metric(
            "psql_text_then_sql_wall_time",
            round(sql_wall, 2),
            "s",
            rows_per_s=rate(sql_wall),
            peak_rss_mib=round(sql_rss, 1),
        ),
        metric(
            "psql_prebuilt_stream_wall_time",
            round(stream_wall, 2),
            "s",
            rows_per_s=rate(stream_wall),
            peak_rss_mib=round(stream_rss, 1),
            stream_bytes=stream_bytes,
        ),
        metric(
            "psql_prebuilt_stream_plain_table_wall_time",
            round(plain_wall, 2),
            "s",
            rows_per_s=rate(plain_wall),
            note="the same stream into a table of raw.records' column types without its generated payload "
            "hash, indexes and foreign keys: what those cost is psql_prebuilt_stream minus this",
        ),
        *[
            metric(
                f"pandas_to_sql_{target}_wall_time",
                round(wall, 2),
                "s",
                rows_per_s=rate(wall),
                peak_rss_mib=round(rss, 1),
                measured_rows=to_sql_rows,
                measured_wall_s=round(measured_wall, 2),
                note=f"measured on the first {to_sql_rows:,} rows, extrapolated linearly; RSS of that run",
            )
            for target, (wall, measured_wall, rss) in pandas.items()
        ],
        metric(
            "ratio_ours_to_psql_prebuilt_stream",
            round(ours_wall / stream_wall, 2),
            "ratio",
            goal="<= 2",
            note="same rows into the same raw.records: our loader's cost on top of Postgres's own",
        ),
        metric(
            "ratio_ours_to_psql_text_then_sql",
            round(ours_wall / sql_wall, 2),
            "ratio",
            goal="<= 2",
            note="same end state reached with psql \\copy plus SQL",
        ),
        metric(
            "ratio_ours_to_psql_text_table",
            round(ours_wall / text_wall, 2),
            "ratio",
            note="bare \\copy into text columns: no jsonb, hash, index or foreign key (not the same work)",
        ),
        metric(
            "ratio_to_sql_raw_records_to_ours",
            round(pandas["raw_records"][0] / ours_wall, 2),
            "ratio",
            goal=">= 10",
            note="same rows into the same raw.records through pandas.to_sql",
        ),
        metric(
            "ratio_to_sql_text_table_to_ours",
            round(pandas["text_table"][0] / ours_wall, 2),
            "ratio",
            goal=">= 10",
            note="to_sql into a new plain text table: far less work than landing in raw.records",
        ),
    ]
    path = write_result(
        "staging_copy",
        {
            "size": args.size,
            "to_sql_size": to_sql_rows,
            "file_bytes": size_bytes,
            "format": FORMAT,
            # The machine (and its Postgres) is shared: its load says how quiet the run was.
            "load_average_1m_start": load_start,
            "load_average_1m_end": round(os.getloadavg()[0], 2),
        },
        metrics,
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
