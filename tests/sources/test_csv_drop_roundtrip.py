"""Cells of any content land exactly as the file's cells; bytes the encoding refuses are kept, not lost."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.sources.csv_drop import CsvFormat, load_drop_folder
from donor_sync.sources.csv_drop.decoding import UTF8_EVIDENCE_LINES, resolve_encoding
from donor_sync.sources.csv_drop.errors import CsvFileError
from donor_sync.sources.csv_drop.readiness import is_hidden, is_marker, is_temporary
from donor_sync.sources.csv_drop.rows import batch_rows, count_rows

HEADER = ["id", "first", "second", "third"]
_ids = itertools.count(1)


def _format(encoding: str) -> CsvFormat:
    return CsvFormat.model_validate(
        {
            "name": "any_export",
            "source": "any_source",
            "recognize": {"filenames": ["*.csv"]},
            "encoding": encoding,
            "id_column": "id",
            "date_format": "%Y-%m-%d",
            "timezone": "UTC",
            "columns": {"comment": "first", "designation": "second", "campaign": "third"},
        }
    )


def _cp1252_chars() -> list[str]:
    chars = []
    for byte in range(0x20, 0x100):
        try:
            chars.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            continue
    return [*chars, "\r", "\n", "\r\n", '"', ",", '""']


CELLS = {
    # Any text Postgres can hold: quotes, delimiters, CR/LF inside quotes, NEL and U+2028, emoji.
    "utf-8": st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12),
    "cp1252": st.lists(st.sampled_from(_cp1252_chars()), max_size=10).map("".join),
}


#: How exporters write: CRLF with minimal quoting, or LF with every cell quoted (csv.writer leaves a
#: lone CR unquoted under an LF terminator, which no reader can tell from a line end).
STYLES = {"crlf-minimal": ("\r\n", csv.QUOTE_MINIMAL), "lf-all": ("\n", csv.QUOTE_ALL)}


def _write(path: Path, rows: list[list[str]], encoding: str, *, bom: bool, style: str) -> str:
    terminator, quoting = STYLES[style]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=terminator, quoting=quoting).writerows([HEADER, *rows])
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode(encoding))
    return buffer.getvalue()


def _start_lines(text: str) -> list[int]:
    """Return the line each data row starts on, as the csv module counts lines (CRLF, LF, lone CR)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    starts, previous = [], reader.line_num
    for _ in reader:
        starts.append(previous + 1)
        previous = reader.line_num
    return starts


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_random_cells_round_trip_exactly(
    db: psycopg.Connection, tmp_path_factory: pytest.TempPathFactory, encoding: str
) -> None:
    fmt = _format(encoding)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        rows=st.lists(st.lists(CELLS[encoding], min_size=3, max_size=3), min_size=1, max_size=6),
        bom=st.booleans() if encoding == "utf-8" else st.just(False),
        style=st.sampled_from(sorted(STYLES)),
    )
    def check(rows: list[list[str]], bom: bool, style: str) -> None:
        drop = tmp_path_factory.mktemp("roundtrip")
        first_id = next(_ids)
        full = [[f"r{first_id}-{i}", *cells] for i, cells in enumerate(rows)]
        text = _write(drop / "export.csv", full, encoding, bom=bom, style=style)
        [result] = load_drop_folder(
            db,
            drop,
            {fmt.name: fmt},
            run_id=None,
            quiet_period=timedelta(0),
            now=datetime.now(UTC) + timedelta(1),
        )
        assert (result.status, result.rows, result.loaded, result.encoding_errors) == (
            "loaded",
            len(rows),
            len(rows),
            0,
        )
        assert result.batch_id is not None
        landed = batch_rows(db, result.batch_id)
        # In file order, each row with its id, its cells exactly, and nothing repaired.
        assert [r.source_id for r in landed] == [row[0].strip() for row in full]
        for row, cells in zip(landed, full, strict=True):
            assert row.cells == dict(zip(HEADER, cells, strict=True))
            assert (row.encoding_errors, row.raw_line) == ([], None)
        # The line each row starts on, wherever the path landing it knows it (the fast path does
        # not when a cell holds a line break).
        found = db.execute(
            "SELECT load_path, lines_are_rows FROM raw.csv_files WHERE batch_id = %s", (result.batch_id,)
        ).fetchone()
        assert found is not None
        load_path, lines_are_rows = found
        lines = [r.line for r in landed]
        if load_path == "copy_csv" and not lines_are_rows:
            assert lines == [None] * len(full)
        else:
            assert lines == _start_lines(text)

    check()


