"""CSV drop loading against a real Postgres, with sample exports from sandbox.datagen and their truth."""

from __future__ import annotations

import base64
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


def _payloads(conn: psycopg.Connection, source: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT source_id, payload FROM raw.records WHERE source = %s AND entity = 'csv_row'", (source,)
    ).fetchall()
    return dict(rows)


def test_both_exports_land_every_row_once_and_are_archived(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    for name in (BANK, EVENT):
        shutil.copy(sample / "csv" / name, drop / name)
    originals = {name: (sample / "csv" / name).read_bytes() for name in (BANK, EVENT)}
    manifest = json.loads((sample / "truth" / "manifest.json").read_text())["counts"]

    results = _by_name(_load(db, drop, formats))

    truth = _truth_rows(sample, "records.csv")
    for name, fmt_name, source in (
        (BANK, "bank_cheque_export", "bank_cheque"),
        (EVENT, "event_platform_export", "event_platform"),
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
        assert set(_payloads(db, source)) == ids
        batch = db.execute(
            "SELECT source, stream, channel, status, records_read, records_loaded, records_reported"
            " FROM raw.batches WHERE batch_id = %s",
            (result.batch_id,),
        ).fetchone()
        assert batch == (source, fmt_name, "csv", "loaded", expected, expected, expected)
        sha = hashlib.sha256(originals[name]).digest()
        file_row = db.execute(
            "SELECT format, rows, batch_id, archived_to FROM raw.csv_files WHERE sha256 = %s", (sha,)
        ).fetchone()
        assert file_row is not None
        assert file_row[:3] == (fmt_name, expected, result.batch_id)
        archived = Path(file_row[3])
        assert archived == result.moved_to
        assert archived.read_bytes() == originals[name]
        assert archived.relative_to(drop / "archive").as_posix() == (
            f"{LATER:%Y/%m/%d}/{sha.hex()[:12]}_{name}"
        )
        lines = db.execute(
            "SELECT count(*) FROM raw.records WHERE batch_id = %s AND csv_line = (payload->>'line')::bigint"
            " AND csv_file_id IS NOT NULL AND channel = 'csv'",
            (result.batch_id,),
        ).fetchone()
        assert lines == (expected,)
    assert sorted(p.name for p in drop.iterdir()) == ["archive"]


def test_cp1252_export_decodes_accents_and_keeps_cells_exactly(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    shutil.copy(sample / "csv" / BANK, drop / BANK)
    _load(db, drop, formats)
    payloads = _payloads(db, "bank_cheque")
    persons = {p["person_id"]: p for p in _truth_rows(sample, "persons.csv")}
    records = {r["source_record_id"]: r for r in _truth_rows(sample, "records.csv")}
    accented = {
        ref: persons[records[ref]["person_id"]]["city"]
        for ref in payloads
        if not persons[records[ref]["person_id"]]["city"].isascii()
    }
    assert "Montréal" in accented.values()
    for ref, city in accented.items():
        assert payloads[ref]["row"]["City"] == city
    # Every cell is the file's text as cp1252 decodes it (empty cells kept, no stray characters).
    with (sample / "csv" / BANK).open(encoding="cp1252", newline="") as handle:
        for row in csv.DictReader(handle):
            assert payloads[row["Reference"]]["row"] == row
    assert all("\ufffd" not in json.dumps(p, ensure_ascii=False) for p in payloads.values())


def test_utf8_bom_is_stripped_from_the_first_header(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    assert (sample / "csv" / EVENT).read_bytes().startswith(b"\xef\xbb\xbf")
    shutil.copy(sample / "csv" / EVENT, drop / EVENT)
    _load(db, drop, formats)
    payload = next(iter(_payloads(db, "event_platform").values()))
    assert "Order ID" in payload["row"]
    assert not any(key.startswith("\ufeff") for key in payload["row"])
    assert db.execute("SELECT encoding FROM raw.csv_files").fetchone() == ("utf-8-sig",)


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
    payloads = _payloads(db, "event_platform")
    assert len(payloads) == result.rows
    for order_id, payload in payloads.items():
        if order_id not in bad:
            assert payload["encoding_errors"] == []
            assert "raw_line_b64" not in payload
            continue
        assert payload["encoding_errors"] == [bad[order_id]]
        raw = base64.b64decode(payload["raw_line_b64"])
        assert raw == file_lines[payload["line"] - 1] + b"\n"  # the exact bytes, line end included
        assert payload["row"][bad[order_id]] == raw.split(b",")[3].decode("utf-8", "replace")
        assert "\ufffd" in payload["row"][bad[order_id]]
        # The other cells are intact.
        assert payload["row"]["Order ID"] == order_id


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
    count = db.execute("SELECT count(*) FROM raw.records").fetchone()

    shutil.copy(sample / "csv" / BANK, drop / BANK)  # the same file dropped again
    [again] = _load(db, drop, formats)
    assert again.status == "duplicate"
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == count
    assert db.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM raw.batches").fetchone() == (1,)
    assert _load(db, drop, formats) == []  # nothing left: a rerun changes nothing


def test_rows_already_landed_are_not_landed_again_from_a_new_file(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    """An export that repeats an earlier one and adds rows lands only the new rows (ON CONFLICT path)."""
    first = (sample / "csv" / BANK).read_bytes()
    body = first.split(b"\r\n")
    half = b"\r\n".join(body[:40]) + b"\r\n"
    (drop / "cheques_1.csv").write_bytes(half)
    [one] = _load(db, drop, formats)
    assert (one.rows, one.loaded) == (39, 39)
    (drop / "cheques_2.csv").write_bytes(first)
    [two] = _load(db, drop, formats)
    assert two.status == "loaded"
    assert (two.rows, two.loaded) == (len(body) - 2, len(body) - 2 - 39)
    total = db.execute("SELECT count(*), count(DISTINCT source_id) FROM raw.records").fetchone()
    assert total == (len(body) - 2, len(body) - 2)
    batch = db.execute(
        "SELECT records_read, records_loaded, records_reported FROM raw.batches WHERE batch_id = %s",
        (two.batch_id,),
    ).fetchone()
    assert batch == (two.rows, two.loaded, two.rows)


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
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (0,)
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
    records = db.execute("SELECT count(*) FROM raw.records").fetchone()

    [second] = _load(db, drop, formats)
    assert (second.status, second.batch_id, second.error) == ("duplicate", first.batch_id, None)
    assert second.moved_to is not None
    assert second.moved_to.relative_to(drop / "archive").parts[0] != "duplicates"
    assert db.execute("SELECT archived_to FROM raw.csv_files").fetchone() == (str(second.moved_to),)
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == records


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
    assert db.execute("SELECT count(*) FROM raw.records WHERE source = 'bank_cheque'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files WHERE source = 'bank_cheque'").fetchone() == (0,)


def test_ragged_row_rejects_the_file_naming_its_line(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[7].append("extra"))
    [result] = _load(db, drop, formats)
    assert result.status == "rejected"
    assert "line 8" in (result.error or "")
    assert "line: 8" in (drop / "rejected" / (BANK + ".error.txt")).read_text()
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)


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


def test_rows_without_an_id_get_the_file_hash_and_line(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    no_id = {"bank_cheque_export": formats["bank_cheque_export"].model_copy(update={"id_column": None})}
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[3].__setitem__(0, ""))
    [result] = _load(db, drop, no_id)
    assert result.sha256 is not None
    ids = {sid for (sid,) in db.execute("SELECT source_id FROM raw.records").fetchall()}
    assert ids == {f"{result.sha256}:{line}" for line in range(2, result.rows + 2)}


def test_blank_id_cell_falls_back_to_hash_and_line(
    db: psycopg.Connection, sample: Path, drop: Path, formats: dict[str, CsvFormat]
) -> None:
    _rewrite(sample / "csv" / BANK, drop / BANK, "cp1252", lambda rows: rows[3].__setitem__(0, "  "))
    [result] = _load(db, drop, formats)
    assert result.status == "loaded"
    row = db.execute(
        "SELECT source_id, payload->'row'->>'Reference' FROM raw.records WHERE csv_line = 4"
    ).fetchone()
    assert row == (f"{result.sha256}:4", "  ")


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
        assert conn.execute("SELECT count(*) FROM raw.records").fetchone() == (expected,)


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
