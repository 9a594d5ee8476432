"""to_e164: E.164 per the row's region, fast road held to agreement with phonenumbers."""

from __future__ import annotations

import pandas as pd
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import phones as phones_module
from donor_sync.standardize.fields import to_e164


def _one(value: str | None, country: str | None, default: str = "US") -> tuple[str | None, set[str]]:
    result = to_e164(pd.Series([value], dtype=object), pd.Series([country], dtype=object), default)
    phone = result.values["phone"].iloc[0]
    return (None if pd.isna(phone) else phone), set(result.issues["code"])


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        pytest.param("(912) 694-7856", "US", ("+19126947856", set()), id="us-parens"),
        pytest.param("602.663.1063", "US", ("+16026631063", set()), id="us-dots"),
        pytest.param("1-602-663-1063", "US", ("+16026631063", set()), id="us-trunk-1"),
        pytest.param("5206125024", "CA", ("+15206125024", set()), id="nanp-number-with-ca-country"),
        pytest.param("718.456.4777", None, ("+17184564777", {"phone_region_assumed"}), id="region-assumed"),
        pytest.param("+15138822163", None, ("+15138822163", set()), id="e164-without-country"),
        pytest.param("+44 20 7946 0958", "US", ("+442079460958", set()), id="international-beats-country"),
        pytest.param("020 7946 0958", "GB", ("+442079460958", set()), id="gb-national"),
        pytest.param("+44 (0)20 7946 0958", None, ("+442079460958", set()), id="gb-trunk-in-international"),
        pytest.param("030 1234567", "DE", ("+49301234567", set()), id="de-national"),
        pytest.param("1-800-FLOWERS", "US", ("+18003569377", set()), id="vanity"),
        pytest.param("+1 212 555 0100 x12", "US", ("+12125550100", set()), id="extension-dropped"),
        pytest.param("555-0100", "US", (None, {"invalid_phone"}), id="too-short"),
        pytest.param("garbage", "US", (None, {"invalid_phone"}), id="not-a-number"),
        pytest.param("+1 123 456 7890", None, (None, {"invalid_phone"}), id="nanp-invalid-area"),
        pytest.param("", "US", (None, set()), id="blank"),
        pytest.param(None, "US", (None, set()), id="missing"),
    ],
)
def test_phone_cases(value: str | None, country: str | None, expected: tuple[str | None, set[str]]) -> None:
    assert _one(value, country) == expected


def test_default_region_is_used_for_rows_without_country() -> None:
    assert _one("020 7946 0958", None, default="GB") == ("+442079460958", {"phone_region_assumed"})


def test_phonenumbers_only_sees_what_the_fast_road_cannot_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = phones_module._parse_slow

    def spy(value: str, region: str) -> str | None:
        calls.append(value)
        return original(value, region)

    monkeypatch.setattr(phones_module, "_parse_slow", spy)
    numbers = ["(212) 694-7856", "+44 20 7946 0958", "+49 30 1234567", "020 7946 0958", "555-0100"] * 40
    to_e164(pd.Series(numbers), pd.Series(["US", "US", "DE", "GB", "US"] * 40))
    assert sorted(calls) == ["020 7946 0958", "555-0100"]


def _reference(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number):
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return None


CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
REGIONS = ["US", "CA", "GB", "DE", "FR", "IE", "JP", "AU", "IN", "BR", "MX", "IT", "RU", "NL"]


@settings(max_examples=600, deadline=None)
@given(
    code=st.sampled_from([1, 1, 1, 44, 49, 33, 353, 81, 61, 91, 55, 52, 39, 7, 31, *CODES[::7]]),
    national=st.text(alphabet="0123456789", min_size=4, max_size=13),
    international=st.booleans(),
    region=st.sampled_from(REGIONS),
    style=st.sampled_from(["", " ", "-", "."]),
)
def test_agrees_with_phonenumbers(
    code: int, national: str, international: bool, region: str, style: str
) -> None:
    digits = f"+{code}{national}" if international else national
    value = style.join([digits[:3], digits[3:7], digits[7:]]) if style else digits
    assert _one(value, region)[0] == _reference(value, region)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["US", "GB", "DE", "FR", "IE", "JP", "CA", "AU"]),
    st.integers(min_value=0, max_value=10**9),
)
def test_example_numbers_of_every_type_round_trip(region: str, seed: int) -> None:
    types = list(phonenumbers.PhoneNumberType.values())
    example = phonenumbers.example_number_for_type(region, types[seed % len(types)])
    if example is None:
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert _one(national, region)[0] == _reference(national, region)
    assert _one(e164, None)[0] == _reference(e164, "US")
