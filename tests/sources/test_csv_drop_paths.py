"""The two landing paths of a CSV file (COPY FORMAT csv, and row by row) land the same rows.

A property test loads random files, with every quirk exporters produce, once by each path and
compares every row; targeted cases pin which path each kind of file takes and why.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from donor_sync.sources.csv_drop import CsvFormat, landing, load_drop_folder
from donor_sync.sources.csv_drop.errors import CsvFileError, FileChanged
from donor_sync.sources.csv_drop.loader import LoadOutcome, file_sha256, load_file
from donor_sync.sources.csv_drop.readiness import DropFile
from donor_sync.sources.csv_drop.rows import CsvRow, count_rows, file_rows

HEADER = ["id", "first", "second"]


def _format(
    encoding: str = "utf-8",
    *,
    header: list[str] = HEADER,
    id_column: str | None = "id",
    delimiter: str = ",",
) -> CsvFormat:
    return CsvFormat.model_validate(
        {
            "name": "any_export",
            "source": "any_source",
            "recognize": {"filenames": ["*.csv"]},
            "encoding": encoding,
            "id_column": id_column,
            "delimiter": delimiter,
            "date_format": "%Y-%m-%d",
            "timezone": "UTC",
            "columns": {"comment": header[-1]},
        }
    )


@dataclass(frozen=True)
class Attempt:
    """What one load of a file did: its outcome and rows, or the error that rejected it."""

    outcome: LoadOutcome | None = None
    rows: tuple[CsvRow, ...] = ()
    load_path: str | None = None
    lines_are_rows: bool | None = None
    error: CsvFileError | None = None


def _attempt(db: psycopg.Connection, path: Path, fmt: CsvFormat, *, fast: bool) -> Attempt:
    """Load ``path`` by ``load_file``; then give the loaded file another hash so it can load again."""
    file = DropFile.stat(path)
    try:
        outcome = load_file(db, file, fmt, sha256=file_sha256(path), run_id=None, allow_fast_path=fast)
    except CsvFileError as exc:
        # A rejected load leaves its batch failed and nothing else: no file row, no rows table.
        failed = db.execute("SELECT status FROM raw.batches ORDER BY batch_id DESC LIMIT 1").fetchone()
        assert failed == ("failed",)
        assert _rows_tables(db) == db.execute("SELECT count(*) FROM raw.csv_files").fetchone()
        return Attempt(error=exc)
    rows = tuple(file_rows(db, outcome.csv_file_id))
    found = db.execute(
        "SELECT load_path, lines_are_rows, rows, first_raw_record_id, last_raw_record_id"
        " FROM raw.csv_files WHERE csv_file_id = %s",
        (outcome.csv_file_id,),
    ).fetchone()
    assert found is not None
    load_path, lines_are_rows, file_row_count, first_id, last_id = found
    assert load_path == outcome.load_path
    assert file_row_count == outcome.rows == outcome.loaded == len(rows)
    if rows:
        # The span bounds the file's ids (raw.csv_record looks rows up in it).
        assert first_id <= rows[0].raw_record_id
        assert rows[-1].raw_record_id <= last_id
    assert [r.row_number for r in rows] == list(range(1, len(rows) + 1))
    # The same bytes must load again by the other path: move this load out of the hash's way.
    db.execute(
        "UPDATE raw.csv_files SET sha256 = sha256(sha256 || convert_to(csv_file_id::text, 'UTF8'))"
        " WHERE csv_file_id = %s",
        (outcome.csv_file_id,),
    )
    db.commit()
    return Attempt(outcome, rows, load_path, lines_are_rows)


def _write(tmp_path: Path, data: bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rows_tables(db: psycopg.Connection) -> tuple[int, ...] | None:
    return db.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename ~ '^csv_file_[0-9]+$'"
    ).fetchone()


def _no_rows_landed(db: psycopg.Connection) -> None:
    assert count_rows(db) == 0
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (0,)
    assert _rows_tables(db) == (0,)


# -- an independent reading of the file: the csv module over the strictly decoded text ---------------


@dataclass(frozen=True)
class Expected:
    """What the csv module reads in a file: its data rows with the line each starts on, or an error code."""

    rows: tuple[tuple[int, tuple[str, ...]], ...] = ()
    error: str | None = None


def _read_with_csv(text: str, delimiter: str) -> Expected:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, tuple[str, ...]]] = []
    try:
        header = next(reader)
        previous = reader.line_num
        for cells in reader:
            line, previous = previous + 1, reader.line_num
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                return Expected(error="ragged_row")
            rows.append((line, tuple(cells)))
    except csv.Error:
        return Expected(error="malformed_csv")
    return Expected(tuple(rows))


def _source_id(cell: str | None, data: bytes, row_number: int) -> str:
    trimmed = (cell or "").strip()  # raw.csv_source_id trims white space as str.strip does
    return trimmed or f"{hashlib.sha256(data).hexdigest()}:r{row_number}"


# -- random files, written byte by byte (not by csv.writer) ------------------------------------------


def _cp1252_chars() -> list[str]:
    chars = []
    for byte in [0x09, *range(0x20, 0x100)]:
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            continue
    return chars


CP1252_CHARS = _cp1252_chars()
#: What a quoted cell may hold besides ordinary characters.
QUOTED_SPECIALS = ['"', '""', "\\.", " "]
#: The line breaks quoted cells of one file may hold (a file's cells rarely mix kinds).
CELL_BREAKS = [(), ("\r",), ("\n",), ("\r\n",), ("\r\n", "\r", "\n")]
#: What can make a file one the fast path refuses (or one no path loads): at most two per file,
#: about half the files have none.
MESSES = (
    "stray_quote",  # 5" frame
    "text_after_close",  # "a"b
    "blank_line",
    "eod_line",  # \. alone on a line
    "eod_in_cell",  # \. alone on a line inside a quoted cell
    "mixed_line_ends",
    "ragged",
    "invalid_bytes",
    "nul",
)
ENCODINGS = {"utf-8": ("utf-8", False), "utf-8-bom": ("utf-8", True), "cp1252": ("cp1252", False)}


@dataclass(frozen=True)
class RandomFile:
    data: bytes
    encoding: str
    delimiter: str
    id_column: str | None
    messes: frozenset[str]


@st.composite
def random_files(draw: st.DrawFn) -> RandomFile:
    encoding_key = draw(st.sampled_from(sorted(ENCODINGS)))
    codec, bom = ENCODINGS[encoding_key]
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    eol = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    specials = {'"', "\r", "\n", delimiter}
    if codec == "cp1252":
        ordinary = st.sampled_from([c for c in CP1252_CHARS if c not in specials])
    else:
        ordinary = st.characters(exclude_categories=("Cs",), exclude_characters="".join(specials) + "\x00")
    plain = st.tuples(
        st.sampled_from(["", " ", "  "]), st.text(ordinary, max_size=6), st.sampled_from(["", " "])
    ).map("".join)
    breaks = draw(st.sampled_from(CELL_BREAKS))
    quoted_specials = st.sampled_from([*QUOTED_SPECIALS, delimiter, *breaks])
    quoted = st.lists(st.one_of(ordinary, quoted_specials), max_size=8).map(
        lambda parts: '"' + "".join(parts).replace('"', '""') + '"'
    )
    cell = st.one_of(plain, quoted)
    rows = draw(st.lists(st.lists(cell, min_size=3, max_size=3), max_size=6))
    messes = draw(st.sets(st.sampled_from(MESSES), max_size=2))

    def some_row() -> list[str]:
        if not rows:
            rows.append([draw(cell) for _ in HEADER])
        return rows[draw(st.integers(0, len(rows) - 1))]

    nonblank = st.text(ordinary, min_size=1, max_size=4).filter(lambda t: t.strip() != "")
    if "stray_quote" in messes:  # 5" frame: a quote inside an unquoted cell, written as it is
        some_row()[draw(st.integers(0, 2))] = draw(nonblank) + '"' + draw(st.text(ordinary, max_size=4))
    if "text_after_close" in messes:
        some_row()[draw(st.integers(0, 2))] = '"' + draw(st.text(ordinary, max_size=4)) + '"' + draw(nonblank)
    if "eod_in_cell" in messes:
        some_row()[draw(st.integers(0, 2))] = f'"{draw(st.text(ordinary, max_size=3))}{eol}\\.{eol}"'
    if "nul" in messes:
        row = some_row()
        row[0] = row[0] + "\x00"
    if "ragged" in messes:
        row = some_row()
        if draw(st.booleans()):
            row.append(draw(plain))
        else:
            row.pop()
    records = [delimiter.join(HEADER), *(delimiter.join(row) for row in rows)]
    if "blank_line" in messes:
        records.insert(draw(st.integers(1, len(records))), "")
    if "eod_line" in messes:
        records.insert(draw(st.integers(1, len(records))), "\\.")
    ends = [eol] * len(records)
    if "mixed_line_ends" in messes:
        ends[draw(st.integers(0, len(records) - 1))] = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    if not draw(st.booleans()):
        ends[-1] = ""  # a last line without its line end
    text = "".join(record + end for record, end in zip(records, ends, strict=True))
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode(codec)
    if "invalid_bytes" in messes:
        after_header = len(records[0]) + len(ends[0]) + (3 if bom else 0)  # the header is ASCII
        at = draw(st.integers(after_header, len(data)))
        data = data[:at] + (b"\x81" if codec == "cp1252" else b"\xff") + data[at:]
    return RandomFile(data, codec, delimiter, draw(st.sampled_from(["id", None])), frozenset(messes))


def _comparable(row: CsvRow) -> tuple[object, ...]:
    return (row.row_number, row.source_id, row.cells, row.encoding_errors, row.raw_line)


def _assert_same_rejection(fast: Attempt, careful: Attempt, name: str) -> None:
    assert fast.error is not None, f"only the careful path rejected it: {careful.error}"
    assert careful.error is not None, f"only the fast path rejected it: {fast.error}"
    assert (fast.error.file, fast.error.code, fast.error.line, fast.error.field) == (
        careful.error.file,
        careful.error.code,
        careful.error.line,
        careful.error.field,
    )
    assert fast.error.file == name


def _assert_same_rows(fast: Attempt, careful: Attempt) -> None:
    assert fast.outcome is not None
    assert careful.outcome is not None
    assert careful.load_path == "row_by_row"
    assert (fast.outcome.rows, fast.outcome.repaired, fast.outcome.encoding) == (
        careful.outcome.rows,
        careful.outcome.repaired,
        careful.outcome.encoding,
    )
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]
    if fast.load_path == "copy_csv":
        assert fast.lines_are_rows is not None
    for quick, slow in zip(fast.rows, careful.rows, strict=True):
        assert slow.line is not None  # read row by row, every line is known
        if fast.load_path == "row_by_row" or fast.lines_are_rows:
            assert quick.line == slow.line
        else:
            assert quick.line is None


def _assert_read_as_the_csv_module_reads(drawn: RandomFile, careful: Attempt) -> None:
    """Check the careful path against the csv module reading the strictly decoded text (if it decodes)."""
    try:
        text = drawn.data.decode("utf-8-sig" if drawn.encoding == "utf-8" else drawn.encoding)
    except UnicodeDecodeError:
        repaired = careful.outcome.repaired if careful.outcome is not None else 0
        assert careful.error is not None or repaired > 0
        return
    if "\x00" in text:
        return
    expected = _read_with_csv(text, drawn.delimiter)
    if expected.error is not None:
        assert careful.error is not None
        assert careful.error.code == expected.error
        return
    assert careful.error is None, careful.error
    assert careful.outcome is not None
    assert careful.outcome.repaired == 0
    id_at = HEADER.index(drawn.id_column) if drawn.id_column else None
    assert [(r.line, tuple(r.cells[h] for h in HEADER), r.source_id) for r in careful.rows] == [
        (line, cells, _source_id(cells[id_at] if id_at is not None else None, drawn.data, n))
        for n, (line, cells) in enumerate(expected.rows, start=1)
    ]


def test_both_paths_land_random_files_identically(
    db: psycopg.Connection, tmp_path_factory: pytest.TempPathFactory
) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    # The fast path reads in blocks: tiny ones put every quote, line end and marker on a boundary.
    @given(drawn=random_files(), block=st.sampled_from([landing.BLOCK_BYTES, 1, 2, 3, 5]))
    # Files that once told the paths apart: line numbers when a cell holds a lone CR; row numbers
    # (so source ids) after COPY refused a row part way through the file; a \. line (the end of
    # COPY's data: the rows after it were lost) read in blocks shorter than the marker.
    @example(
        RandomFile(b'id,first,second\r\nr1,"a\rb",x\r\nr2,y,z\r\n', "utf-8", ",", "id", frozenset()), 1 << 22
    )
    @example(
        RandomFile(b"id,first,second\nr1,a,b\n\nr2,c,d\n", "utf-8", ",", None, frozenset({"blank_line"})),
        1 << 22,
    )
    @example(
        RandomFile(
            b"id,first,second\r\n,a,b\r\n,c,d\n,e,f\r\n", "cp1252", ",", None, frozenset({"mixed_line_ends"})
        ),
        1 << 22,
    )
    @example(
        RandomFile(b"id,first,second\nr1,a,b\n\\.\nr2,c,d\n", "utf-8", ",", "id", frozenset({"eod_line"})), 1
    )
    def check(drawn: RandomFile, block: int) -> None:
        path = _write(tmp_path_factory.mktemp("paths"), drawn.data)
        fmt = _format(drawn.encoding, id_column=drawn.id_column, delimiter=drawn.delimiter)
        with mock.patch.object(landing, "BLOCK_BYTES", block):
            fast = _attempt(db, path, fmt, fast=True)
        careful = _attempt(db, path, fmt, fast=False)

        if careful.error is not None or fast.error is not None:
            _assert_same_rejection(fast, careful, path.name)
        else:
            _assert_same_rows(fast, careful)
            if fast.load_path == "copy_csv":
                assert not drawn.messes & {"invalid_bytes", "nul"}
            paths.append(fast.load_path)
        _assert_read_as_the_csv_module_reads(drawn, careful)

    paths: list[str | None] = []
    check()
    # The comparison has teeth only if many files take the fast path, and many do not.
    # (About a third to a half of the files load by each; a generator that lost that would not.)
    assert paths.count("copy_csv") >= 3, paths
    assert paths.count("row_by_row") >= 3, paths


# -- which path each kind of file takes --------------------------------------------------------------


def _load_both(
    db: psycopg.Connection, tmp_path: Path, data: bytes, fmt: CsvFormat
) -> tuple[Attempt, Attempt]:
    path = _write(tmp_path, data)
    return _attempt(db, path, fmt, fast=True), _attempt(db, path, fmt, fast=False)


def _csv_module_rows(data: bytes, encoding: str, delimiter: str = ",") -> list[list[str]]:
    text = data.decode(encoding)
    return [
        row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True) if row
    ][1:]


def _cells(attempt: Attempt, header: list[str] = HEADER) -> list[list[str]]:
    return [[row.cells[h] for h in header] for row in attempt.rows]


def test_a_plain_cp1252_export_is_parsed_by_postgres(db: psycopg.Connection, tmp_path: Path) -> None:
    data = (
        "id,first,second\r\n"
        'r1,"Green, Jessica",Montréal\r\n'
        'r2,"She said ""hi""",K\u00f6ln \u2013 \u20ac5\r\n'
        "r3,, trailing space \r\n"
        'r4,"",""\r\n'
    ).encode("cp1252")
    fast, careful = _load_both(db, tmp_path, data, _format("cp1252"))
    assert (fast.load_path, fast.lines_are_rows) == ("copy_csv", True)
    assert fast.outcome is not None
    assert fast.outcome.encoding == "cp1252"
    assert _cells(fast) == _csv_module_rows(data, "cp1252") == _cells(careful)
    assert _cells(fast)[1] == ["r2", 'She said "hi"', "K\u00f6ln \u2013 \u20ac5"]
    assert _cells(fast)[2] == ["r3", "", " trailing space "]
    assert [r.line for r in fast.rows] == [r.line for r in careful.rows] == [2, 3, 4, 5]
    assert [r.source_id for r in fast.rows] == ["r1", "r2", "r3", "r4"]
    assert all(r.encoding_errors == [] and r.raw_line is None for r in fast.rows)


