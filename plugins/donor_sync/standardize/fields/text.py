"""Clean free-text columns: encoding repair, Unicode normalization, whitespace, and hazard flags.

Every column of the frame gets the same treatment, in this order, on its unique values:

1. U+FFFD replacement characters and lone surrogates (undecodable bytes): ``invalid_encoding``
   (error; the value is kept with U+FFFD so the reviewer sees where the damage is);
2. C0 control characters, zero-width spaces, byte-order marks and bidirectional overrides are
   removed;
3. mojibake (UTF-8 read as Windows-1252 or Latin-1, ``MontrÃ©al``) is repaired with
   ``ftfy.fix_encoding``: ``mojibake_repaired`` (warning). ftfy runs only on values a regex
   pre-filter finds suspicious (a UTF-8 lead byte shown as Latin-1 followed by a continuation byte
   shown as Windows-1252 or Latin-1), never on every cell, and it sees the no-break spaces and C1
   characters mojibake is made of;
4. NFC normalization, C1 controls removed, every run of Unicode whitespace becomes one space,
   stripped, and an empty value becomes missing (a repaired value is checked again until stable,
   so cleaning is idempotent);
5. hazards, flagged and kept (the rules decide): longer than ``max_lengths[column]`` characters:
   ``too_long`` (error, not truncated: truncating would lose data silently); spreadsheet formula
   prefixes: ``formula_like`` (warning; destinations escape on export); HTML tags, ``javascript:``
   URLs: ``markup`` (warning).

Formula prefixes follow the OWASP CSV-injection guidance (``=``, ``+``, ``-``, ``@``, tab, CR at the
start of a cell). Tab and CR are stripped by step 4, so the cleaned value can only start with the
other four; ``+`` and ``-`` count only when what follows is not a plain number or phone number
(``+1 555 0100`` and ``-25.00`` are data, ``-2+3+cmd|...`` is not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import ftfy
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from donor_sync.standardize.fields._common import Encoded, to_text
from donor_sync.standardize.fields.result import (
    STRING,
    FieldResult,
    Severity,
    concat_issues,
    issues_where,
)

# The patterns run in RE2 (pyarrow); they hold the characters themselves, not Python escapes.
#: A UTF-8 lead byte (C2-F4) shown as Latin-1, then a continuation byte (80-BF) shown as
#: Windows-1252 or Latin-1: the signature of UTF-8 text decoded as cp1252.
MOJIBAKE_SUSPECT: Final = (
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_BAD_ENCODING: Final = "\ufffd"
_OTHER_SPACES: Final = "\t\n\r\f\u000b\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: runs of whitespace and any whitespace but a plain space (a lone space needs no replacing)
_SPACES: Final = f"[ {_OTHER_SPACES}][ {_OTHER_SPACES}]+|[{_OTHER_SPACES}]"
#: C0 controls (not whitespace), zero-width space, word joiner, BOM, bidirectional marks and
#: overrides: removed before the mojibake check (ZWNJ and ZWJ stay: scripts and emoji need them).
_INVISIBLE: Final = (
    "[\u0000-\u0008\u000e-\u001f\u007f\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)
#: C1 controls but NEL: removed after the mojibake check (Latin-1 mojibake is made of them)
_C1: Final = "[\u0080-\u0084\u0086-\u009f]"
_FORMULA: Final = "^[=@]|^[+-].*[^0-9 ().-]"
_MARKUP: Final = "(?i)<\\s*/?\\s*[a-z!][^<>]*>|javascript\\s*:|&lt;\\s*/?\\s*script"


def _contains(values: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(values, pattern).fill_null(False), dtype=bool)


def _repair_mojibake(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Return the values with mojibake repaired by ftfy, and which ones changed."""
    suspect = np.flatnonzero(_contains(values, MOJIBAKE_SUSPECT))
    changed = np.zeros(len(values), dtype=bool)
    if not len(suspect):
        return values, changed
    originals = values.take(pa.array(suspect)).to_pylist()
    fixed = [ftfy.fix_encoding(text) for text in originals]
    differs = np.array([a != b for a, b in zip(originals, fixed, strict=True)], dtype=bool)
    if not differs.any():
        return values, changed
    changed[suspect[differs]] = True
    replacements = pa.array([f for f, d in zip(fixed, differs.tolist(), strict=True) if d], type=values.type)
    return pc.replace_with_mask(values, pa.array(changed), replacements), changed


