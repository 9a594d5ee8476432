"""Amounts and currencies, exact: ``Decimal`` amounts, ISO 4217 codes, exponents and minor units.

Output types: the amount column holds ``decimal.Decimal`` objects (object dtype, ``None`` when
missing) quantized to the currency's exponent (``Decimal("25.00")`` for USD, ``Decimal("500")``
for JPY), so ``str()`` gives the exact canonical text for COPY into ``numeric``. ``amount_minor`` is
the same amount in minor units (nullable ``Int64``) and ``currency_exponent`` the ISO 4217 minor
unit (nullable ``Int16``, from ``babel.numbers.get_currency_precision``).

Decisions:

- **Known currencies** are the ISO 4217 codes babel knows that are legal tender somewhere today
  (CLDR territory currencies without an end date): ``DEM``, ``XXX``, ``XTS``, ``BTC`` are not.
- **Minor units win**: where a row has ``amount_minor`` (Stripe's integer cents; an int or its
  text), it is used; otherwise the major-units text with the format's separators. Minor units
  are whole numbers: ``2500.5``, ``2500.0`` or ``25.00`` there are ``malformed_amount`` (a major
  amount in a minor-units field would be off by a factor of 100).
- **Currency symbols**: a leading (or trailing) symbol is stripped when it belongs to the row's
  currency: its English symbol (``$``, ``CA$``, ``€``, ``£``, ``¥``), the bare ``$`` for any
  dollar currency (the row's currency says which), and the code itself (``USD 25``). Any other
  symbol is ``malformed_amount``: ``$25.00`` in a EUR row says the data disagrees with itself.
- **Decimals**: more digits than the exponent are ``too_many_decimals`` only when the extra
  digits are not zeros (``1000.0`` JPY is 1000; ``25.001`` USD is an error).
- Negative amounts are ``negative_amount`` (refunds arrive as their own fields); amounts of
  10^15 or more do not fit ``numeric(19, 4)`` and are ``malformed_amount``.

Every amount problem leaves the amount missing in ``values`` (the input is in the issue's
``value``); with an unknown currency the amount is kept as parsed, without exponent or minor units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Final

import numpy as np
import pandas as pd
from babel.core import get_global
from babel.numbers import get_currency_precision, get_currency_symbol, list_currencies

from donor_sync.standardize.fields._common import Encoded, EncodedRows, squash, to_text
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where

#: amounts must stay below this to fit numeric(19, 4)
LIMIT: Final = Decimal(10) ** 15
_MINOR = re.compile(r"^(-?)(\d+)$")


@cache
def known_currencies() -> frozenset[str]:
    """Return the ISO 4217 codes that are legal tender in some territory today (per CLDR)."""
    current = {
        code
        for entries in get_global("territory_currencies").values()
        for code, _start, end, tender in entries
        if end is None and tender
    }
    return frozenset(current & set(list_currencies()))


@cache
def currency_exponent(code: str) -> int:
    """Return the number of minor-unit digits of ``code`` (2 for USD, 0 for JPY)."""
    return int(get_currency_precision(code))


@cache
def currency_symbols(code: str) -> frozenset[str]:
    """Return the symbols accepted before or after an amount in ``code``."""
    symbol = str(get_currency_symbol(code, "en"))
    symbols = {code, symbol}
    if symbol.endswith("$"):
        symbols |= {"$", f"{code[:2]}$"}
    if symbol.endswith("¥"):
        symbols |= {"¥", "￥"}
    return frozenset(symbols)


@cache
def _major_pattern(decimal: str, thousands: str) -> re.Pattern[str]:
    d, t = re.escape(decimal), re.escape(thousands)
    grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+" if thousands else r"(?!)"
    return re.compile(
        rf"^(?P<sign1>-?)\s*(?P<pre>[^\d\s{d}{t}-]*?)\s*(?P<sign2>-?)"
        rf"(?P<int>{grouped}|\d+)(?:{d}(?P<frac>\d+))?\s*(?P<post>[^\d\s{d}{t}-]*)$"
    )


@dataclass(frozen=True)
class _Parsed:
    amount: Decimal | None
    minor: int | None
    code: str | None = None
    message: str | None = None


_MALFORMED_MAJOR = (
    "Amount is not a number in the expected format: digits, optional '{t}' thousands separators, "
    "optional '{d}' decimal separator, optionally the currency's own symbol."
)
_MALFORMED_MINOR = "Amount in minor units must be a whole number (2500 for 25.00)."
_MISSING = "Amount is missing."
_NEGATIVE = "Amount is negative; gifts and fees must be zero or more (refunds have their own fields)."
_TOO_LARGE = "Amount is too large (10^15 or more)."


def _finish(value: Decimal, negative: bool, currency: str | None) -> _Parsed:
    if negative and value != 0:
        return _Parsed(None, None, "negative_amount", _NEGATIVE)
    if value >= LIMIT:
        return _Parsed(None, None, "malformed_amount", _TOO_LARGE)
    if currency is None:
        return _Parsed(value, None)
    exponent = currency_exponent(currency)
    quantum = Decimal(1).scaleb(-exponent)
    exact = value.quantize(quantum)
    if exact != value:
        return _Parsed(
            None,
            None,
            "too_many_decimals",
            f"Amount has more decimals than {currency} has minor units ({exponent}).",
        )
    return _Parsed(exact, int(exact.scaleb(exponent)))


def _parse_minor(text: str, currency: str | None) -> _Parsed:
    match = _MINOR.match(text)
    if not match:
        return _Parsed(None, None, "malformed_amount", _MALFORMED_MINOR)
    if currency is None:  # no exponent to read minor units with; unknown_currency says why
        return _Parsed(None, None)
    minor = Decimal(int(match.group(2)))
    return _finish(minor.scaleb(-currency_exponent(currency)), match.group(1) == "-", currency)


def _parse_major(text: str, currency: str | None, decimal: str, thousands: str) -> _Parsed:
    match = _major_pattern(decimal, thousands).match(text)
    malformed = _Parsed(None, None, "malformed_amount", _MALFORMED_MAJOR.format(t=thousands, d=decimal))
    if not match or (match["sign1"] and match["sign2"]) or (match["pre"] and match["post"]):
        return malformed
    symbol = match["pre"] or match["post"]
    if symbol and (currency is None or symbol.upper() not in currency_symbols(currency)):
        return malformed
    digits = match["int"].replace(thousands, "") if thousands else match["int"]
    try:
        value = Decimal(f"{digits}.{match['frac']}" if match["frac"] else digits)
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        return malformed
    return _finish(value, bool(match["sign1"] or match["sign2"]), currency)


def _parse_one(
    kind: str, text: str, currency: str | None, *, decimal: str, thousands: str, required: bool
) -> _Parsed:
    if not text:
        return _Parsed(None, None, "malformed_amount", _MISSING) if required else _Parsed(None, None)
    if kind == "minor":
        return _parse_minor(text, currency)
    return _parse_major(text, currency, decimal, thousands)


def _currencies(currency: pd.Series) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Return upper-cased codes (missing unless known), their exponents, and which rows are unknown."""
    text = squash(to_text(currency)).str.upper()
    known = text.isin(known_currencies()).fillna(False).to_numpy(dtype=bool)
    codes = text.where(known)
    encoded = Encoded.of(codes)
    exponents = pd.Series([currency_exponent(code) for code in encoded.uniques.tolist()], dtype="Int16")
    exponent = encoded.take(exponents, codes.index)
    return codes.astype(STRING), exponent, ~known