def test_a_stray_quote_is_read_row_by_row_as_the_csv_module_reads_it(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    data = b'id,first,second\nr1,5" frame,ok\nr2,"quoted, cell",x\nr3,a"b"c,"y"\n'
    fast, careful = _load_both(db, tmp_path, data, _format())
    assert fast.load_path == "row_by_row"
    assert _cells(fast) == _csv_module_rows(data, "utf-8") == _cells(careful)
    assert _cells(fast)[0] == ["r1", '5" frame', "ok"]
    assert _cells(fast)[2] == ["r3", 'a"b"c', "y"]
    assert [r.line for r in fast.rows] == [2, 3, 4]


@pytest.mark.parametrize("id_column", ["id", None])
def test_a_blank_line_in_the_middle_is_skipped_row_by_row(
    db: psycopg.Connection, tmp_path: Path, id_column: str | None
) -> None:
    data = b"id,first,second\r\nr1,a,b\r\n\r\nr2,c,d\r\n"
    fast, careful = _load_both(db, tmp_path, data, _format(id_column=id_column))
    assert fast.load_path == "row_by_row"  # COPY refused the blank line, after landing row 1
    assert _cells(fast) == [["r1", "a", "b"], ["r2", "c", "d"]] == _cells(careful)
    assert [r.line for r in fast.rows] == [2, 4]  # the blank line 3 is no row, and counts as a line
    # Numbered from 1 again although the refused COPY drew row 1's number.
    assert [r.row_number for r in fast.rows] == [r.row_number for r in careful.rows] == [1, 2]
    sha = hashlib.sha256(data).hexdigest()
    ids = ["r1", "r2"] if id_column else [f"{sha}:r1", f"{sha}:r2"]
    assert [r.source_id for r in fast.rows] == [r.source_id for r in careful.rows] == ids


def test_invalid_bytes_are_read_row_by_row_and_kept(db: psycopg.Connection, tmp_path: Path) -> None:
    data = b"id,first,second\nr1,fine,ok\nr2,caf\xe9,ok\n"  # a cp1252 byte in a UTF-8 file
    fast, careful = _load_both(db, tmp_path, data, _format())
    assert fast.load_path == "row_by_row"
    assert fast.outcome is not None
    assert fast.outcome.repaired == 1
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]
    good, bad = fast.rows
    assert (good.encoding_errors, good.raw_line) == ([], None)
    assert bad.encoding_errors == ["first"]
    assert bad.cells == {"id": "r2", "first": "caf\ufffd", "second": "ok"}
    assert bad.raw_line == b"r2,caf\xe9,ok\n"
    assert bad.line == 3


