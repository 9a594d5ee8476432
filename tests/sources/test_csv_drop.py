"""CSV drop loading against a real Postgres, with sample exports from sandbox.datagen and their truth."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from donor_sync.db import connect
from donor_sync.observability import runs
from donor_sync.sources import csv_drop
from donor_sync.sources.csv_drop import CsvFileResult, CsvFormat, formats_dir, load_drop_folder, load_formats
from donor_sync.sources.csv_drop.rows import CsvRow, batch_rows, count_rows, source_rows
from sandbox.datagen import GenerationConfig, generate

BANK = "bank_cheque_export.csv"
EVENT = "event_platform_export.csv"
#: Seed and bad share that give both exports cp1252 accents (Montréal, Köln) and invalid UTF-8 rows.
SEED, BAD_SHARE, DONORS = 4, 0.4, 500


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample data for a few hundred donors: csv/ exports and truth/."""
    out = tmp_path_factory.mktemp("csv-sample") / "data"
    generate(GenerationConfig(donors=DONORS, seed=SEED, bad_share=BAD_SHARE, out=out))
    return out


@pytest.fixture(scope="session")
def formats() -> dict[str, CsvFormat]:
    return load_formats(formats_dir())


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


LATER = datetime.now(UTC) + timedelta(hours=1)


def _load(
    conn: psycopg.Connection, drop: Path, formats: dict[str, CsvFormat], **kwargs: Any
) -> list[CsvFileResult]:
    kwargs.setdefault("quiet_period", timedelta(seconds=60))
    kwargs.setdefault("now", LATER)  # an hour ahead: every file written by the test is quiet
    kwargs.setdefault("run_id", None)
    return load_drop_folder(conn, drop, formats, **kwargs)


def _by_name(results: list[CsvFileResult]) -> dict[str, CsvFileResult]:
    return {r.path.name: r for r in results}


def _truth_rows(sample: Path, name: str) -> list[dict[str, str]]:
    with (sample / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _rows_by_id(conn: psycopg.Connection, source: str) -> dict[str, CsvRow]:
    """Return the landed rows of one source by source id (each id once: one file per source here)."""
    rows = source_rows(conn, source)
    by_id = {row.source_id: row for row in rows}
    assert len(by_id) == len(rows), "a source id landed twice"
    return by_id


def _rows_of(conn: psycopg.Connection, result: CsvFileResult) -> list[CsvRow]:
    """Return the rows one load landed, in file order."""
    assert result.batch_id is not None
    return batch_rows(conn, result.batch_id)


def _assert_nothing_landed(conn: psycopg.Connection) -> None:
    """No CSV row, no raw record, no file row and no rows table: a failed load leaves nothing."""
    assert count_rows(conn) == 0
    assert conn.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (0,)
    tables = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename ~ '^csv_file_[0-9]+$'"
    ).fetchone()
    assert tables == (0,)


