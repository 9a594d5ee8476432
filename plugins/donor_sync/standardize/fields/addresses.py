"""Postal addresses: country codes, US/Canadian street normalization, regions and postal codes.

- **Country** (:mod:`.countries`): codes, alpha-3, names and aliases become ISO alpha-2;
  anything else is ``unknown_country`` (error). A blank country takes ``default_country``.
- **United States and Canada**: the street line is parsed and rewritten with USPS Publication 28
  abbreviations (``Avenue`` -> ``Ave``, ``North`` -> ``N``); a secondary unit (``Apt 4``,
  ``Suite 200``, ``#5``) moves to line 2 when line 2 is empty (else it stays at the end of line 1),
  in its USPS form; line 2 units get the same form (``apartment 4b`` -> ``Apt 4B``); the state or
  province becomes its two-letter code (full names too); ZIP codes become ``12345`` or
  ``12345-6789``, Canadian postal codes ``A1A 1A1``. Street names and cities written all in one
  case are title-cased (everywhere); the rest is kept as typed.
- **United Kingdom**: postcode upper case with its single space (``SW1A 1AA``).
- **Other countries**: trimmed; postal codes upper-cased, in the national format where it is known
  (:data:`POSTAL_FORMATS`).

``address_validated`` is true only for a US or Canadian address whose street parsed, whose region
is a real state/province, whose postal code has the country's form and which has a city. A
US/Canadian street line that does not parse (or has a bad region or postal code) is kept as
cleaned, with ``address_unparsed`` (warning); a postal code not in its country's form is kept with
``invalid_postal_code`` (warning). Addresses elsewhere are not parsed: ``address_validated`` is
false without a warning.

Speed: the common ``<number> [dir] <name> <suffix> [dir] [unit]`` line is parsed by one RE2
pattern (pyarrow) over the unique lines; the rest go to ``usaddress`` (a CRF tagger, ~65 µs a
line), once per unique line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Final

import numpy as np
import pandas as pd
import usaddress

from donor_sync.standardize.fields import _usps
from donor_sync.standardize.fields._common import (
    Encoded,
    EncodedRows,
    lookup_key,
    rx_extract,
    squash,
    to_text,
)
from donor_sync.standardize.fields.countries import country_code
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where

STREET_COUNTRIES: Final = frozenset({"US", "CA"})
_APOSTROPHES: Final = "'\u2019"
#: lines longer than this are not street addresses (and would make the tagger slow)
MAX_STREET_LINE: Final = 200
#: country -> (pattern of the upper-cased code without spaces, separator between its groups)
POSTAL_FORMATS: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    country: (re.compile(pattern), separator)
    for country, pattern, separator in (
        ("US", r"(\d{5})(?:-?(\d{4}))?", "-"),  # 12345 or 12345-6789
        ("CA", r"([A-Z]\d[A-Z])-?(\d[A-Z]\d)", " "),
        ("GB", r"([A-Z]{1,2}\d[A-Z\d]?|GIR)(\d[A-Z]{2})", " "),
        ("IE", r"([AC-FHKNPRTV-Y]\d{2}|D6W)([0-9AC-FHKNPRTV-Y]{4})", " "),
        ("NL", r"(\d{4})([A-Z]{2})", " "),
        ("JP", r"(\d{3})-?(\d{4})", "-"),
        ("SE", r"(\d{3})(\d{2})", " "),
        *((c, r"(\d{5})", "") for c in ("DE", "FR", "ES", "IT", "MX")),
        *((c, r"(\d{4})", "") for c in ("AU", "NZ", "CH", "AT", "BE", "DK", "NO")),
        ("IN", r"(\d{6})", ""),
    )
}
OUTPUT_COLUMNS: Final = (
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "address_validated",
)


def _alternation(words: Iterable[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


@cache
def street_pattern() -> str:
    """Return the RE2 pattern of the common street line (named groups, any case, squashed text)."""
    direction = _alternation(_usps.DIRECTIONALS)
    suffix = _alternation(_usps.STREET_SUFFIXES)
    unit = _alternation(k for k in _usps.SECONDARY_UNITS if k != "#")
    return (
        rf"(?i)^(?P<number>\d+[A-Z]?(?:-\d+[A-Z]?)?|\d+ 1/2) "
        rf"(?:(?P<pre>{direction})\.? )?"
        rf"(?P<name>(?:[A-Z0-9][A-Z0-9{_APOSTROPHES}.-]* )*?[A-Z0-9][A-Z0-9{_APOSTROPHES}-]*) "
        rf"(?P<suffix>{suffix})\.?"
        rf"(?: (?P<post>{direction})\.?)?"
        rf"(?:,? ,?(?:(?P<unit>{unit})\.? ?#? ?|# ?)(?P<unit_id>[A-Z0-9-]+))?$"
    )


@cache
def _unit_pattern() -> re.Pattern[str]:
    unit = _alternation(k for k in _usps.SECONDARY_UNITS if k != "#")
    return re.compile(rf"^(?:(?P<unit>{unit})\.?\s*#?\s*|#\s*)(?P<unit_id>[A-Z0-9-]+)$", re.IGNORECASE)


def _one_case(text: str) -> bool:
    return text.isupper() or text.islower()


def _title(text: str) -> str:
    """Title-case a name written in one case (``MAPLE`` -> ``Maple``, ``42ND`` -> ``42nd``)."""
    if not _one_case(text):
        return text
    return " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))


def _unit_text(designator: str | None, identifier: str) -> str:
    if not designator:
        return f"# {identifier.upper()}"
    return f"{_usps.SECONDARY_UNITS[designator.upper()]} {identifier.upper()}"


def normalize_line2(line2: str) -> str:
    """Return a secondary unit in its USPS form (``apartment 4b`` -> ``Apt 4B``), else as typed."""
    match = _unit_pattern().match(line2)
    return _unit_text(match["unit"], match["unit_id"]) if match else line2


def _street_from_tagger(line: str) -> tuple[str, str | None] | None:
    try:
        tags, kind = usaddress.tag(line)
    except usaddress.RepeatedLabelError:
        return None
    if kind == "PO Box" and tags.get("USPSBoxID"):
        return f"PO Box {tags['USPSBoxID']}", None
    if kind != "Street Address" or not tags.get("AddressNumber") or not tags.get("StreetName"):
        return None
    words = [tags["AddressNumber"]]
    for key in ("StreetNamePreDirectional", "StreetNamePostDirectional"):
        if key in tags:
            tags[key] = _usps.DIRECTIONALS.get(tags[key].upper().rstrip("."), tags[key])
    if "StreetNamePreDirectional" in tags:
        words.append(tags["StreetNamePreDirectional"])
    if "StreetNamePreType" in tags:
        words.append(tags["StreetNamePreType"])
    words.append(_title(tags["StreetName"]))
    if "StreetNamePostType" in tags:
        post = tags["StreetNamePostType"]
        words.append(_usps.STREET_SUFFIXES.get(post.upper().rstrip("."), post))
    if "StreetNamePostDirectional" in tags:
        words.append(tags["StreetNamePostDirectional"])
    unit = None
    if tags.get("OccupancyIdentifier"):
        identifier = tags["OccupancyIdentifier"].lstrip("# ").strip()
        designator = tags.get("OccupancyType", "").upper().rstrip(".")
        unit = _unit_text(designator if designator in _usps.SECONDARY_UNITS else None, identifier)
    return " ".join(words), unit


def parse_street(line: str) -> tuple[str, str | None] | None:
    """Return the USPS-normalized street line and secondary unit of one line, or ``None``."""
    parsed = parse_streets(pd.Series([line], dtype=STRING))
    if not parsed["parsed"].iloc[0]:
        return None
    unit = parsed["unit"].iloc[0]
    return str(parsed["street"].iloc[0]), None if pd.isna(unit) else str(unit)


def _words(values: pd.Series, table: dict[str, str]) -> pd.Series:
    """Map words through a USPS table (upper case, period dropped), once per unique word."""
    encoded = Encoded.of(values.where(values.ne("")))
    mapped = [table.get(word.upper().rstrip("."), word) for word in encoded.uniques.tolist()]
    return encoded.take(pd.Series(mapped, dtype=STRING), values.index)


def parse_streets(lines: pd.Series) -> pd.DataFrame:
    """Parse unique street lines: columns ``street``, ``unit`` (USPS forms) and ``parsed`` (bool).

    The common form is parsed by one RE2 pattern over the column; other lines go to usaddress.
    """
    found = rx_extract(lines, street_pattern())
    number = found["number"]
    name = found["name"]
    encoded_name = Encoded.of(name)
    titled = encoded_name.take(
        pd.Series([_title(v) for v in encoded_name.uniques.tolist()], dtype=STRING), name.index
    )
    pieces = [
        number,
        _words(found["pre"], _usps.DIRECTIONALS),
        titled,
        _words(found["suffix"], _usps.STREET_SUFFIXES),
        _words(found["post"], _usps.DIRECTIONALS),
    ]
    joined = pieces[0].fillna("")
    for piece in pieces[1:]:
        joined = joined + " " + piece.fillna("")
    street = squash(joined).where(number.notna())
    unit_id = found["unit_id"].where(found["unit_id"].ne(""))
    designator = _words(found["unit"], _usps.SECONDARY_UNITS).fillna("#")
    unit = (designator + " " + unit_id.str.upper()).where(unit_id.notna())
    parsed = np.array(number.notna().to_numpy(dtype=bool), dtype=bool)
    streets = np.array(street.to_numpy(dtype=object, na_value=None), dtype=object)
    units = np.array(unit.to_numpy(dtype=object, na_value=None), dtype=object)
    values = lines.tolist()
    for position in np.flatnonzero(~parsed & lines.notna().to_numpy(dtype=bool)).tolist():
        line = values[position]
        result = _street_from_tagger(line) if len(line) <= MAX_STREET_LINE else None
        if result is not None:
            streets[position], units[position] = result
            parsed[position] = True
    return pd.DataFrame(
        {
            "street": pd.Series(streets, dtype=STRING, index=lines.index),
            "unit": pd.Series(units, dtype=STRING, index=lines.index),
            "parsed": parsed,
        },
        index=lines.index,
    )


@cache
def _region_table(country: str) -> dict[str, str]:
    table: dict[str, str] = {}
    if country == "US":
        for code, name in _usps.US_STATES.items():
            table[code.lower()] = code
            table[lookup_key(name)] = code
    elif country == "CA":
        for code, names in _usps.CA_PROVINCES.items():
            table[code.lower()] = code
            for name in names:
                table[lookup_key(name)] = code
    return table


def _region_one(region: str, country: str) -> str | None:
    if country not in STREET_COUNTRIES:
        return None
    return _region_table(country).get(lookup_key(region))


def _regions(region: pd.Series, country: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return regions (codes for US/CA where recognized) and which rows have a recognized code."""
    encoded = EncodedRows.of(region=region, country=country)
    pairs = encoded.uniques
    codes = [
        _region_one(r, c) if isinstance(r, str) else None
        for r, c in zip(pairs["region"].tolist(), pairs["country"].fillna("").tolist(), strict=True)
    ]
    code = encoded.take(pd.Series(codes, dtype=STRING), region.index)
    short = region.where(region.str.len().gt(3), region.str.upper())
    return code.fillna(short), code.notna().to_numpy(dtype=bool)


