"""Turn a dropped file's bytes into its header and rows, keeping every byte of rows that do not decode.

The file is decoded as a stream with ``surrogateescape``, so a byte that is invalid in the
encoding never stops the file: it becomes a lone surrogate, which the payload encoder refuses;
that row alone is then repaired (:meth:`RowReader.repair`): its cells decoded with ``replace``,
the headers affected listed, and the exact original bytes of its lines kept for quarantine.
Python's ``csv`` module parses the decoded text (quoted delimiters, doubled quotes, line breaks
inside quotes) and gives each row its physical line number.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

import charset_normalizer

from donor_sync.sources.csv_drop.errors import CsvFileError
from donor_sync.sources.csv_drop.formats import DETECT, CsvFormat, normalize_encoding

#: Longest cell the careful path reads (the csv module's own default is 131,072 characters).
MAX_CELL_CHARS: Final = 256 << 20
#: Bytes read from the start of a file to sniff or verify its encoding.
SAMPLE_BYTES: Final = 1 << 20
#: Lines with non-ASCII bytes, all valid UTF-8, that prove a file declared as a legacy encoding is UTF-8.
UTF8_EVIDENCE_LINES: Final = 20

_UTF8_FAMILY: Final = frozenset({"utf-8", "utf-8-sig"})
_WIDE_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass(frozen=True)
class FileEncoding:
    """How one file's bytes are decoded.

    :param codec: the codec that decodes the stream (``utf-8-sig`` strips a byte-order mark).
    :param name: the encoding recorded in raw.csv_files (``cp1252``, ``utf-8``, ``utf-8-sig``).
    :param raw_codec: the codec that turns decoded lines back into their exact original bytes.
    :param detected: whether charset-normalizer chose it (``encoding: detect``).
    """

    codec: str
    name: str
    raw_codec: str
    detected: bool = False


def resolve_encoding(fmt: CsvFormat, sample: bytes, *, file_name: str) -> FileEncoding:
    """Return the encoding to read a file with, from its format and the first bytes of the file.

    A declared encoding is verified: a UTF-16/32 byte-order mark, a UTF-8 byte-order mark on a file
    declared in a legacy encoding, or a legacy-declared file whose non-ASCII lines are all valid
    UTF-8 (at least :data:`UTF8_EVIDENCE_LINES` of them) are rejected. A UTF-8 byte-order mark is
    stripped. ``detect`` asks charset-normalizer (plain ASCII is read as UTF-8, its superset).

    :raises CsvFileError: the bytes contradict the declared encoding, or none can be detected.
    """

    def reject(reason: str) -> CsvFileError:
        return CsvFileError(file_name, reason, code="wrong_encoding", format_name=fmt.name)

    for bom, family in _WIDE_BOMS:
        if sample.startswith(bom):
            raise reject(f"starts with a {family} byte-order mark; only ASCII-compatible encodings are read")
    has_bom = sample.startswith(codecs.BOM_UTF8)
    declared = fmt.encoding
    if declared == DETECT:
        if has_bom:
            return FileEncoding("utf-8-sig", "utf-8-sig", "utf-8", detected=True)
        best = charset_normalizer.from_bytes(_whole_lines(sample)).best()
        if best is None:
            raise reject("charset-normalizer cannot tell its encoding; declare one in the format")
        try:
            name = normalize_encoding(best.encoding)
        except ValueError as exc:
            raise reject(f"detected encoding {best.encoding!r} is not supported: {exc}") from None
        name = "utf-8" if name == "ascii" else name
        return _family(name, has_bom=False, detected=True)
    if declared in _UTF8_FAMILY:
        return _family(declared, has_bom=has_bom)
    if has_bom:
        raise reject(f"starts with a UTF-8 byte-order mark but the format declares {declared}")
    if _looks_utf8(sample):
        raise reject(
            f"its non-ASCII bytes are valid UTF-8 on {UTF8_EVIDENCE_LINES}+ lines, but the format "
            f"declares {declared}; fix the export or the format's encoding"
        )
    return FileEncoding(declared, declared, declared)


def _family(name: str, *, has_bom: bool, detected: bool = False) -> FileEncoding:
    if name in _UTF8_FAMILY:
        return FileEncoding("utf-8-sig", "utf-8-sig" if has_bom else "utf-8", "utf-8", detected)
    return FileEncoding(name, name, name, detected)


def _whole_lines(sample: bytes) -> bytes:
    """Return ``sample`` cut after its last line end (a sample may end inside a character)."""
    if len(sample) < SAMPLE_BYTES:
        return sample
    cut = sample.rfind(b"\n")
    return sample[: cut + 1] if cut > 0 else sample


def _looks_utf8(sample: bytes) -> bool:
    """Return whether enough lines carry non-ASCII bytes and all of the sample is valid UTF-8."""
    body = _whole_lines(sample)
    if body.isascii():
        return False
    if sum(1 for line in body.split(b"\n") if not line.isascii()) < UTF8_EVIDENCE_LINES:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class RepairedRow:
    """A row with bytes invalid in the encoding (or NUL characters, which Postgres text cannot hold)."""

    cells: list[str]
    encoding_errors: list[str]
    raw: bytes


def _needs_repair(cell: str) -> bool:
    if "\x00" in cell:
        return True
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class RowReader:
    """Read the header and the data rows of one file, with their physical line numbers.

    :raises CsvFileError: from the constructor (no header, duplicate headers, header not decodable)
        and from :meth:`rows` (malformed quoting, a row whose cell count differs from the header's).
    """

    #: Decoded lines kept for the row being read (cleared between rows once this many accumulate).
    _KEEP_LINES: Final = 4096

    def __init__(self, handle: BinaryIO, encoding: FileEncoding, fmt: CsvFormat, *, file_name: str) -> None:
        """Start reading ``handle`` (positioned at the start of the file) and read the header."""
        self.encoding = encoding
        self.file_name = file_name
        self.format_name = fmt.name
        # newline="": line ends reach the csv module untranslated, as its documentation asks.
        self._text = io.TextIOWrapper(handle, encoding=encoding.codec, errors="surrogateescape", newline="")
        self._lines: list[str] = []
        # COPY lands cells of any length; the csv module refuses those over its limit (128 KiB by
        # default, process-wide), so raise it to what a Postgres text value can reasonably hold.
        csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
        self._reader = csv.reader(
            self._tracked(), delimiter=fmt.delimiter, quotechar=fmt.quotechar, doublequote=True, strict=True
        )
        self.blank_lines = 0
        self.header = self._read_header()

    def _tracked(self) -> Iterator[str]:
        keep = self._lines.append
        for line in self._text:
            keep(line)
            yield line

    def _error(self, reason: str, code: str, line: int | None, field: str | None = None) -> CsvFileError:
        return CsvFileError(
            self.file_name, reason, code=code, line=line, field=field, format_name=self.format_name
        )

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader)
        except StopIteration:
            raise self._error("empty file: no header line", "empty_file", None) from None
        except csv.Error as exc:
            raise self._error(f"malformed CSV: {exc}", "malformed_csv", self._reader.line_num) from None
        if not header or not any(h.strip() for h in header):
            raise self._error("the first line is blank; it must be the header", "no_header", 1)
        for index, name in enumerate(header):
            if _needs_repair(name):
                raise self._error(
                    f"header {index + 1} has bytes invalid in {self.encoding.name}",
                    "wrong_encoding",
                    1,
                    name.encode(self.encoding.raw_codec, "surrogateescape").decode(
                        self.encoding.raw_codec, "replace"
                    ),
                )
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise self._error("header written twice", "duplicate_header", 1, name)
            seen.add(name)
        return header

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Yield ``(line, cells)`` for every data row; blank lines are skipped and counted.

        Cells are exactly the text of the file (strings, empty ones kept). A cell may hold lone
        surrogates for bytes invalid in the encoding; pass such a row to :meth:`repair`.
        """
        reader, lines, width, keep = self._reader, self._lines, len(self.header), self._KEEP_LINES
        previous = reader.line_num
        try:
            for cells in reader:
                line = previous + 1
                previous = reader.line_num
                if len(cells) != width:
                    if not cells:
                        self.blank_lines += 1
                        continue
                    if len(cells) < width:  # the first header left without a cell
                        field, detail = self.header[len(cells)], "no cell for it"
                    else:  # the last header: the cells after it have none
                        field, detail = self.header[-1], f"{len(cells) - width} extra cell(s) after it"
                    raise self._error(
                        f"{len(cells)} cells where the header has {width}; {detail}",
                        "ragged_row",
                        line,
                        field,
                    )
                yield line, cells
                if len(lines) > keep:
                    lines.clear()
        except csv.Error as exc:
            raise self._error(f"malformed CSV: {exc}", "malformed_csv", previous + 1) from None

    def repair(self, line: int, cells: list[str]) -> RepairedRow:
        """Return the row just yielded for ``line`` decoded with ``replace``, its bad headers, its bytes."""
        spanned = self._reader.line_num - line + 1
        raw_codec = self.encoding.raw_codec
        raw = b"".join(text.encode(raw_codec, "surrogateescape") for text in self._lines[-spanned:])
        fixed: list[str] = []
        bad: list[str] = []
        for name, cell in zip(self.header, cells, strict=True):
            if _needs_repair(cell):
                bad.append(name)
                fixed.append(
                    cell.encode(raw_codec, "surrogateescape")
                    .decode(raw_codec, "replace")
                    .replace("\x00", "\ufffd")
                )
            else:
                fixed.append(cell)
        return RepairedRow(fixed, bad, raw)