def test_both_exports_land_every_row_once_and_are_archived(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    for name in (BANK, EVENT):
        shutil.copy(sample / "csv" / name, drop / name)
    originals = {name: (sample / "csv" / name).read_bytes() for name in (BANK, EVENT)}
    manifest = json.loads((sample / "truth" / "manifest.json").read_text())["counts"]

    results = _by_name(_load(db, drop, formats))

    truth = _truth_rows(sample, "records.csv")
    for name, fmt_name, source, load_path in (
        (BANK, "bank_cheque_export", "bank_cheque", "copy_csv"),  # cp1252, every byte valid
        (EVENT, "event_platform_export", "event_platform", "row_by_row"),  # has invalid UTF-8 rows
    ):
        expected = manifest[f"csv/{name}"]
        result = results[name]
        assert (result.status, result.format, result.rows, result.loaded) == (
            "loaded",
            fmt_name,
            expected,
            expected,
        )
        ids = {r["source_record_id"] for r in truth if r["source"] == f"csv/{name.removesuffix('.csv')}"}
        rows = _rows_of(db, result)
        assert len(rows) == expected
        assert {r.source_id for r in rows} == ids
        batch = db.execute(
            "SELECT source, stream, channel, status, records_read, records_loaded, records_reported"
            " FROM raw.batches WHERE batch_id = %s",
            (result.batch_id,),
        ).fetchone()
        assert batch == (source, fmt_name, "csv", "loaded", expected, expected, expected)
        sha = hashlib.sha256(originals[name]).digest()
        file_row = db.execute(
            "SELECT csv_file_id, format, rows, batch_id, archived_to, load_path FROM raw.csv_files"
            " WHERE sha256 = %s",
            (sha,),
        ).fetchone()
        assert file_row is not None
        csv_file_id = file_row[0]
        assert file_row[1:4] == (fmt_name, expected, result.batch_id)
        assert file_row[5] == load_path
        archived = Path(file_row[4])
        assert archived == result.moved_to
        assert archived.read_bytes() == originals[name]
        assert archived.relative_to(drop / "archive").as_posix() == (
            f"{LATER:%Y/%m/%d}/{sha.hex()[:12]}_{name}"
        )
        # Every row names its file and the line it starts on: no cell of these exports spans lines
        # (one line end per row and the header's), so row n starts on line n + 1, whichever path.
        assert originals[name].count(b"\n") == expected + 1
        assert {r.csv_file_id for r in rows} == {csv_file_id}
        assert [(r.row_number, r.line) for r in rows] == [(n, n + 1) for n in range(1, expected + 1)]
        # What standardization reads (raw.records' shape) agrees with the rows.
        records = db.execute(
            "SELECT raw_record_id, source_id, channel, csv_file_id, csv_line FROM raw.all_records(%s)"
            " ORDER BY raw_record_id",
            ([result.batch_id],),
        ).fetchall()
        assert records == [(r.raw_record_id, r.source_id, "csv", csv_file_id, r.line) for r in rows]
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)  # CSV rows land apart
    assert sorted(p.name for p in drop.iterdir()) == ["archive"]


