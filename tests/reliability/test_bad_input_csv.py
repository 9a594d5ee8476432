"""Bad CSV drops, through the real drop folder -> raw -> standardize path (issue 10).

A corpus of hand-made files (tests/reliability/corpus/csv) holds what exporters and people get
wrong: files no format can read are rejected whole, to ``rejected/`` with a sidecar naming the file,
the line and the field (or header) and nothing landed; files that parse land every row, and each
bad cell is quarantined naming its intake field while the rows around it are staged. A property
test writes event-platform exports whose cells hypothesis chose (odd text, NUL characters, line
breaks and quotes inside cells, odd dates and amounts, currency codes that do not exist): each file
is either loaded, with every row accounted for after standardization, or rejected with its
reason -- never an exception.

Already covered elsewhere (not repeated): the two landing paths agree on random files
(tests/sources/test_csv_drop_paths.py), cells round-trip exactly (test_csv_drop_roundtrip.py),
readiness, duplicates, archiving and locking (test_csv_drop.py), format files (test_csv_drop_formats.py).
"""

from __future__ import annotations

import csv
import io
import itertools
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from donor_sync.sources.csv_drop import CsvFileResult, CsvFormat, formats_dir, load_drop_folder, load_formats
from donor_sync.standardize.pipeline import standardize_batches
from sandbox.datagen.sources import EVENT_HEADER
from tests.reliability.conftest import PROPERTY, Outcome, account
from tests.standardize.test_pipeline_support import rules