def _amounts(
    amount: pd.Series | None,
    amount_minor: pd.Series | None,
    codes: pd.Series,
    *,
    decimal: str,
    thousands: str,
    field: str,
    required: bool,
) -> FieldResult:
    index = codes.index
    minor_given = to_text(amount_minor, index)
    major_given = to_text(amount, index)
    minor_text = squash(minor_given)
    use_minor = minor_text.notna().to_numpy(dtype=bool)
    text = minor_text.where(use_minor, squash(major_given))
    encoded = EncodedRows.of(minor=pd.Series(use_minor, index=index), text=text, currency=codes)
    unique = encoded.uniques
    parsed = [
        _parse_one(
            "minor" if minor else "major",
            value if isinstance(value, str) else "",
            code if isinstance(code, str) else None,
            decimal=decimal,
            thousands=thousands,
            required=required,
        )
        for minor, value, code in zip(
            unique["minor"].tolist(), unique["text"].tolist(), unique["currency"].tolist(), strict=True
        )
    ]
    rows = encoded.codes
    amounts = np.empty(len(parsed), dtype=object)
    amounts[:] = [p.amount for p in parsed]
    minors = pd.array([p.minor for p in parsed], dtype="Int64")
    values = pd.DataFrame(
        {
            field: pd.Series(amounts[rows], index=index, dtype=object),
            f"{field}_minor": pd.Series(minors.take(rows), index=index, dtype="Int64"),
        },
        index=index,
    )
    issue_codes = np.array([p.code or "" for p in parsed], dtype=object)
    messages = np.array([p.message or "" for p in parsed], dtype=object)
    original = minor_given.where(use_minor, major_given)
    issues = []
    for code in ("malformed_amount", "negative_amount", "too_many_decimals"):
        hit = encoded.rows(issue_codes == code)
        if hit.any():
            message = pd.Series(encoded.rows(messages), index=index)
            issues.append(issues_where(pd.Series(hit, index=index), field, code, "error", message, original))
    return FieldResult(values, concat_issues(issues))


