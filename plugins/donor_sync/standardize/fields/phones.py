"""Phone numbers to E.164 with libphonenumber (``phonenumbers``), region from the donor's country.

Each row's region is its (already normalized, ISO alpha-2) country, else ``default_region``. A
number is kept only when libphonenumber finds it possible and valid; otherwise it is missing and
``invalid_phone`` (error) carries the input. A number read with ``default_region`` because the row
had no country, and written without ``+``, gets ``phone_region_assumed`` (warning): the country
code was a guess.

Speed: ``phonenumbers.parse`` + ``is_valid_number`` cost ~30 µs a number, too slow for a million
mostly-unique numbers. Two common shapes take a vectorized road over the unique numbers:

- international ``+<country code><national number>`` (separators stripped), and
- North American national numbers (ten digits, optionally after ``1``) in a NANP region;

they are validated with libphonenumber's own metadata, as ``is_valid_number`` does it: the
region is chosen by the country code's region list (``leading_digits`` first), and the national
number must match the region's general description and one of its number types (length and
pattern), the patterns run as RE2 regexes (libphonenumber writes them RE2-compatible). The road
only *accepts*: a number it finds invalid, a national number that starts with the country's
national prefix (which ``parse`` may strip), non-geographic codes, letters, extensions, ``00``
prefixes and national numbers outside North America all go to ``phonenumbers.parse``, once per
unique (number, region) pair. The tests hold the two roads to agreement.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata

from donor_sync.standardize.fields._common import (
    EncodedRows,
    rx_extract,
    rx_replace,
    rx_test,
    squash,
    to_text,
)
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where

_SEPARATORS: Final = "[ ().\\-/]"
_NANP_NATIONAL: Final = r"^1?(?P<national>[2-9]\d{9})$"
_INTERNATIONAL: Final = r"^\+(?P<digits>[1-9]\d{4,16})$"
#: number-type descriptions in the order _number_type_helper tries them (any one makes it valid)
_TYPE_FIELDS: Final = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
_INVALID: Final = (
    "Phone number is not a valid number for its country; expected a national number of the "
    "donor's country or an international number starting with + and the country code."
)
_ASSUMED: Final = (
    "Phone number has no country code and the record no country; it was read as a number of the "
    "default region."
)


def nanp_regions() -> frozenset[str]:
    """Return the regions sharing country calling code 1."""
    return frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])


def split_country_code(digits: str) -> tuple[int, str]:
    """Split international digits into (country calling code, national number), as libphonenumber.

    The shortest prefix that is a known calling code wins; ``(0, digits)`` when none is.
    """
    for size in range(1, min(len(digits), 3) + 1):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return 0, digits


def _matches(national: pa.Array, lengths: np.ndarray, desc: object) -> np.ndarray:
    """Return which numbers match a number description (its lengths, then its pattern)."""
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return np.zeros(len(national), dtype=bool)
    possible = list(getattr(desc, "possible_length", None) or ())
    fits = np.isin(lengths, possible) if possible else np.ones(len(national), dtype=bool)
    if not fits.any():
        return fits
    hit = pc.match_substring_regex(national, f"^(?:{pattern})$").fill_null(False)
    out: np.ndarray = fits & np.asarray(hit, dtype=bool)
    return out


def _type_known(national: pa.Array, metadata: PhoneMetadata) -> np.ndarray:
    """Return which national numbers have a known type in ``metadata`` (valid for that region)."""
    lengths = np.asarray(pc.utf8_length(national).fill_null(0), dtype=np.int64)
    known = _matches(national, lengths, metadata.general_desc)
    if not known.any():
        return known
    any_type = np.zeros(len(national), dtype=bool)
    for field in _TYPE_FIELDS:
        todo = known & ~any_type
        if not todo.any():
            break
        any_type |= _matches(national, lengths, getattr(metadata, field, None)) & todo
    return known & any_type


@cache
def _fast_regions(code: int) -> tuple[PhoneMetadata, ...] | None:
    """Return the metadata of ``code``'s regions, or ``None`` when the fast road cannot decide."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions or phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in regions:
        return None
    found = tuple(m for r in regions if (m := PhoneMetadata.metadata_for_region(r)) is not None)
    return found or None


@cache
def _national_prefix(code: int) -> re.Pattern[str] | None:
    main = PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_country_code(code))
    prefix = getattr(main, "national_prefix_for_parsing", None) or getattr(main, "national_prefix", None)
    return re.compile(prefix) if prefix else None