@pytest.mark.parametrize(
    ("data", "header", "path", "cells"),
    [
        pytest.param(
            b'id,first,second\nr1,"\\.",x\nr2,y,z\n',
            HEADER,
            "copy_csv",
            [["r1", "\\.", "x"], ["r2", "y", "z"]],
            id="quoted-cell-is-the-marker",
        ),
        pytest.param(
            b'id,first,second\nr1,"above\n\\.\nbelow",x\nr2,y,z\n',
            HEADER,
            "row_by_row",
            [["r1", "above\n\\.\nbelow", "x"], ["r2", "y", "z"]],
            id="marker-alone-on-a-line-inside-a-quoted-cell",
        ),
        pytest.param(
            b'id,first,second\r\nr1,"above\r\n\\.\r\n",x\r\nr2,y,z',
            HEADER,
            "row_by_row",
            [["r1", "above\r\n\\.\r\n", "x"], ["r2", "y", "z"]],
            id="marker-line-inside-a-quoted-cell-crlf",
        ),
        pytest.param(
            b"id,first,second\n\\.,a,b\n\\.x,c,d\n",
            HEADER,
            "copy_csv",
            [["\\.", "a", "b"], ["\\.x", "c", "d"]],
            id="marker-starts-a-line-of-cells",
        ),
        pytest.param(b"id\nr1\n\\.\nr2\n", ["id"], "row_by_row", [["r1"], ["\\."], ["r2"]], id="one-column"),
        pytest.param(
            b"id\nr1\nr2\n\\.", ["id"], "row_by_row", [["r1"], ["r2"], ["\\."]], id="one-column-last"
        ),
    ],
)
def test_an_end_of_data_marker_loses_no_row(
    db: psycopg.Connection, tmp_path: Path, data: bytes, header: list[str], path: str, cells: list[list[str]]
) -> None:
    fmt = _format(header=header, id_column=None)
    fast, careful = _load_both(db, tmp_path, data, fmt)
    assert fast.load_path == path
    assert _cells(fast, header) == cells == _cells(careful, header)
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        pytest.param(b"id,first,second\nr1,a,b\n\\.\nr2,c,d\n", 3, id="marker-line"),
        pytest.param(b"id,first,second\nr1,a,b\nr2,c,d\n\\.", 4, id="marker-last-line"),
        pytest.param(b"id,first,second\r\nr1,a,b\r\n\\.\r\nr2,c,d\r\n", 3, id="marker-line-crlf"),
    ],
)
def test_an_end_of_data_marker_line_in_a_wider_file_rejects_it_rather_than_ending_it(
    db: psycopg.Connection, tmp_path: Path, data: bytes, line: int
) -> None:
    fast, careful = _load_both(db, tmp_path, data, _format())
    for attempt in (fast, careful):
        assert attempt.error is not None
        assert (attempt.error.code, attempt.error.line) == ("ragged_row", line)
    _no_rows_landed(db)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        pytest.param(b"id,first,second\nr1,a,b\nr2,c,d,extra\nr3,e,f\n", 3, id="too-many"),
        pytest.param(b"id,first,second\r\nr1,a,b\r\nr2,c,d\r\nr3,e\r\n", 4, id="too-few"),
        pytest.param(b'id,first,second\nr1,"multi\nline",b\nr2,c\n', 4, id="after-a-multiline-cell"),
    ],
)
def test_a_ragged_row_rejects_the_file_naming_its_line_and_the_header_width(
    db: psycopg.Connection, tmp_path: Path, data: bytes, line: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        fast, careful = _load_both(db, tmp_path, data, _format())
    # Postgres found it first (COPY refused the row), then the careful path named its line.
    assert "read row by row (COPY refused a row: 22P04" in caplog.text
    for attempt in (fast, careful):
        error = attempt.error
        assert error is not None
        assert (error.code, error.file, error.line, error.format_name) == (
            "ragged_row",
            "export.csv",
            line,
            "any_export",
        )
        message = error.describe()
        assert "file export.csv" in message
        assert f"line {line}" in message
        assert "where the header has 3" in message
        assert error.field in {"second", "third"}
        assert f"field {error.field!r}" in message
    assert str(fast.error) == str(careful.error)
    _no_rows_landed(db)


def test_a_one_column_file_is_read_row_by_row(db: psycopg.Connection, tmp_path: Path) -> None:
    data = b"id\nr1\n\nr2\n"  # to COPY the blank line would be a row with an empty cell
    fast, careful = _load_both(db, tmp_path, data, _format(header=["id"]))
    assert fast.load_path == "row_by_row"
    assert [r.source_id for r in fast.rows] == ["r1", "r2"]
    assert [r.line for r in fast.rows] == [2, 4]
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        pytest.param(b'id,first,second\nr1,"two\nlines",x\nr2,y,z\n', [2, 4], id="lf"),
        pytest.param(b'id,first,second\r\nr1,"two\r\nlines",x\r\nr2,y,z\r\n', [2, 4], id="crlf"),
        pytest.param(b'id,first,second\r\nr1,"two\rlines",x\r\nr2,y,z\r\n', [2, 4], id="lone-cr-in-crlf"),
        pytest.param(b'id,first,second\r\nr1,"two\nlines",x\r\nr2,y,z\r\n', [2, 4], id="lone-lf-in-crlf"),
        pytest.param(b'id,first,second\rr1,"two\nlines",x\rr2,y,z\r', [2, 4], id="lf-in-cr"),
    ],
)
def test_a_line_break_inside_a_cell_leaves_lines_unknown_on_the_fast_path(
    db: psycopg.Connection, tmp_path: Path, data: bytes, lines: list[int]
) -> None:
    fast, careful = _load_both(db, tmp_path, data, _format())
    assert (fast.load_path, fast.lines_are_rows) == ("copy_csv", False)
    assert [r.line for r in fast.rows] == [None, None]
    assert [r.line for r in careful.rows] == lines
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]
    assert fast.outcome is not None
    csv_lines = db.execute(
        "SELECT csv_line FROM raw.csv_records(%s) ORDER BY raw_record_id", ([fast.outcome.batch_id],)
    ).fetchall()
    assert csv_lines == [(None,), (None,)]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"id,first,second\nr1,a,b\nr2,c,d\n", id="lf"),
        pytest.param(b"id,first,second\r\nr1,a,b\r\nr2,c,d", id="crlf-no-final-line-end"),
        pytest.param(b"id,first,second\rr1,a,b\rr2,c,d\r", id="cr"),
    ],
)
def test_without_line_breaks_in_cells_the_fast_path_knows_every_line(
    db: psycopg.Connection, tmp_path: Path, data: bytes
) -> None:
    fast, careful = _load_both(db, tmp_path, data, _format())
    assert (fast.load_path, fast.lines_are_rows) == ("copy_csv", True)
    assert [r.line for r in fast.rows] == [r.line for r in careful.rows] == [2, 3]


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "row-by-row"])
@pytest.mark.parametrize("change", ["bytes", "stat"])
def test_a_file_that_changed_since_it_was_hashed_lands_nothing_by_either_path(
    db: psycopg.Connection, tmp_path: Path, fast: bool, change: str
) -> None:
    path = _write(tmp_path, b"id,first,second\nr1,a,b\nr2,c,d\n")
    file, sha256 = DropFile.stat(path), file_sha256(path)
    if change == "bytes":  # what was read is not what was hashed
        sha256 = hashlib.sha256(b"the bytes as they were when hashed").digest()
    else:  # the writer touched it since it was listed
        file = DropFile(file.path, file.size, file.mtime_ns - 1)
    with pytest.raises(FileChanged):
        load_file(db, file, _format(), sha256=sha256, run_id=None, allow_fast_path=fast)
    _no_rows_landed(db)
    assert db.execute("SELECT status, error FROM raw.batches").fetchall() == [("failed", "FileChanged")]