def test_nul_characters_are_replaced_and_the_row_kept_with_its_bytes(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    fmt = _format("utf-8")
    data = b"id,first,second,third\nr1,ok,fine,good\nr2,bad\x00cell,fine,\xff\n"
    (tmp_path / "export.csv").write_bytes(data)
    [result] = load_drop_folder(
        db,
        tmp_path,
        {fmt.name: fmt},
        run_id=None,
        quiet_period=timedelta(0),
        now=datetime.now(UTC) + timedelta(1),
    )
    assert (result.status, result.rows, result.encoding_errors) == ("loaded", 2, 1)
    assert result.batch_id is not None
    good, bad = batch_rows(db, result.batch_id)
    assert (good.source_id, good.encoding_errors, good.raw_line) == ("r1", [], None)
    assert (bad.source_id, bad.line, bad.row_number) == ("r2", 3, 2)
    assert bad.encoding_errors == ["first", "third"]
    assert bad.cells == {"id": "r2", "first": "bad\ufffdcell", "second": "fine", "third": "\ufffd"}
    assert bad.raw_line == b"r2,bad\x00cell,fine,\xff\n"
    assert db.execute("SELECT load_path FROM raw.csv_files").fetchone() == ("row_by_row",)


def test_a_file_mostly_in_another_encoding_is_rejected_as_mis_encoded(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    fmt = _format("utf-8")
    rows = [f"r{i},Montr\xe9al,Z\xfcrich,x".encode("cp1252") for i in range(30)]
    (tmp_path / "export.csv").write_bytes(b"id,first,second,third\n" + b"\n".join(rows) + b"\n")
    [result] = load_drop_folder(
        db,
        tmp_path,
        {fmt.name: fmt},
        run_id=None,
        quiet_period=timedelta(0),
        now=datetime.now(UTC) + timedelta(1),
    )
    assert result.status == "rejected"
    assert "30 of 30 rows have bytes invalid in utf-8" in (result.error or "")
    assert count_rows(db) == 0
    assert db.execute("SELECT count(*) FROM raw.records").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM raw.csv_files").fetchone() == (0,)
    assert db.execute("SELECT status, error FROM raw.batches").fetchone() == ("failed", "wrong_encoding")


# -- encodings and names, without a database ---------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "data", "expected"),
    [
        pytest.param("cp1252", b"a,b\r\nMontr\xe9al,1\r\n", ("cp1252", "cp1252"), id="cp1252"),
        pytest.param("utf-8", codecs.BOM_UTF8 + b"a,b\n", ("utf-8-sig", "utf-8-sig"), id="utf8-bom-stripped"),
        pytest.param("utf-8-sig", b"a,b\n", ("utf-8-sig", "utf-8"), id="sig-without-bom"),
        pytest.param("detect", codecs.BOM_UTF8 + b"a,b\n", ("utf-8-sig", "utf-8-sig"), id="detect-bom"),
        pytest.param("detect", b"a,b\n1,2\n", ("utf-8-sig", "utf-8"), id="detect-ascii-as-utf8"),
        pytest.param(
            "cp1252",
            b"a,b\r\n" + "Ren\xc3\xa9e,1\r\n".encode("latin-1") * 3,
            ("cp1252", "cp1252"),
            id="few-mojibake",
        ),
    ],
)
def test_encoding_resolution(declared: str, data: bytes, expected: tuple[str, str]) -> None:
    encoding = resolve_encoding(_format(declared), data, file_name="x.csv")
    assert (encoding.codec, encoding.name) == expected


@pytest.mark.parametrize(
    ("declared", "data", "reason"),
    [
        pytest.param("utf-8", codecs.BOM_UTF16_LE + "a,b".encode("utf-16-le"), "UTF-16", id="utf16-bom"),
        pytest.param("cp1252", codecs.BOM_UTF8 + b"a,b\n", "UTF-8 byte-order mark", id="bom-vs-cp1252"),
        pytest.param(
            "cp1252",
            b"a,b\n" + "Montréal,1\n".encode() * UTF8_EVIDENCE_LINES,
            "valid UTF-8",
            id="utf8-declared-cp1252",
        ),
    ],
)
def test_encoding_contradicting_the_declaration_is_refused(declared: str, data: bytes, reason: str) -> None:
    with pytest.raises(CsvFileError) as caught:
        resolve_encoding(_format(declared), data, file_name="x.csv")
    assert reason in caught.value.reason
    assert caught.value.code == "wrong_encoding"


@pytest.mark.parametrize(
    ("name", "temporary", "hidden", "marker"),
    [
        ("gifts.csv", False, False, False),
        ("gifts.csv.part", True, False, False),
        ("gifts.csv.tmp", True, False, False),
        ("gifts.csv.crdownload", True, False, False),
        ("~$gifts.csv", True, False, False),
        ("gifts.csv~", True, False, False),
        (".gifts.csv", False, True, False),
        (".DS_Store", False, True, False),
        ("gifts.csv.done", False, False, True),
        ("gifts.OK", False, False, True),
    ],
)
def test_file_names(name: str, temporary: bool, hidden: bool, marker: bool) -> None:
    assert (is_temporary(name), is_hidden(name), is_marker(name)) == (temporary, hidden, marker)
