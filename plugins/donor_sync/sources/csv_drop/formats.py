"""Export formats of the CSV drop: one YAML file per format under ``include/mappings/csv_formats/``.

A format says how to recognize a dropped file, how to read its bytes (encoding, delimiter, quote),
which column identifies a row, how its dates and amounts are written, and which header feeds which
intake field (:data:`donor_sync.standardize.intake.INTAKE_FIELDS`). The loader lands rows exactly as
written; standardization reads ``columns``, ``date_format``, ``timezone``, ``decimal``,
``thousands`` and ``source`` from here to project and parse them.

Errors name the YAML file, the line (from YAML's node marks) and the field.
"""

from __future__ import annotations

import codecs
import difflib
import fnmatch
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from donor_sync.errors import ConfigError
from donor_sync.standardize.intake import INTAKE_FIELDS
from donor_sync.yaml_source import line_of, read_config_text

__all__ = ["DETECT", "CsvFormat", "Recognize", "load_format", "load_formats", "normalize_encoding"]

#: ``encoding: detect`` asks charset-normalizer to guess the encoding from the bytes.
DETECT: Final = "detect"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # core.system_name
_PROBE = 'a,;|\t"\r\n'  # the structural characters a CSV uses must be single ASCII bytes


def normalize_encoding(name: str) -> str:
    """Return the codec's canonical name (``CP-1252`` -> ``cp1252``) for an ASCII-compatible codec.

    Only ASCII-compatible encodings are supported (not UTF-16/32 or EBCDIC): byte-order-mark and
    UTF-8 checks run on the raw bytes, and delimiters, quotes and line ends are then the same
    bytes whatever the encoding.

    :raises ValueError: unknown codec, or one that is not ASCII-compatible (UTF-16, EBCDIC).
    """
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r} (a Python codec name such as cp1252 or utf-8)") from None
    try:
        # utf-8-sig writes a byte-order mark first, which is fine; what follows must be plain ASCII.
        ascii_bytes = _PROBE.encode("ascii")
        ascii_compatible = _PROBE.encode(info.name).endswith(ascii_bytes) and (
            ascii_bytes.decode(info.name) == _PROBE
        )
    except UnicodeError:
        ascii_compatible = False
    if not ascii_compatible:
        raise ValueError(f"encoding {name!r} is not ASCII-compatible; only such encodings are supported")
    return info.name


def _intake_field(name: str) -> str:
    if name not in INTAKE_FIELDS:
        close = difflib.get_close_matches(name, sorted(INTAKE_FIELDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name!r} is not an intake field (donor_sync.standardize.intake){hint}")
    return name


#: A key of ``columns``: one of :data:`INTAKE_FIELDS`.
IntakeField = Annotated[str, AfterValidator(_intake_field)]
#: A header named in a format: any text but blank.
Header = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]


