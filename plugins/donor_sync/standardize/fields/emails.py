"""Email addresses: validated and normalized with email-validator, without DNS, on unique values.

Columns:

- ``email``: email-validator's normalized form: the domain lower-cased (and IDNA-decoded), the local
  part as the validator returns it (case kept: RFC 5321 lets a mail server treat ``Jane`` and
  ``jane`` as different mailboxes, so the address a donor typed is the one we send to);
- ``email_key``: the whole normalized address lower-cased, for matching and deduplication:
  virtually every mailbox provider treats local parts case-insensitively, so ``Jane.Doe@x.org``
  and ``jane.doe@x.org`` are one donor. It is not a staging column; identity resolution uses it.

Deliverability (DNS) is never checked here: it is slow, flaky and leaks which donors we process.

Speed: plain ASCII addresses (dot-atom local part, hostname labels, a letter-ending TLD, within
the length limits, no special-use TLD) are recognised by one vectorized regex and normalized with
string operations exactly as email-validator would (the tests hold the two to agreement); only the
rest go through ``email_validator.validate_email``, once per unique value.

``allow_special_use_domains`` lets addresses under special-use names through (``test``, ``local``,
``invalid``...; the ``example`` names are accepted by email-validator already). The validator's
module-level list is not touched: ``test`` uses its ``test_environment`` switch, and the others are
validated with the special-use suffix swapped for an ordinary one, then put back.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache
from typing import Final

import email_validator
import numpy as np
import pandas as pd
import pyarrow.compute as pc
from email_validator import EmailNotValidError, validate_email

from donor_sync.standardize.fields._common import (
    Encoded,
    arrow,
    rx_extract,
    rx_test,
    squash,
    to_text,
)
from donor_sync.standardize.fields.result import STRING, FieldResult, issues_where

_ATOM: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: what the fast path accepts: an ASCII dot-atom local part of at most 64 characters and a
#: hostname whose TLD ends with a letter; "--" in a label (IDNA rules) goes to the validator.
FAST_EMAIL: Final = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z])?$"
_CASE_INSENSITIVE: Final = frozenset(email_validator.rfc_constants.CASE_INSENSITIVE_MAILBOX_NAMES)
_SWAP_TLD: Final = "com"


@cache
def _special_use(allowed: frozenset[str]) -> tuple[str, ...]:
    return tuple(d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if d not in allowed)


def _domain_suffix(domain: str, names: Collection[str]) -> str | None:
    for name in names:
        if domain == name or domain.endswith("." + name):
            return name
    return None


def _scrub(message: str, value: str) -> str:
    """Remove the address and its parts from a validator message (messages never carry PII)."""
    local, _, domain = value.rpartition("@")
    for part in sorted({value, local, domain}, key=len, reverse=True):
        if len(part) >= 3:
            message = message.replace(part, "…")
    return message


def _validate(value: str, allowed: frozenset[str]) -> tuple[str | None, str | None]:
    """Validate one address: ``(normalized, None)`` or ``(None, reason)``."""
    local, at, domain = value.rpartition("@")
    swapped = _domain_suffix(domain.lower(), allowed - {"test"}) if at else None
    candidate = value
    if swapped:
        candidate = f"{local}@{domain[: len(domain) - len(swapped)]}{_SWAP_TLD}"
    try:
        result = validate_email(candidate, check_deliverability=False, test_environment="test" in allowed)
    except EmailNotValidError as error:
        return None, _scrub(str(error), value)
    normalized = str(result.normalized)
    if swapped:
        normalized = normalized[: len(normalized) - len(_SWAP_TLD)] + swapped
    return normalized, None


def _fast(uniques: pd.Series, allowed: frozenset[str]) -> tuple[np.ndarray, pd.Series]:
    """Return which unique values the fast path takes, and their normalized form."""
    fits = rx_test(uniques, FAST_EMAIL) & (np.asarray(pc.utf8_length(arrow(uniques)).fill_null(0)) <= 254)
    parts = rx_extract(uniques, "^(?P<local>.*)@(?P<domain>[^@]*)$")
    local, domain = parts["local"], parts["domain"].str.lower()
    fits &= np.asarray(pc.utf8_length(arrow(local)).fill_null(99)) <= 64
    fits &= ~rx_test(domain, "--")
    last_label = rx_extract(domain, "(?P<tld>[^.]*)$")["tld"]
    fits &= ~last_label.isin(_special_use(allowed)).to_numpy(dtype=bool)
    local = local.where(~local.str.lower().isin(_CASE_INSENSITIVE), local.str.lower())
    return fits, local + "@" + domain


def normalize_emails(email: pd.Series, *, allow_special_use_domains: Collection[str] = ()) -> FieldResult:
    """Validate and normalize email addresses (see the module docstring).

    :param email: addresses as received; surrounding whitespace is ignored, blank is missing.
    :param allow_special_use_domains: special-use names (``test``, ``local``...) to accept.
    :return: columns ``email`` and ``email_key`` (string, missing where blank or invalid); issue
        ``invalid_email`` (error) with the validator's reason as the message, never the address.
    """
    allowed = frozenset(name.lower().strip(".") for name in allow_special_use_domains)
    text = squash(to_text(email))
    encoded = Encoded.of(text)
    uniques = encoded.uniques
    fast, fast_normalized = _fast(uniques, allowed)
    normalized = np.array(fast_normalized.where(fast).to_numpy(dtype=object, na_value=None), dtype=object)
    reasons = np.full(len(uniques), None, dtype=object)
    for position in np.flatnonzero(~fast).tolist():
        normalized[position], reasons[position] = _validate(str(uniques.iloc[position]), allowed)
    per_unique = pd.Series(normalized, dtype=STRING)
    out = encoded.take(per_unique, text.index)
    invalid = reasons != None  # noqa: E711 - elementwise on an object array
    message = pd.Series(encoded.gather(reasons, ""), index=text.index)
    issues = issues_where(
        pd.Series(encoded.rows(invalid), index=text.index),
        "email",
        "invalid_email",
        "error",
        "Email address is not valid: " + message.fillna("").astype(str),
        text,
    )
    values = pd.DataFrame({"email": out, "email_key": out.str.lower()}, index=text.index)
    return FieldResult(values, issues)