def parse_amounts(
    amount: pd.Series | None,
    amount_minor: pd.Series | None,
    currency: pd.Series,
    *,
    decimal: str = ".",
    thousands: str = ",",
    field: str = "amount",
) -> FieldResult:
    """Parse a required amount and its currency (see the module docstring).

    :param amount: major-units text (``"1,250.00"``), or ``None`` when the source has none.
    :param amount_minor: minor units (Stripe cents, int or text), or ``None``.
    :param currency: ISO 4217 code in any case.
    :param decimal: the format's decimal separator.
    :param thousands: the format's thousands separator (``""`` for none).
    :param field: name of the amount column and of the issues' field (``{field}_minor`` too).
    :return: columns ``{field}`` (Decimal), ``currency``, ``currency_exponent``, ``{field}_minor``;
        issues ``malformed_amount``, ``negative_amount``, ``too_many_decimals`` (field ``{field}``)
        and ``unknown_currency`` (field ``currency``), all errors.
    """
    codes, exponent, unknown = _currencies(currency)
    result = _amounts(
        amount, amount_minor, codes, decimal=decimal, thousands=thousands, field=field, required=True
    )
    original = to_text(currency)
    unknown_issues = issues_where(
        pd.Series(unknown, index=codes.index),
        "currency",
        "unknown_currency",
        "error",
        "Currency is not an ISO 4217 code in use (expected three letters such as USD, EUR, CAD).",
        original,
    )
    values = pd.DataFrame(
        {
            field: result.values[field],
            "currency": codes,
            "currency_exponent": exponent,
            f"{field}_minor": result.values[f"{field}_minor"],
        },
        index=codes.index,
    )
    return FieldResult(values, concat_issues([result.issues, unknown_issues]))


def parse_optional_amounts(
    amount: pd.Series | None,
    amount_minor: pd.Series | None,
    currency: pd.Series,
    *,
    decimal: str = ".",
    thousands: str = ",",
    field: str = "fee_amount",
) -> FieldResult:
    """Parse an optional amount in the row's currency (fees, refunds): blank is missing, not an error.

    Currency problems are reported once, by :func:`parse_amounts` on the main amount; here an
    unknown currency only leaves the amount missing.

    :return: columns ``{field}`` (Decimal) and ``{field}_minor``; the amount issues of
        :func:`parse_amounts` for non-blank values.
    """
    codes, _exponent, _unknown = _currencies(currency)
    result = _amounts(
        amount, amount_minor, codes, decimal=decimal, thousands=thousands, field=field, required=False
    )
    unknown = codes.isna().to_numpy()
    if unknown.any():
        values = result.values.copy()
        values.loc[unknown, field] = None
        values.loc[unknown, f"{field}_minor"] = pd.NA
        return FieldResult(values, result.issues)
    return result
