"""CRM values to the standardized donor fields survivorship compares.

The same standardizers as the source pipeline (names, emails, phones, addresses), so a CRM value
and a source value of the same thing compare equal: ``MailingCountry = "United States"`` becomes
``US``, ``(617) 555-0142`` becomes ``+16175550142``. A value a standardizer rejects (an invalid
email typed by staff) is dropped, never stored as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from donor_sync.standardize.fields import normalize_addresses, normalize_emails, standardize_names, to_e164

_ADDRESS = ("address_line1", "address_line2", "city", "region", "postal_code", "country_code")
_TRUE = {"true", "1", "yes", "y", "t"}


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE


def _date(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        return None


def _column(rows: Sequence[Mapping[str, Any]], name: str) -> pd.Series | None:
    if not any(name in r for r in rows):
        return None
    return pd.Series([r.get(name) for r in rows], dtype=object).map(
        lambda v: None if v is None or str(v).strip() == "" else str(v)
    )


def _value(values: pd.DataFrame, column: str, i: int) -> Any:
    value = values[column].iloc[i]
    return None if pd.isna(value) else value


def standardize_pulled(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:  # noqa: PLR0912 - one block per field family
    """Return each row (core field -> raw CRM value) as standardized attributes.

    Only fields present in a row come out (a CRM that holds no address does not blank one).
    """
    out: list[dict[str, Any]] = [{} for _ in rows]
    if not rows:
        return out
    first, last, middle = (
        _column(rows, "first_name"),
        _column(rows, "last_name"),
        _column(rows, "middle_name"),
    )
    if first is not None or last is not None:
        names = standardize_names(None, first, last, middle).values
        for i, row in enumerate(rows):
            for column in ("first_name", "middle_name", "last_name", "last_name_key"):
                source = "last_name" if column == "last_name_key" else column
                if source in row:
                    out[i][column] = _value(names, column, i)
    email = _column(rows, "email")
    if email is not None:
        emails = normalize_emails(email, allow_special_use_domains=("example", "test")).values
        for i, row in enumerate(rows):
            if "email" in row:
                out[i]["email"] = _value(emails, "email", i)
    columns = {c: _column(rows, c) for c in _ADDRESS}
    if any(v is not None for v in columns.values()):
        address = normalize_addresses(*columns.values()).values
        for i, row in enumerate(rows):
            if any(c in row for c in _ADDRESS):
                for column in (*_ADDRESS, "address_validated"):
                    out[i][column] = _value(address, column, i)
    phone = _column(rows, "phone")
    if phone is not None:
        country = pd.Series([o.get("country_code") for o in out], dtype=object)
        phones = to_e164(phone, country).values
        for i, row in enumerate(rows):
            if "phone" in row:
                out[i]["phone"] = _value(phones, "phone", i)
    for i, row in enumerate(rows):
        for column in ("do_not_contact", "is_deceased"):
            if column in row:
                out[i][column] = _flag(row[column])
        for column in ("birth_date", "deceased_date"):
            if column in row:
                out[i][column] = _date(row[column])
    return out