def valid_national(national: pa.Array, code: int) -> np.ndarray:
    """Return, per national number of calling code ``code``, whether libphonenumber deems it valid.

    Mirrors ``is_valid_number``: one region when the code has one; otherwise the first region whose
    ``leading_digits`` match, or the first where the number has a known type.
    """
    metadata = _fast_regions(code)
    valid = np.zeros(len(national), dtype=bool)
    if metadata is None:
        return valid
    if len(metadata) == 1:
        return _type_known(national, metadata[0])
    chosen = np.zeros(len(national), dtype=bool)
    for region in metadata:
        todo = np.flatnonzero(~chosen)
        if not len(todo):
            break
        subset = national.take(pa.array(todo))
        if region.leading_digits is not None:
            leading = pc.match_substring_regex(subset, f"^(?:{region.leading_digits})").fill_null(False)
            hit = todo[np.asarray(leading, dtype=bool)]
            valid[hit] = _type_known(national.take(pa.array(hit)), region)
        else:
            hit = todo[_type_known(subset, region)]
            valid[hit] = True
        chosen[hit] = True
    return valid


def _fast_candidates(digits: pd.Series, region: pd.Series) -> tuple[np.ndarray, list[str | None]]:
    """Return per unique number the calling code and national number the fast road may accept."""
    count = len(digits)
    codes = np.zeros(count, dtype=np.int64)
    nationals: list[str | None] = [None] * count
    international = rx_extract(digits, _INTERNATIONAL)["digits"].tolist()
    nanp = rx_extract(digits, _NANP_NATIONAL)["national"].where(region.isin(nanp_regions())).tolist()
    for position in range(count):
        whole = international[position]
        if isinstance(whole, str):
            code, national = split_country_code(whole)
            prefix = _national_prefix(code) if code else None
            if code and not (prefix and prefix.match(national)):
                codes[position], nationals[position] = code, national
        elif isinstance(nanp[position], str):
            codes[position], nationals[position] = 1, nanp[position]
    return codes, nationals


def _parse_slow(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _normalize_unique(raw: pd.Series, region: pd.Series) -> np.ndarray:
    """Return the E.164 form (or None) of each unique (number, region) pair."""
    digits = rx_replace(raw, _SEPARATORS, "")
    codes, nationals = _fast_candidates(digits, region)
    e164 = np.full(len(raw), None, dtype=object)
    for code in np.unique(codes[codes > 0]).tolist():
        rows = np.flatnonzero(codes == code)
        national = pa.array([nationals[i] for i in rows.tolist()], type=pa.string())
        ok = valid_national(national, int(code))
        for position in rows[ok].tolist():
            e164[position] = f"+{code}{nationals[position]}"
    raw_values, regions = raw.tolist(), region.tolist()
    for position in np.flatnonzero(raw.notna().to_numpy(dtype=bool)).tolist():
        if e164[position] is not None:
            continue
        e164[position] = _parse_slow(raw_values[position], regions[position])
    return e164


def to_e164(phone: pd.Series, country: pd.Series | None, default_region: str = "US") -> FieldResult:
    """Normalize phone numbers to E.164 (see the module docstring).

    :param phone: numbers as received, any format.
    :param country: ISO alpha-2 country per row (normalized), or ``None``.
    :param default_region: region for rows without a country.
    :return: column ``phone`` (string, missing where blank or invalid); issues ``invalid_phone``
        (error) and ``phone_region_assumed`` (warning).
    """
    text = squash(to_text(phone))
    index = text.index
    given_region = squash(to_text(country, index)).str.upper()
    assumed = given_region.isna().to_numpy(dtype=bool)
    region = given_region.fillna(default_region.upper())
    encoded = EncodedRows.of(raw=text, region=region)
    e164 = _normalize_unique(encoded.uniques["raw"], encoded.uniques["region"])
    out = encoded.take(pd.Series(e164, dtype=STRING), index).rename("phone")
    present = text.notna()
    invalid = present & out.isna()
    region_guessed = present & out.notna() & assumed & ~rx_test(text, "^[+]")
    issues = [
        issues_where(invalid, "phone", "invalid_phone", "error", _INVALID, text),
        issues_where(region_guessed, "phone", "phone_region_assumed", "warning", _ASSUMED, text),
    ]
    return FieldResult(out.to_frame(), concat_issues(issues))
