"""normalize_addresses: countries, USPS street forms, regions, postal codes, validation flags."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import addresses as addresses_module
from donor_sync.standardize.fields import normalize_addresses
from donor_sync.standardize.fields.countries import country_code
from sandbox.datagen.vocab import STREET_NAMES, STREET_TYPES

COLUMNS = (
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "address_validated",
)


def _one(
    line1: Any, line2: Any, city: Any, region: Any, postal: Any, country: Any, **kw: Any
) -> tuple[Any, ...]:
    def s(v: Any) -> pd.Series:
        return pd.Series([v], dtype=object)

    result = normalize_addresses(s(line1), s(line2), s(city), s(region), s(postal), s(country), **kw)
    row = result.values.iloc[0]
    values = tuple(None if (not isinstance(row[c], bool) and pd.isna(row[c])) else row[c] for c in COLUMNS)
    return (*values, set(result.issues["code"]))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            ("2090 Spruce Avenue", "Apt 30", "Cincinnati", "OH", "45220", "US"),
            ("2090 Spruce Ave", "Apt 30", "Cincinnati", "OH", "45220", "US", True, set()),
            id="us-suffix",
        ),
        pytest.param(
            ("429 JACKSON DR", None, "MADISON", "wisconsin", "53791-1234", "USA"),
            ("429 Jackson Dr", None, "Madison", "WI", "53791-1234", "US", True, set()),
            id="us-caps-state-name-zip4",
        ),
        pytest.param(
            (
                "123 north main street suite 200",
                None,
                "Springfield",
                "Illinois",
                "627281234",
                "United States",
            ),
            ("123 N Main St", "Ste 200", "Springfield", "IL", "62728-1234", "US", True, set()),
            id="us-directional-unit-to-line2",
        ),
        pytest.param(
            ("15 W 42nd Street #5", "Floor 3", "New York", "NY", "10036", "U.S.A."),
            ("15 W 42nd St # 5", "Fl 3", "New York", "NY", "10036", "US", True, set()),
            id="us-unit-stays-when-line2-taken",
        ),
        pytest.param(
            ("100 Dogwood Dr, Apt 4B", None, "Nashville", "TN", "37292", "US"),
            ("100 Dogwood Dr", "Apt 4B", "Nashville", "TN", "37292", "US", True, set()),
            id="us-comma-unit",
        ),
        pytest.param(
            ("PO Box 123", None, "Austin", "TX", "78701", "US"),
            ("PO Box 123", None, "Austin", "TX", "78701", "US", True, set()),
            id="po-box-by-usaddress",
        ),
        pytest.param(
            ("1 Broadway", None, "New York", "NY", "10004", "US"),
            ("1 Broadway", None, "New York", "NY", "10004", "US", True, set()),
            id="no-suffix-by-usaddress",
        ),
        pytest.param(
            ("194 Laurel Avenue", "#12", "Québec", "Québec", "g1r1e3", "CA"),
            ("194 Laurel Ave", "# 12", "Québec", "QC", "G1R 1E3", "CA", True, set()),
            id="ca-province-name-postal",
        ),
        pytest.param(
            ("10 Downing Street", None, "London", None, "sw1a2aa", "UK"),
            ("10 Downing Street", None, "London", None, "SW1A 2AA", "GB", False, set()),
            id="gb-postcode-only",
        ),
        pytest.param(
            ("Hauptstraße 5", None, "Köln", None, "50667", "Deutschland"),
            ("Hauptstraße 5", None, "Köln", None, "50667", "DE", False, set()),
            id="de-as-written",
        ),
        pytest.param(
            ("1-2-3 Chiyoda", None, "Tokyo", "Tokyo", "1000001", "JPN"),
            ("1-2-3 Chiyoda", None, "Tokyo", "Tokyo", "100-0001", "JP", False, set()),
            id="jp-postal-format",
        ),
        pytest.param(
            ("5 Main St", None, "Boston", "MA", "2134", "US"),
            (
                "5 Main St",
                None,
                "Boston",
                "MA",
                "2134",
                "US",
                False,
                {"invalid_postal_code", "address_unparsed"},
            ),
            id="us-four-digit-zip",
        ),
        pytest.param(
            ("<img src=x onerror=alert(1)>", None, "X", "ZZ", "1", "US"),
            (
                "<img src=x onerror=alert(1)>",
                None,
                "X",
                "ZZ",
                "1",
                "US",
                False,
                {"invalid_postal_code", "address_unparsed"},
            ),
            id="markup-unparsed",
        ),
        pytest.param(
            ("1 Main St", None, "Nowhere", None, "12345", "Narnia"),
            ("1 Main St", None, "Nowhere", None, "12345", None, False, {"unknown_country"}),
            id="unknown-country",
        ),
        pytest.param(
            (None, None, None, None, None, None),
            (None, None, None, None, None, None, False, set()),
            id="empty",
        ),
    ],
)
def test_address_cases(given: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    assert _one(*given) == expected


def test_default_country_applies_to_blank_countries_only() -> None:
    assert _one("1 Main Street", None, "Albany", "NY", "12207", None, default_country="us")[5:7] == (
        "US",
        True,
    )
    assert _one("1 Main Street", None, "Albany", "NY", "12207", "CA", default_country="US")[5] == "CA"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("US", "US"),
        ("usa", "US"),
        ("U.S.A.", "US"),
        ("United States of America", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("GBR", "GB"),
        ("Deutschland", "DE"),
        ("Allemagne", "DE"),
        ("Côte d\u2019Ivoire", "CI"),
        ("cote d'ivoire", "CI"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("EU", None),
        ("Narnia", None),
    ],
)
def test_country_codes(text: str, code: str | None) -> None:
    assert country_code(text) == code


def test_usaddress_runs_once_per_unique_unusual_line(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = addresses_module._street_from_tagger

    def spy(line: str) -> Any:
        calls.append(line)
        return original(line)

    monkeypatch.setattr(addresses_module, "_street_from_tagger", spy)
    lines = ["12 Oak Street", "1 Broadway", "PO Box 9", "12 Oak Street", "1 Broadway"] * 30
    n = len(lines)
    normalize_addresses(
        pd.Series(lines),
        None,
        pd.Series(["X"] * n),
        pd.Series(["NY"] * n),
        pd.Series(["10001"] * n),
        pd.Series(["US"] * n),
    )
    assert sorted(calls) == ["1 Broadway", "PO Box 9"]


@settings(max_examples=150, deadline=None)
@given(
    number=st.integers(min_value=1, max_value=29999),
    name=st.sampled_from(STREET_NAMES),
    kind=st.sampled_from(STREET_TYPES),
    abbreviated=st.booleans(),
    upper=st.booleans(),
    unit=st.sampled_from(["", "Apt 4", "Suite 12B", "#7", "Unit 3"]),
)
def test_full_and_abbreviated_street_types_normalize_to_the_same_line(
    number: int, name: str, kind: tuple[str, str], abbreviated: bool, upper: bool, unit: str
) -> None:
    full = f"{number} {name} {kind[0]}"
    typed = f"{number} {name} {kind[1] if abbreviated else kind[0]}"
    if upper:
        typed = typed.upper()
    expected = _one(full, unit or None, "Albany", "NY", "12207", "US")
    got = _one(typed, unit or None, "Albany", "NY", "12207", "US")
    assert got == expected
    assert bool(got[6])
    assert got[0] == f"{number} {name} {kind[1]}"