def _normalize(values: pa.Array) -> pa.Array:
    values = pc.utf8_normalize(values, "NFC")
    values = pc.replace_substring_regex(values, _C1, "")
    values = pc.replace_substring_regex(values, _SPACES, " ")
    values = pc.utf8_trim_whitespace(values)
    empty = pc.equal(pc.utf8_length(values), 0)
    return pc.if_else(empty, pa.scalar(None, type=values.type), values)


def _clean(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Return cleaned values and which ones had mojibake repaired.

    ftfy sees the text with its no-break spaces and C1 characters (mojibake is made of them), but
    without other controls; a repaired value is normalized and checked again until it is stable, so
    that cleaning twice gives what cleaning once gave.
    """
    values = pc.replace_substring_regex(values, _INVISIBLE, "")
    values, changed = _repair_mojibake(values)
    values = _normalize(values)
    todo = changed.copy()
    for _ in range(3):
        if not todo.any():
            break
        where = np.flatnonzero(todo)
        again, more = _repair_mojibake(values.take(pa.array(where)))
        todo[:] = False
        if more.any():
            mask = np.zeros(len(values), dtype=bool)
            mask[where[more]] = True
            values = pc.replace_with_mask(values, pa.array(mask), _normalize(again.filter(pa.array(more))))
            todo = mask
    return values, changed


def clean_column(values: pd.Series, *, field: str, max_length: int | None = None) -> FieldResult:
    """Clean one text column (see the module docstring) and return it with its issues.

    :param values: the column as received.
    :param field: the name used for the output column and in issues.
    :param max_length: the staging limit in characters, if any.
    """
    text = to_text(values)
    encoded = Encoded.of(text)
    uniques = pa.array(encoded.uniques.array, type=pa.large_string())
    bad_encoding = _contains(uniques, _BAD_ENCODING)
    cleaned, changed = _clean(uniques)
    lengths = np.asarray(pc.utf8_length(cleaned).fill_null(0), dtype=np.int64)
    too_long = lengths > max_length if max_length is not None else np.zeros(len(lengths), dtype=bool)
    formula = _contains(cleaned, _FORMULA)
    markup = _contains(cleaned, _MARKUP)
    out = encoded.take(pd.Series(pd.array(cleaned, dtype=STRING)), text.index).rename(field)
    index = text.index
    checks: tuple[tuple[np.ndarray, str, Severity, str], ...] = (
        (
            bad_encoding,
            "invalid_encoding",
            "error",
            "Text contains bytes that are not valid UTF-8 (shown as U+FFFD); re-export the file as UTF-8.",
        ),
        (
            changed,
            "mojibake_repaired",
            "warning",
            "Text was UTF-8 read as Windows-1252 (mojibake) "
            "and has been repaired; check the source's export encoding.",
        ),
        (too_long, "too_long", "error", f"Text is longer than the {max_length} characters allowed."),
        (
            formula,
            "formula_like",
            "warning",
            "Text starts like a spreadsheet formula (=, +, -, @); "
            "it is kept and must be escaped when exported.",
        ),
        (
            markup,
            "markup",
            "warning",
            "Text contains HTML markup or a script URL; it is kept as "
            "plain text and must never be rendered as HTML.",
        ),
    )
    issues = [
        issues_where(pd.Series(encoded.rows(mask), index=index), field, code, severity, message, text)
        for mask, code, severity, message in checks
        if mask.any()
    ]
    return FieldResult(out.to_frame(), concat_issues(issues))


def clean_text(frame: pd.DataFrame, max_lengths: Mapping[str, int]) -> FieldResult:
    """Clean every column of ``frame`` (see the module docstring).

    :param frame: intake text columns, any index.
    :param max_lengths: per column, the most characters allowed; columns not named are unbounded.
    :return: the cleaned columns (same names, same index, string dtype with NA) and their issues.
    """
    results = [
        clean_column(frame[column], field=str(column), max_length=max_lengths.get(str(column)))
        for column in frame.columns
    ]
    if not results:
        return FieldResult(pd.DataFrame(index=frame.index), concat_issues([]))
    return FieldResult.concat(*results)