def test_a_cell_over_the_csv_module_field_limit_lands_by_both_paths(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    data = b"id,first,second\nr1," + b"x" * 200_000 + b",y\n"
    fast, careful = _load_both(db, tmp_path, data, _format())
    assert fast.load_path == "copy_csv"
    assert careful.error is None, careful.error
    assert [_comparable(r) for r in fast.rows] == [_comparable(r) for r in careful.rows]


# -- logs ----------------------------------------------------------------------------------------------

SECRET = "jane.secret@example.com"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(f'id,first,second\nr1,{SECRET} 5" frame,x\n'.encode(), id="stray-quote"),
        pytest.param(f"id,first,second\nr1,{SECRET},x\n\nr2,{SECRET},y\n".encode(), id="blank-line"),
        pytest.param(f"id,first,second\nr1,{SECRET}".encode() + b"\xff,x\n", id="bytes"),
        pytest.param(f"id,first,second\r\nr1,{SECRET},x\nr2,{SECRET},y\r\n".encode(), id="mixed-line-ends"),
        pytest.param(f"id,first,second\nr1,{SECRET},x,{SECRET}\nr2,a,b\n".encode(), id="ragged"),
        pytest.param(f'id,first,second\nr1,"{SECRET}\n\\.\n",x\n'.encode(), id="marker"),
        pytest.param(f'id,first,second\nr1,"{SECRET}",x\nr2,"{SECRET}'.encode(), id="unterminated"),
    ],
)
def test_a_refused_fast_path_logs_no_cell_content(
    db: psycopg.Connection,
    tmp_path: Path,
    data: bytes,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write(tmp_path, data)
    fmt = _format()
    with caplog.at_level(logging.DEBUG):
        [result] = load_drop_folder(
            db, tmp_path, {fmt.name: fmt}, run_id=None, quiet_period=timedelta(0), now=datetime.now(UTC)
        )
    assert "read row by row" in caplog.text  # the refusal is logged (and why), its content is not
    out, err = capsys.readouterr()
    for text in (caplog.text, out, err, result.error or "", result.detail or ""):
        assert "jane" not in text
    for record in caplog.records:
        assert "jane" not in record.getMessage()
    rejected = tmp_path / "rejected" / "export.csv.error.txt"
    if rejected.exists():
        assert "jane" not in rejected.read_text()


def test_id_cells_are_trimmed_of_any_white_space_as_str_strip_does(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    data = "id,first,second\n\u00a0r1\t,a,b\n\u2003 ,c,d\n".encode()
    fast, careful = _load_both(db, tmp_path, data, _format())
    for attempt in (fast, careful):
        assert attempt.error is None
        ids = [row.source_id for row in attempt.rows]
        assert ids[0] == "r1"
        assert ids[1].endswith(":r2")  # a blank id (only white space): the file hash and row number
    assert fast.load_path == "copy_csv"


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "iso8859-15"])
def test_every_character_of_a_server_transcoded_code_page_lands_as_python_decodes_it(
    db: psycopg.Connection, tmp_path: Path, encoding: str
) -> None:
    # Postgres converts these code pages itself on the fast path: its table must be Python's.
    chars = [bytes([b]) for b in range(0xA0 if encoding == "latin-1" else 0x80, 0x100)]
    valid = [c for c in chars if c.decode(encoding, "ignore")]
    body = b"".join(b"r%d,x%sx,%s\r\n" % (i, c, c) for i, c in enumerate(valid))
    fast, careful = _load_both(db, tmp_path, b"id,first,second\r\n" + body, _format(encoding))
    assert fast.load_path == "copy_csv"
    assert [r.cells["first"] for r in fast.rows] == [f"x{c.decode(encoding)}x" for c in valid]
    assert [r.cells for r in fast.rows] == [r.cells for r in careful.rows]
