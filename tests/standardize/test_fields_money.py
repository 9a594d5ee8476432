"""parse_amounts / parse_optional_amounts: exact decimals, ISO 4217 currencies, minor units."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from babel.numbers import format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import parse_amounts, parse_optional_amounts
from donor_sync.standardize.fields.money import currency_exponent, known_currencies
from sandbox.datagen.bad_records import CURRENCY, TEXT_AMOUNTS


def _one(amount: Any, currency: Any, minor: Any = None, **kw: Any) -> tuple[Any, ...]:
    result = parse_amounts(
        pd.Series([amount], dtype=object) if amount is not None or minor is None else None,
        pd.Series([minor], dtype=object) if minor is not None else None,
        pd.Series([currency], dtype=object),
        **kw,
    )
    row = result.values.iloc[0]
    exponent = None if pd.isna(row["currency_exponent"]) else int(row["currency_exponent"])
    minor_out = None if pd.isna(row["amount_minor"]) else int(row["amount_minor"])
    currency_out = None if pd.isna(row["currency"]) else row["currency"]
    return row["amount"], currency_out, exponent, minor_out, set(result.issues["code"])


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        pytest.param("25", "usd", (Decimal("25.00"), "USD", 2, 2500, set()), id="integer"),
        pytest.param("1,250.00", "USD", (Decimal("1250.00"), "USD", 2, 125000, set()), id="thousands"),
        pytest.param(" 0.5 ", "EUR", (Decimal("0.50"), "EUR", 2, 50, set()), id="padded"),
        pytest.param("$25.00", "USD", (Decimal("25.00"), "USD", 2, 2500, set()), id="own-symbol"),
        pytest.param("CA$5", "CAD", (Decimal("5.00"), "CAD", 2, 500, set()), id="cad-symbol"),
        pytest.param("$5", "CAD", (Decimal("5.00"), "CAD", 2, 500, set()), id="bare-dollar-for-cad"),
        pytest.param("USD 7", "usd", (Decimal("7.00"), "USD", 2, 700, set()), id="code-prefix"),
        pytest.param("7 EUR", "EUR", (Decimal("7.00"), "EUR", 2, 700, set()), id="code-suffix"),
        pytest.param("1000.0", "JPY", (Decimal("1000"), "JPY", 0, 1000, set()), id="zero-decimals-jpy"),
        pytest.param("1.234", "BHD", (Decimal("1.234"), "BHD", 3, 1234, set()), id="three-decimals"),
        pytest.param("0", "USD", (Decimal("0.00"), "USD", 2, 0, set()), id="zero"),
        pytest.param("12,50", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="comma-decimal"),
        pytest.param("€5", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="other-symbol"),
        pytest.param("twenty", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="words"),
        pytest.param("1.2.3", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="two-points"),
        pytest.param("25.00.00", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="trailing-group"),
        pytest.param("", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="blank"),
        pytest.param("N/A", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="na-text"),
        pytest.param("NaN", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="nan"),
        pytest.param("1e5", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="exponent"),
        pytest.param("1000000000000000", "USD", (None, "USD", 2, None, {"malformed_amount"}), id="too-large"),
        pytest.param("-25.00", "USD", (None, "USD", 2, None, {"negative_amount"}), id="negative"),
        pytest.param("-$25.00", "USD", (None, "USD", 2, None, {"negative_amount"}), id="negative-symbol"),
        pytest.param("25.001", "USD", (None, "USD", 2, None, {"too_many_decimals"}), id="too-many-decimals"),
        pytest.param("25.5", "JPY", (None, "JPY", 0, None, {"too_many_decimals"}), id="jpy-fraction"),
        pytest.param("25.00", "BTC", (Decimal("25.00"), None, None, None, {"unknown_currency"}), id="btc"),
        pytest.param(
            "25.00", "DEM", (Decimal("25.00"), None, None, None, {"unknown_currency"}), id="historic"
        ),
        pytest.param(
            "25.00", "XTS", (Decimal("25.00"), None, None, None, {"unknown_currency"}), id="testing-code"
        ),
        pytest.param(
            "25.00", None, (Decimal("25.00"), None, None, None, {"unknown_currency"}), id="no-currency"
        ),
    ],
)
def test_major_units(amount: Any, currency: Any, expected: tuple[Any, ...]) -> None:
    got = _one(amount, currency)
    assert got == expected
    if isinstance(got[0], Decimal) and got[2] is not None:
        assert got[0].as_tuple().exponent == -got[2]  # quantized to the currency


@pytest.mark.parametrize("text", TEXT_AMOUNTS, ids=[f"generator-{t or 'blank'}" for t in TEXT_AMOUNTS])
def test_every_generated_bad_amount_is_an_error_or_the_own_symbol(text: str) -> None:
    amount, _, _, _, codes = _one(text, "USD")
    if text == "$25.00":  # the currency's own symbol is accepted: 25.00 USD is what it says
        assert (amount, codes) == (Decimal("25.00"), set())
    else:
        assert codes & {"malformed_amount", "negative_amount"}
        assert amount is None


@pytest.mark.parametrize("code", CURRENCY, ids=list(CURRENCY))
def test_every_generated_bad_currency_is_unknown(code: str) -> None:
    for spelling in (code, code.lower()):
        assert _one("25.00", spelling)[4] == {"unknown_currency"}


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        pytest.param(2500, "usd", (Decimal("25.00"), 2500, set()), id="int"),
        pytest.param("2500", "usd", (Decimal("25.00"), 2500, set()), id="text"),
        pytest.param(500, "jpy", (Decimal("500"), 500, set()), id="zero-decimal-currency"),
        pytest.param(2500.0, "usd", (None, None, {"malformed_amount"}), id="float-is-not-minor-units"),
        pytest.param(2500.5, "usd", (None, None, {"malformed_amount"}), id="half-cent"),
        pytest.param("25.00", "usd", (None, None, {"malformed_amount"}), id="major-in-minor-field"),
        pytest.param(-2500, "usd", (None, None, {"negative_amount"}), id="negative"),
        pytest.param("NaN", "usd", (None, None, {"malformed_amount"}), id="nan"),
    ],
)
def test_minor_units(minor: Any, currency: str, expected: tuple[Any, ...]) -> None:
    amount, _, _, minor_out, codes = _one(None, currency, minor=minor)
    assert (amount, minor_out, codes) == expected


def test_minor_units_win_per_row_and_major_fills_in() -> None:
    result = parse_amounts(
        pd.Series(["99.00", "12.34"]), pd.Series([2500, None], dtype=object), pd.Series(["USD", "USD"])
    )
    assert result.values["amount"].tolist() == [Decimal("25.00"), Decimal("12.34")]


def test_european_separators() -> None:
    got = _one("1.250,50", "EUR", decimal=",", thousands=".")
    assert got == (Decimal("1250.50"), "EUR", 2, 125050, set())
    assert _one("1,250.50", "EUR", decimal=",", thousands=".")[4] == {"malformed_amount"}


def test_optional_amounts_allow_blank_and_leave_currency_errors_to_the_main_amount() -> None:
    result = parse_optional_amounts(
        pd.Series(["1.02", "", None, "x", "-1", "3"]),
        None,
        pd.Series(["USD", "USD", "USD", "USD", "USD", "BTC"]),
        field="fee_amount",
    )
    assert list(result.values.columns) == ["fee_amount", "fee_amount_minor"]
    assert result.values["fee_amount"].tolist() == [Decimal("1.02"), None, None, None, None, None]
    assert result.issues[["row", "field", "code"]].to_numpy().tolist() == [
        [3, "fee_amount", "malformed_amount"],
        [4, "fee_amount", "negative_amount"],
    ]


def test_known_currencies_are_current_iso_codes() -> None:
    known = known_currencies()
    assert {"USD", "EUR", "GBP", "CAD", "JPY", "BHD", "CHF"} <= known
    assert not {"BTC", "XTS", "XXX", "DEM", "FRF"} & known


@settings(max_examples=300, deadline=None)
@given(
    currency=st.sampled_from(sorted(known_currencies())),
    minor=st.integers(min_value=0, max_value=10**14),
    grouped=st.booleans(),
)
def test_any_amount_formatted_then_parsed_comes_back_exactly(
    currency: str, minor: int, grouped: bool
) -> None:
    exponent = currency_exponent(currency)
    amount = Decimal(minor).scaleb(-exponent)
    text = format_decimal(amount, format="#,##0" + ("." + "0" * exponent if exponent else ""), locale="en_US")
    if not grouped:
        text = text.replace(",", "")
    parsed, code, parsed_exponent, parsed_minor, codes = _one(text, currency.lower())
    assert (parsed, code, parsed_exponent, codes) == (amount, currency, exponent, set())
    assert parsed_minor == minor == parsed * 10**exponent
    assert _one(None, currency, minor=str(minor))[0] == amount