class Recognize(BaseModel):
    """How a dropped file is recognized as this format: by its name, its header, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filenames: list[str] = Field(
        default_factory=list,
        description="Glob patterns the file name must match (any one; case-insensitive), e.g. "
        "`bank_cheque_*.csv`.",
    )
    headers: list[Header] = Field(
        default_factory=list,
        description="Headers the file's first line must contain (all of them; others may be present).",
    )

    @model_validator(mode="after")
    def _needs_one(self) -> Recognize:
        if not self.filenames and not self.headers:
            raise ValueError("give filenames (globs), headers, or both")
        return self

    def name_matches(self, file_name: str) -> bool:
        """Return whether the file name matches one of the globs (always, when none are given)."""
        lower = file_name.lower()
        return not self.filenames or any(fnmatch.fnmatch(lower, p.lower()) for p in self.filenames)

    def absent_headers(self, header: Iterable[str]) -> list[str]:
        """Return the recognizing headers absent from ``header``."""
        present = set(header)
        return [h for h in self.headers if h not in present]


class CsvFormat(BaseModel):
    """One export format of CSV files dropped in the drop folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Format name, lower snake case; equal to the YAML file's name without `.yaml`. "
        "Becomes raw.batches.stream and raw.csv_files.format."
    )
    description: str = Field(default="", description="What exports this format, for people.")
    source: str = Field(
        description="System the export comes from (its rows' source in raw and staging, a "
        "core.system_name in lower snake case, e.g. `bank_cheque`)."
    )
    recognize: Recognize = Field(description="How files of this format are recognized (see below).")
    ready_marker: bool = Field(
        default=False,
        description="When true, a file is read only once a marker `<name>.done` or `<name>.ok` "
        "(or the same with the extension replaced) sits beside it; the marker is archived with it.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Python codec of the bytes (`cp1252`, `utf-8`, `utf-8-sig`, ...) or `detect` "
        "(charset-normalizer guesses). A declared encoding is still verified: a byte-order mark or "
        "valid UTF-8 contradicting it rejects the file; a UTF-8 byte-order mark is always stripped.",
    )
    delimiter: str = Field(default=",", description="Cell delimiter, one character.")
    quotechar: str = Field(
        default='"', description="Quote character, one character; doubled inside quoted cells."
    )
    id_column: Header | None = Field(
        default=None,
        description="Header whose cell is the row's source id (raw.csv_rows.source_id). Without one, "
        "or for a row whose cell is blank, the id is the file's SHA-256 and the row number.",
    )
    date_format: str = Field(description="strptime format of dates and times in the file, e.g. `%m/%d/%Y`.")
    timezone: str = Field(
        description="IANA time zone of dates and times written without an offset, e.g. "
        "`America/New_York` or `UTC`."
    )
    decimal: str = Field(default=".", description="Decimal separator of amounts.")
    thousands: str | None = Field(
        default=None, description="Thousands separator of amounts (`,` in `1,250.00`); none when unset."
    )
    columns: dict[IntakeField, Header] = Field(
        description="Intake field name -> header feeding it. Field names are those of "
        "donor_sync.standardize.intake (INTAKE_FIELDS); every header named must be in the file."
    )
    encoding_error_limit: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Largest share of rows with bytes invalid in the encoding before the whole file "
        "is rejected as mis-encoded (at least 10 such rows are needed to reject). Below it, such "
        "rows land with `encoding_errors` and their original bytes, for quarantine.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower snake case (a-z, 0-9, _), starting with a letter")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _SYSTEM_NAME.match(value):
            raise ValueError("must be lower snake case, at most 63 characters (core.system_name)")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        return DETECT if value.strip().lower() == DETECT else normalize_encoding(value)

    @field_validator("delimiter", "quotechar")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1 or value in "\r\n" or not value.isascii():
            raise ValueError("must be exactly one ASCII character other than a line end")
        return value

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        sample = datetime(2024, 12, 31, 13, 45, 59)
        try:
            datetime.strptime(sample.strftime(value), value)
        except ValueError as exc:
            raise ValueError(f"not a strptime format that round-trips: {exc}") from None
        if "%" not in value:
            raise ValueError("has no % directive")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one intake field to a header")
        return value

    @model_validator(mode="after")
    def _separators(self) -> CsvFormat:
        if self.delimiter == self.quotechar:
            raise ValueError("delimiter and quotechar must differ")
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError("decimal and thousands separators must differ")
        return self

    def required_headers(self) -> list[str]:
        """Return every header this format needs in a file: mapped ones, the id column, recognized ones."""
        wanted = [*self.columns.values(), *self.recognize.headers]
        if self.id_column:
            wanted.append(self.id_column)
        return list(dict.fromkeys(wanted))

    def missing_headers(self, header: Iterable[str]) -> list[str]:
        """Return the required headers absent from ``header``, in the order the format names them."""
        present = set(header)
        return [h for h in self.required_headers() if h not in present]


# -- loading ---------------------------------------------------------------------------------------


def _duplicate_keys(node: yaml.Node | None, path: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """Return (line, dotted key) of every key written twice in one mapping (YAML keeps the last)."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                found.append((key_node.start_mark.line + 1, ".".join((*path, key))))
            seen.add(key)
            found.extend(_duplicate_keys(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*path, str(index))))
    return found


def _problems(path: Path) -> tuple[CsvFormat | None, list[str]]:
    """Validate one format file; return the format (when valid) and every problem found."""
    try:
        text = read_config_text(path)
    except ConfigError as exc:  # unreadable, or not UTF-8 (naming the line)
        return None, [str(exc)]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [f"{path}: {where}invalid YAML: {problem}"]
    problems = [f"{path}: line {line}: {key}: written twice" for line, key in _duplicate_keys(node)]
    if not isinstance(data, dict):
        return None, [*problems, f"{path}: line 1: (top level): must be a mapping of format fields"]
    try:
        fmt = CsvFormat.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, int | str) and p != "[key]"]
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = line_of(node, loc)
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{path}: line {line}: {field}: {message}")
        return None, problems
    if fmt.name != path.stem:
        line = line_of(node, ["name"])
        problems.append(f"{path}: line {line}: name: {fmt.name!r} must equal the file name {path.stem!r}")
    return (None if problems else fmt), problems


def load_format(path: Path) -> CsvFormat:
    """Load and validate one format file.

    :raises ConfigError: naming the file, line and field of every problem found.
    """
    fmt, problems = _problems(path)
    if problems or fmt is None:
        raise ConfigError("\n".join(problems))
    return fmt


def load_formats(directory: Path) -> dict[str, CsvFormat]:
    """Load every ``*.yaml`` format in ``directory``, keyed by format name.

    All files are checked before failing, so one run shows every problem.

    :raises ConfigError: the folder is missing, or any file is invalid (each problem named).
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: CSV format folder not found")
    formats: dict[str, CsvFormat] = {}
    problems: list[str] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        fmt, found = _problems(path)
        problems.extend(found)
        if fmt is not None:
            if fmt.name in formats:
                problems.append(f"{path}: name: format {fmt.name!r} is defined twice")
            formats[fmt.name] = fmt
    if problems:
        raise ConfigError("\n".join(problems))
    return formats