CORPUS = Path(__file__).with_name("corpus") / "csv"
#: Standardization's "now": after every good date in the corpus, before the one in 2099.
NOW = datetime(2026, 3, 10, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def formats() -> dict[str, CsvFormat]:
    return load_formats(formats_dir())


def _drop(folder: Path, *files: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


def _load(conn: psycopg.Connection, folder: Path, formats: dict[str, CsvFormat]) -> CsvFileResult:
    (result,) = load_drop_folder(
        conn,
        folder,
        formats,
        run_id=None,
        quiet_period=timedelta(seconds=60),
        now=datetime.now(UTC) + timedelta(hours=1),
    )
    return result


def _standardize(conn: psycopg.Connection, result: CsvFileResult) -> Outcome:
    assert result.batch_id is not None
    standardize_batches(conn, [result.batch_id], settings=rules(), now=NOW)
    return account(conn, [result.batch_id])


def _nothing_landed(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM raw.all_records(ARRAY(SELECT batch_id FROM raw.batches))"
    ).fetchone() == (0,)


# -- files rejected whole: the sidecar names file, line and field ----------------------------------

#: corpus file -> (error code, line, field or header the error names)
REJECTED = {
    "empty.csv": ("unknown_format", 1, "empty file: no header line"),
    "blank_first_line.csv": ("unknown_format", 1, "the first line is blank"),
    "duplicate_header.csv": ("unknown_format", 1, "header written twice ('Amount')"),
    "png_named_csv.csv": ("unknown_format", 1, "lacks header(s) 'Reference'"),
    "semicolon_delimited.csv": ("unknown_format", 1, "lacks header(s) 'Order ID'"),
    "utf16_export.csv": ("unknown_format", 1, "UTF-16 byte-order mark"),
    "bad_bytes_in_header.csv": ("unknown_format", 1, "header 10 has bytes invalid in utf-8-sig ('Town"),
    "missing_mapped_header.csv": ("missing_header", 1, "field: Amount"),
    "ragged_row.csv": ("ragged_row", 4, "field: Contact Preferences"),
    "unterminated_quote.csv": ("malformed_csv", 4, "unexpected end of data"),
    "text_after_closing_quote.csv": ("malformed_csv", 3, "',' expected after '\"'"),
}


@pytest.mark.parametrize(("name", "expected"), sorted(REJECTED.items()), ids=sorted(REJECTED))
def test_a_file_no_format_can_read_is_rejected_naming_file_line_and_field(
    db: psycopg.Connection,
    tmp_path: Path,
    formats: dict[str, CsvFormat],
    name: str,
    expected: tuple[str, int, str],
) -> None:
    code, line, names = expected
    folder = _drop(tmp_path / "drop", CORPUS / name)
    result = _load(db, folder, formats)
    assert result.status == "rejected"
    assert result.moved_to == folder / "rejected" / name
    sidecar = (folder / "rejected" / f"{name}.error.txt").read_text()
    assert f"file: {name}" in sidecar
    assert f"error: {code}" in sidecar
    assert f"line: {line}" in sidecar
    assert names in sidecar
    assert result.error is not None
    assert result.error.startswith(f"file {name}")
    assert f"line {line}" in result.error
    assert not (folder / name).exists(), "the file left the drop folder"
    _nothing_landed(db)


def test_a_rejected_file_does_not_stop_the_good_one_beside_it(
    db: psycopg.Connection, tmp_path: Path, formats: dict[str, CsvFormat]
) -> None:
    folder = _drop(tmp_path / "drop", CORPUS / "ragged_row.csv", CORPUS / "bank_bad_cells.csv")
    results = {
        r.path.name: r
        for r in load_drop_folder(
            db, folder, formats, run_id=None, now=datetime.now(UTC) + timedelta(hours=1)
        )
    }
    assert (results["ragged_row.csv"].status, results["bank_bad_cells.csv"].status) == ("rejected", "loaded")
    assert _standardize(db, results["bank_bad_cells.csv"]).records == 8


# -- files that load: each bad cell is judged on its own row ----------------------------------------

#: corpus file -> {physical line: (disposition, quarantine codes (field) it must carry)}
LOADED: dict[str, dict[int, tuple[str, set[str]]]] = {
    "event_bad_cells.csv": {
        2: ("staged", set()),
        3: ("quarantined", {"invalid_timestamp (gift_at)"}),  # February 30th
        4: ("quarantined", {"invalid_timestamp (gift_at)"}),  # "yesterday"
        5: ("quarantined", {"negative_amount (amount)"}),
        6: ("quarantined", {"malformed_amount (amount)"}),  # "twenty"
        7: ("quarantined", {"malformed_amount (amount)"}),  # 1e400
        8: ("quarantined", {"unknown_currency (currency)"}),
        9: ("quarantined", {"invalid_email (email)"}),
        10: ("staged", set()),  # a formula: staged, flagged for review
        11: ("quarantined", {"too_long (address_line1)"}),
        12: ("quarantined", {"invalid_encoding (last_name)"}),  # a NUL character
        13: ("quarantined", {"future_timestamp (gift_at)"}),
        14: ("quarantined", {"malformed_amount (amount)", "unknown_currency (currency)"}),  # both empty
        15: ("staged", set()),  # no ids: keyed by the file's hash and the row number
        16: ("staged", set()),  # a line break inside a cell: the row spans lines 16-17
        18: ("quarantined", {"malformed_amount (amount)"}),  # 10^20
    },
    "bank_bad_cells.csv": {
        2: ("staged", set()),
        3: ("quarantined", {"invalid_timestamp (gift_at)"}),
        4: ("quarantined", {"malformed_amount (amount)"}),
        5: ("staged", set()),  # no donor name: the email identifies the donor
        6: ("quarantined", {"invalid_email (email)"}),
        7: ("quarantined", {"unknown_currency (currency)"}),
        8: ("staged", set()),
        9: ("staged", set()),
    },
    "bank_one_row_invalid_byte.csv": {
        2: ("quarantined", {"invalid_encoding (address_line1)"}),
        **{line: ("staged", set()) for line in range(3, 10)},
    },
    # Every row in the wrong encoding, but fewer than the share that rejects a file needs.
    "latin1_saved_as_utf8.csv": {
        line: ("quarantined", {"invalid_encoding (last_name)"}) for line in range(2, 7)
    },
}


@pytest.mark.parametrize(("name", "expected"), sorted(LOADED.items()), ids=sorted(LOADED))
def test_bad_cells_quarantine_their_own_row_naming_the_field(
    db: psycopg.Connection,
    tmp_path: Path,
    formats: dict[str, CsvFormat],
    name: str,
    expected: dict[int, tuple[str, set[str]]],
) -> None:
    result = _load(db, _drop(tmp_path / "drop", CORPUS / name), formats)
    assert (result.status, result.rows, result.loaded) == ("loaded", len(expected), len(expected))
    outcome = _standardize(db, result)
    assert outcome.records == len(expected)
    found: dict[int, tuple[str, set[str]]] = {}
    for line, disposition, reasons in db.execute(
        "SELECT r.csv_line, d.disposition, q.reasons FROM raw.all_records(%s::bigint[]) r"
        " JOIN staging.dispositions d USING (raw_record_id)"
        " LEFT JOIN staging.quarantine q ON q.raw_record_id = r.raw_record_id AND q.released_at IS NULL",
        ([result.batch_id],),
    ).fetchall():
        found[int(line)] = (disposition, {f"{r['code']} ({r['field']})" for r in reasons or []})
    assert found == expected


# -- property: any cells, in a file of a known format ----------------------------------------------

odd_cell = st.one_of(
    st.text(max_size=25),  # any code point but lone surrogates: NUL, controls, line breaks, quotes
    st.sampled_from(
        [
            "",
            " ",
            '"',
            '""quoted""',
            "a,b",
            "line\r\nbreak",
            "\x00",
            "\ufeff",
            '=HYPERLINK("http://x")',
            "2026-02-30 10:00:00",
            "31/12/2025 25:61",
            "-0.00",
            "1e400",
            "١٢٣",
            "9" * 40,
            "XYZ",
            "no-at-sign",
            "y" * 3000,
        ]
    ),
)


@st.composite
def event_exports(draw: st.DrawFn) -> list[list[str]]:
    """Rows of an event-platform export (header first) with some cells replaced by odd ones."""
    rows: list[list[str]] = [list(EVENT_HEADER)]
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        n = next(_ids)
        row = [
            f"ORD-P{n}", f"ATT-P{n}", "2026-03-02 18:30:00", "Ana", "Lima", f"ana{n}@example.org", "",
            "12 Elm St", "", "Austin", "TX", "78701", "US", "Spring Gala", "General", "25.00", "USD", "yes",
            "no", "", "", "",
        ]  # fmt: skip
        for index in draw(st.sets(st.integers(min_value=0, max_value=len(row) - 1), max_size=4)):
            row[index] = draw(odd_cell)
        rows.append(row)
    return rows


def _csv_bytes(rows: list[list[str]], line_end: str) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=line_end).writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


@PROPERTY
@given(rows=event_exports(), line_end=st.sampled_from(["\n", "\r\n"]))
def test_any_cells_in_an_export_are_loaded_and_accounted_for_or_the_file_rejected(
    fresh_db: Callable[..., Any], formats: dict[str, CsvFormat], rows: list[list[str]], line_end: str
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ds-rel-csv-"))
    try:
        (folder / "export.csv").write_bytes(_csv_bytes(rows, line_end))
        with fresh_db() as conn:
            result = _load(conn, folder, formats)
            if result.status == "rejected":
                # Only a whole-file problem rejects it (too many undecodable rows), and it says so.
                assert result.error is not None
                assert result.error.startswith("file export.csv")
                assert (folder / "rejected" / "export.csv.error.txt").exists()
                _nothing_landed(conn)
                return
            assert (result.status, result.rows) == ("loaded", len(rows) - 1)
            outcome = _standardize(conn, result)
            assert outcome.records == len(rows) - 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