def test_cp1252_export_decodes_accents_and_keeps_cells_exactly(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    [result] = _load(db, drop, formats)
    landed = _rows_by_id(db, "bank_cheque")
    persons = {p["person_id"]: p for p in _truth_rows(sample, "persons.csv")}
    records = {r["source_record_id"]: r for r in _truth_rows(sample, "records.csv")}
    accented = {
        ref: persons[records[ref]["person_id"]]["city"]
        for ref in landed
        if not persons[records[ref]["person_id"]]["city"].isascii()
    }
    assert "Montréal" in accented.values()
    for ref, city in accented.items():
        assert landed[ref].cells["City"] == city
    # Every cell is the file's text as cp1252 decodes it (empty cells kept, no stray characters).
    with (sample / "csv" / BANK).open(encoding="cp1252", newline="") as handle:
        file_rows = list(csv.DictReader(handle))
    assert len(file_rows) == len(landed) == result.rows
    for cells in file_rows:
        assert landed[cells["Reference"]].cells == cells
    for row in landed.values():
        assert (row.encoding_errors, row.raw_line) == ([], None)
        assert all("\ufffd" not in cell for cell in row.cells.values())


def test_utf8_bom_is_stripped_from_the_first_header(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    assert (sample / "csv" / EVENT).read_bytes().startswith(b"\xef\xbb\xbf")
    shutil.copy(sample / "csv" / EVENT, drop / EVENT)
    _load(db, drop, formats)
    rows = source_rows(db, "event_platform")
    assert rows
    for row in rows:
        assert "Order ID" in row.cells
        assert not any(key.startswith("\ufeff") for key in row.cells)
    assert db.execute("SELECT encoding, headers[1] FROM raw.csv_files").fetchone() == (
        "utf-8-sig",
        "Order ID",
    )


def test_invalid_utf8_rows_keep_their_bytes_and_name_the_bad_header(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    bad = {
        r["source_record_id"]: r["field"]
        for r in _truth_rows(sample, "bad_records.csv")
        if r["source"] == "csv/event_platform_export" and r["kind"] == "invalid_utf8"
    }
    assert bad, "the sample must hold invalid UTF-8 rows"
    shutil.copy(sample / "csv" / EVENT, drop / EVENT)
    [result] = _load(db, drop, formats)
    assert result.status == "loaded"
    assert result.encoding_errors == len(bad)
    file_lines = (sample / "csv" / EVENT).read_bytes().split(b"\n")
    landed = _rows_by_id(db, "event_platform")
    assert len(landed) == result.rows
    assert db.execute("SELECT load_path FROM raw.csv_files").fetchone() == ("row_by_row",)
    for order_id, row in landed.items():
        if order_id not in bad:
            assert row.encoding_errors == []
            assert row.raw_line is None
            continue
        assert row.encoding_errors == [bad[order_id]]
        raw = row.raw_line
        assert row.line is not None
        assert raw == file_lines[row.line - 1] + b"\n"  # the exact bytes, line end included
        assert row.cells[bad[order_id]] == raw.split(b",")[3].decode("utf-8", "replace")
        assert "\ufffd" in row.cells[bad[order_id]]
        # The other cells are intact.
        assert row.cells["Order ID"] == order_id


def test_same_file_again_and_same_bytes_renamed_are_duplicates(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    shutil.copy(sample / "csv" / BANK, drop / "cheques_copy.csv")
    results = _by_name(_load(db, drop, formats))
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["duplicate", "loaded"]
    loaded = next(r for r in results.values() if r.status == "loaded")
    duplicate = next(r for r in results.values() if r.status == "duplicate")
    assert duplicate.batch_id == loaded.batch_id
    assert duplicate.moved_to is not None
    assert duplicate.moved_to.relative_to(drop / "archive").parts[0] == "duplicates"
    assert count_rows(db) == loaded.rows  # the copy landed nothing
    assert [r.batch_id for r in source_rows(db, "bank_cheque")] == [loaded.batch_id] * loaded.rows

    shutil.copy(sample / "csv" / BANK, drop / BANK)  # the same file dropped again
    [again] = _load(db, drop, formats)
    assert again.status == "duplicate"
    assert count_rows(db) == loaded.rows
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM raw.batches").fetchone() == (1,)
    assert _load(db, drop, formats) == []  # nothing left: a rerun changes nothing


def test_rows_of_an_earlier_file_land_again_from_a_new_file_as_new_versions(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    """An export that repeats an earlier one and adds rows lands all its rows, as a new batch.

    The repeated rows are new versions of the same objects: same source ids and cells, later
    raw_record_ids and their own batch, so standardization can order the versions.
    """
    first = (sample / "csv" / BANK).read_bytes()
    body = first.split(b"\r\n")
    total = len(body) - 2  # the header, and the empty piece after the last line end
    half = b"\r\n".join(body[:40]) + b"\r\n"
    (drop / "cheques_1.csv").write_bytes(half)
    [one] = _load(db, drop, formats)
    assert (one.status, one.rows, one.loaded) == ("loaded", 39, 39)
    (drop / "cheques_2.csv").write_bytes(first)
    [two] = _load(db, drop, formats)
    assert two.status == "loaded"
    assert two.batch_id != one.batch_id
    assert (two.rows, two.loaded) == (total, total)  # loaded == rows: nothing is skipped

    earlier, later = _rows_of(db, one), _rows_of(db, two)
    assert (len(earlier), len(later)) == (39, total)
    assert count_rows(db) == 39 + total
    assert len({r.source_id for r in source_rows(db, "bank_cheque")}) == total
    # The repeated rows: the same ids and cells in the new batch, each a later version.
    again = {r.source_id: r for r in later}
    for row in earlier:
        repeat = again[row.source_id]
        assert repeat.cells == row.cells
        assert repeat.row_number == row.row_number
        assert repeat.raw_record_id > row.raw_record_id
        assert repeat.csv_file_id != row.csv_file_id
    assert max(r.raw_record_id for r in earlier) < min(r.raw_record_id for r in later)
    versions = db.execute(
        "SELECT source_id, array_agg(batch_id ORDER BY raw_record_id)"
        " FROM raw.all_records(%s) GROUP BY source_id",
        ([one.batch_id, two.batch_id],),
    ).fetchall()
    repeated = {sid for sid, batches in versions if batches == [one.batch_id, two.batch_id]}
    assert repeated == {r.source_id for r in earlier}
    assert all(batches == [two.batch_id] for sid, batches in versions if sid not in repeated)
    batch = db.execute(
        "SELECT records_read, records_loaded, records_reported FROM raw.batches WHERE batch_id = %s",
        (two.batch_id,),
    ).fetchone()
    assert batch == (total, total, total)
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)


def test_files_still_being_written_are_not_read(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    shutil.copy(sample / "csv" / EVENT, drop / (EVENT + ".part"))
    written = datetime.fromtimestamp((drop / BANK).stat().st_mtime, UTC)
    results = _by_name(_load(db, drop, formats, now=written + timedelta(seconds=5)))
    assert results[BANK].status == "not_ready"
    assert "waiting for 60 s" in (results[BANK].detail or "")
    assert results[EVENT + ".part"].status == "not_ready"
    assert db.execute("SELECT count(*) FROM raw.batches").fetchone() == (0,)
    assert (drop / BANK).exists()

    results = _by_name(_load(db, drop, formats, now=written + timedelta(seconds=61)))
    assert results[BANK].status == "loaded"
    assert results[EVENT + ".part"].status == "not_ready"
    assert (drop / (EVENT + ".part")).exists()


def test_a_file_that_changes_while_read_is_left_for_the_next_run(
    db: psycopg.Connection,
    sample: Path,
    drop: Path,
    formats: dict[str, CsvFormat],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    real_hash = csv_drop.file_sha256

    def hash_then_append(path: Path) -> bytes:
        digest = real_hash(path)
        with path.open("ab") as handle:  # the exporter writes more after the hash was taken
            handle.write(b"CHQ-99999999,1,01/01/2024,late row" + b"," * 18 + b"\r\n")
        os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
        return digest

    monkeypatch.setattr(csv_drop, "file_sha256", hash_then_append)
    [result] = _load(db, drop, formats)
    assert result.status == "not_ready"
    _assert_nothing_landed(db)
    assert db.execute("SELECT count(*) FROM raw.batches WHERE status = 'loaded'").fetchone() == (0,)
    assert (drop / BANK).exists()


def test_ready_marker_is_awaited_then_archived_with_the_file(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    marked = {
        **formats,
        "bank_cheque_export": formats["bank_cheque_export"].model_copy(update={"ready_marker": True}),
    }
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    [waiting] = _load(db, drop, marked)
    assert (waiting.status, waiting.format) == ("not_ready", "bank_cheque_export")
    (drop / (BANK + ".done")).touch()
    [loaded] = _load(db, drop, marked)
    assert loaded.status == "loaded"
    assert loaded.moved_to is not None
    assert loaded.moved_to.with_name(loaded.moved_to.name + ".done").exists()
    assert sorted(p.name for p in drop.iterdir()) == ["archive"]


def test_a_rejected_file_takes_its_ready_marker_along(
    db: psycopg.Connection, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    marked = {
        **formats,
        "bank_cheque_export": formats["bank_cheque_export"].model_copy(update={"ready_marker": True}),
    }
    (drop / "cheques.csv").write_text(
        "Reference,Cheque No,Deposit Date,Donor Name\r\nCHQ-1,1,01/02/2024,A\r\n"
    )
    (drop / "cheques.ok").touch()
    [result] = _load(db, drop, marked)
    assert result.status == "rejected"
    assert sorted(p.name for p in (drop / "rejected").iterdir()) == [
        "cheques.csv",
        "cheques.csv.error.txt",
        "cheques.csv.ok",
    ]
    assert sorted(p.name for p in drop.iterdir()) == ["rejected"]


def test_archiving_failure_leaves_the_file_and_the_next_run_archives_it(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat], tmp_path: Path
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the archive folder should be")
    [first] = _load(db, drop, formats, archive_dir=blocked / "archive")
    assert first.status == "loaded"
    assert "archiving failed" in (first.error or "")
    assert (drop / BANK).exists()
    assert db.execute("SELECT archived_at FROM raw.csv_files").fetchone() == (None,)
    rows = source_rows(db, "bank_cheque")
    assert len(rows) == first.rows

    [second] = _load(db, drop, formats)
    assert (second.status, second.batch_id, second.error) == ("duplicate", first.batch_id, None)
    assert second.moved_to is not None
    assert second.moved_to.relative_to(drop / "archive").parts[0] != "duplicates"
    assert db.execute("SELECT archived_to FROM raw.csv_files").fetchone() == (str(second.moved_to),)
    assert source_rows(db, "bank_cheque") == rows  # nothing landed again


def _rewrite(source: Path, target: Path, encoding: str, change: Callable[[list[list[str]]], None]) -> None:
    with source.open(encoding=encoding, newline="") as handle:
        rows = list(csv.reader(handle))
    change(rows)
    with target.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)


def test_missing_mapped_header_rejects_the_file_with_a_sidecar_and_the_rest_goes_on(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    def drop_email(rows: list[list[str]]) -> None:
        index = rows[0].index("Email")
        for row in rows:
            del row[index]

    _rewrite(sample / "csv" / BANK, drop / "cheques_march.csv", "cp1252", drop_email)
    shutil.copy(sample / "csv" / EVENT, drop / EVENT)
    results = _by_name(_load(db, drop, formats))
    rejected = results["cheques_march.csv"]
    assert (rejected.status, rejected.format) == ("rejected", "bank_cheque_export")
    assert results[EVENT].status == "loaded"
    assert rejected.moved_to == drop / "rejected" / "cheques_march.csv"
    sidecar = (drop / "rejected" / "cheques_march.csv.error.txt").read_text()
    assert "file: cheques_march.csv" in sidecar
    assert "format: bank_cheque_export" in sidecar
    assert "line: 1" in sidecar
    assert "field: Email" in sidecar
    assert "error: missing_header" in sidecar
    failed = db.execute("SELECT status, error FROM raw.batches WHERE source = 'bank_cheque'").fetchone()
    assert failed == ("failed", "missing_header")
    assert source_rows(db, "bank_cheque") == []
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files WHERE source = 'bank_cheque'").fetchone() == (0,)
    assert count_rows(db) == results[EVENT].rows  # only the other file's rows landed


def test_ragged_row_rejects_the_file_naming_its_line(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[7].append("extra"))
    [result] = _load(db, drop, formats)
    assert result.status == "rejected"
    assert "line 8" in (result.error or "")
    assert "line: 8" in (drop / "rejected" / (BANK + ".error.txt")).read_text()
    _assert_nothing_landed(db)


def test_unknown_format_is_rejected_naming_what_each_format_lacks(
    db: psycopg.Connection, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    (drop / "volunteers.csv").write_text("Name,Shift\nAda,Monday\n", encoding="utf-8")
    [result] = _load(db, drop, formats)
    assert (result.status, result.format) == ("rejected", None)
    sidecar = (drop / "rejected" / "volunteers.csv.error.txt").read_text()
    assert "error: unknown_format" in sidecar
    assert "bank_cheque_export: lacks header(s) 'Reference'" in sidecar
    assert db.execute("SELECT count(*) FROM raw.batches").fetchone() == (0,)


def test_rows_without_an_id_get_the_file_hash_and_row_number(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    no_id = {"bank_cheque_export": formats["bank_cheque_export"].model_copy(update={"id_column": None})}
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[3].__setitem__(0, ""))
    [result] = _load(db, drop, no_id)
    assert result.sha256 is not None
    rows = _rows_of(db, result)
    assert [(r.source_id, r.row_number, r.line) for r in rows] == [
        (f"{result.sha256}:r{n}", n, n + 1) for n in range(1, result.rows + 1)
    ]
    ids = db.execute("SELECT source_id FROM raw.all_records(%s) ORDER BY raw_record_id", ([result.batch_id],))
    assert [sid for (sid,) in ids.fetchall()] == [r.source_id for r in rows]


def test_blank_id_cell_falls_back_to_hash_and_row_number(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[3].__setitem__(0, "  "))
    [result] = _load(db, drop, formats)
    assert result.status == "loaded"
    [row] = [r for r in _rows_of(db, result) if r.line == 4]
    assert (row.source_id, row.row_number, row.cells["Reference"]) == (f"{result.sha256}:r3", 3, "  ")
    others = [r.source_id for r in _rows_of(db, result) if r.line != 4]
    assert all(sid.startswith("CHQ-") for sid in others)


def test_two_loaders_at_once_load_each_file_once(
    db_url: str, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    for name in (BANK, EVENT):
        shutil.copy(sample / "csv" / name, drop / name)
    results: list[list[CsvFileResult]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            with connect(db_url) as conn:
                barrier.wait()
                results.append(_load(conn, drop, formats))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    statuses = Counter((r.path.name, r.status) for run_results in results for r in run_results)
    assert statuses[(BANK, "loaded")] == 1
    assert statuses[(EVENT, "loaded")] == 1
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM raw.batches").fetchone() == (2,)
        manifest = json.loads((sample / "truth" / "manifest.json").read_text())["counts"]
        expected = manifest[f"csv/{BANK}"] + manifest[f"csv/{EVENT}"]
        assert count_rows(conn) == expected
        assert conn.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)


def test_run_metrics_count_rows_per_source_and_files_per_status(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    run_id = runs.open_run(db, dag_id="donations_hourly", airflow_run_id="manual__csv", run_type="test")
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    (drop / "notes.csv").write_text("a,b\n1,2\n")
    results = _by_name(_load(db, drop, formats, run_id=run_id))
    metrics = {
        (stage, scope, metric): int(value)
        for stage, scope, metric, value in db.execute(
            "SELECT stage, scope, metric, value FROM sync.run_metrics WHERE run_id = %s", (run_id,)
        ).fetchall()
    }
    rows = results[BANK].rows
    assert metrics[("extract", "bank_cheque", "read")] == rows
    assert metrics[("extract", "bank_cheque", "loaded")] == rows
    assert metrics[("extract", "csv_drop", "files_loaded")] == 1
    assert metrics[("extract", "csv_drop", "files_rejected")] == 1
    assert db.execute("SELECT run_id FROM raw.batches").fetchone() == (run_id,)


def test_errors_name_line_and_field_but_never_quote_cells(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    secret = "jane.secret@example.com"

    def unclosed_quote(rows: list[list[str]]) -> None:
        rows[5][rows[0].index("Email")] = secret

    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", unclosed_quote)
    data = (drop / BANK).read_bytes().replace(secret.encode(), b'"' + secret.encode() + b'"x')
    (drop / BANK).write_bytes(data)  # a quoted cell followed by text: malformed CSV on line 6
    [result] = _load(db, drop, formats)
    assert result.status == "rejected"
    sidecar = (drop / "rejected" / (BANK + ".error.txt")).read_text()
    assert "line: 6" in sidecar
    assert "error: malformed_csv" in sidecar
    assert "jane" not in sidecar
    assert "jane" not in (result.error or "")
    _assert_nothing_landed(db)