def _postal_one(postal: str, country: str) -> tuple[str, bool, bool]:
    """Return (postal code in national form, fits the country, was checked)."""
    upper = postal.upper()
    form = POSTAL_FORMATS.get(country)
    if form is None:
        return upper, False, False
    compact = "".join(upper.split())
    match = form[0].fullmatch(compact)
    if not match:
        return upper, False, True
    return form[1].join(group for group in match.groups() if group), True, True


def _postal(postal: pd.Series, country: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Return postal codes in national form, which ones fit their country, and which were checked."""
    encoded = EncodedRows.of(postal=postal, country=country)
    pairs = encoded.uniques
    results = [
        _postal_one(p, c) if isinstance(p, str) else (None, False, False)
        for p, c in zip(pairs["postal"].tolist(), pairs["country"].fillna("").tolist(), strict=True)
    ]
    formatted = encoded.take(pd.Series([r[0] for r in results], dtype=STRING), postal.index)
    valid = encoded.rows(np.array([r[1] for r in results], dtype=bool))
    checked = encoded.rows(np.array([r[2] for r in results], dtype=bool))
    return formatted, valid, checked


def _countries(country: pd.Series, default_country: str | None) -> tuple[pd.Series, np.ndarray]:
    encoded = Encoded.of(country)
    found = pd.Series([country_code(v) for v in encoded.uniques.tolist()], dtype=STRING)
    codes = encoded.take(found, country.index)
    unknown = country.notna().to_numpy(dtype=bool) & codes.isna().to_numpy(dtype=bool)
    if default_country:
        codes = codes.where(country.notna(), default_country.upper())
    return codes.astype(STRING), unknown


def normalize_addresses(  # noqa: PLR0917 - the positional contract the pipeline calls
    line1: pd.Series | None,
    line2: pd.Series | None,
    city: pd.Series | None,
    region: pd.Series | None,
    postal_code: pd.Series | None,
    country: pd.Series | None,
    *,
    default_country: str | None = None,
) -> FieldResult:
    """Normalize postal addresses (see the module docstring); any column may be ``None``.

    :param default_country: alpha-2 code for rows without a country (a US-only form, say).
    :return: columns address_line1, address_line2, city, region, postal_code, country_code,
        address_validated (bool); issues ``unknown_country`` (error), ``invalid_postal_code`` and
        ``address_unparsed`` (warnings).
    """
    given = [s for s in (line1, line2, city, region, postal_code, country) if s is not None]
    if not given:
        raise ValueError("normalize_addresses needs at least one address column")
    index = given[0].index
    l1, l2, town, reg, post, ctry = (
        squash(to_text(s, index)) for s in (line1, line2, city, region, postal_code, country)
    )
    codes, unknown = _countries(ctry, default_country)
    street_country = codes.isin(STREET_COUNTRIES).fillna(False).to_numpy(dtype=bool)
    # US and Canadian street lines, parsed once per unique line
    lines = Encoded.of(l1.where(street_country))
    streets = parse_streets(lines.uniques)
    street = lines.take(streets["street"], index)
    unit = lines.take(streets["unit"], index)
    parsed = lines.rows(streets["parsed"].to_numpy(dtype=bool))
    line2_free = l2.isna().to_numpy(dtype=bool)
    has_unit = unit.notna().to_numpy(dtype=bool)
    out_l1 = street.where(~has_unit | line2_free, street + " " + unit).fillna(l1)
    units = Encoded.of(l2.where(street_country))
    normalized_l2 = units.take(
        pd.Series([normalize_line2(v) for v in units.uniques.tolist()], dtype=STRING), index
    )
    out_l2 = normalized_l2.fillna(l2).fillna(unit.where(has_unit & line2_free))
    regions, region_ok = _regions(reg, codes)
    postal, postal_ok, postal_checked = _postal(post, codes)
    town_encoded = Encoded.of(town)
    titled = pd.Series([_title(v) for v in town_encoded.uniques.tolist()], dtype=STRING)
    towns = town_encoded.take(titled, index)
    validated = street_country & parsed & region_ok & postal_ok & towns.notna().to_numpy(dtype=bool)
    unparsed = street_country & l1.notna().to_numpy(dtype=bool) & ~validated
    bad_postal = postal_checked & ~postal_ok
    values = pd.DataFrame(
        {
            "address_line1": out_l1.astype(STRING),
            "address_line2": out_l2.astype(STRING),
            "city": towns.astype(STRING),
            "region": regions.astype(STRING),
            "postal_code": postal.astype(STRING),
            "country_code": codes,
            "address_validated": validated,
        },
        index=index,
    )
    issues = [
        issues_where(
            pd.Series(unknown, index=index),
            "country",
            "unknown_country",
            "error",
            "Country is not a recognized ISO 3166 code or country name (expected e.g. US, USA, "
            "United States, GB, Canada).",
            ctry,
        ),
        issues_where(
            pd.Series(bad_postal, index=index),
            "postal_code",
            "invalid_postal_code",
            "warning",
            "Postal code does not have its country's form (US: 12345 or 12345-6789; Canada: A1A 1A1; "
            "UK: SW1A 1AA); it is kept as written.",
            post,
        ),
        issues_where(
            pd.Series(unparsed, index=index),
            "address_line1",
            "address_unparsed",
            "warning",
            "Address could not be fully parsed and verified (street line, state or province, postal "
            "code, city); it is kept as written and marked not validated.",
            l1,
        ),
    ]
    return FieldResult(values, concat_issues(issues))
