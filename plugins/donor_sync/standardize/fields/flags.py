"""Yes/no flags and contact-preference text.

Flags (``email_opt_in``, ``do_not_mail``, ``deceased``...) arrive as ``yes``/``no``, ``true``/
``false``, ``Y``/``N``, ``1``/``0``, ``x``, or blank. Blank means "not said", not "no": the result
is missing and the caller decides the default (an opt-in must never be assumed).

Contact preferences arrive as ``channel.purpose=status`` pairs separated by ``;``
(``email.newsletter=opt_in;sms.fundraising=opt_out``). Each pair becomes
``{"channel", "purpose", "status"}`` in the core consent vocabulary (``core.consent_channel``,
``core.consent_purpose``, ``core.consent_status``); a source's own purpose words are mapped to the
core purposes (``newsletter`` is marketing). The pipeline adds when and from where (``occurred_at``,
``evidence``) to make ``staging.donors.consent_signals``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from donor_sync.standardize.fields._common import Encoded, rx_replace, squash, to_text
from donor_sync.standardize.fields.result import FieldResult, concat_issues, issues_where

TRUE_WORDS: Final = frozenset({"yes", "y", "true", "t", "1", "x", "on", "checked", "opt_in", "opted_in"})
FALSE_WORDS: Final = frozenset({"no", "n", "false", "f", "0", "off", "unchecked", "opt_out", "opted_out"})

#: source words (lower case, "-" and spaces as "_") -> core.consent_channel
CHANNELS: Final[dict[str, str]] = {
    "email": "email",
    "e_mail": "email",
    "mail": "mail",
    "post": "mail",
    "postal": "mail",
    "direct_mail": "mail",
    "sms": "sms",
    "text": "sms",
    "mobile": "sms",
    "phone": "phone",
    "call": "phone",
    "telephone": "phone",
    "all": "all",
    "any": "all",
}
#: source words -> core.consent_purpose
PURPOSES: Final[dict[str, str]] = {
    "marketing": "marketing",
    "newsletter": "marketing",
    "newsletters": "marketing",
    "news": "marketing",
    "updates": "marketing",
    "events": "marketing",
    "fundraising": "fundraising",
    "appeals": "fundraising",
    "appeal": "fundraising",
    "donations": "fundraising",
    "profiling": "profiling",
    "research": "profiling",
    "wealth_screening": "profiling",
    "sharing": "sharing",
    "third_party": "sharing",
    "partners": "sharing",
    "sale": "sharing",
}
#: source words -> core.consent_status
STATUSES: Final[dict[str, str]] = {
    "opt_in": "opt_in",
    "optin": "opt_in",
    "opted_in": "opt_in",
    "subscribed": "opt_in",
    "yes": "opt_in",
    "soft_opt_in": "soft_opt_in",
    "soft": "soft_opt_in",
    "opt_out": "opt_out",
    "optout": "opt_out",
    "opted_out": "opt_out",
    "unsubscribed": "opt_out",
    "no": "opt_out",
}


def _flag_keys(text: pd.Series) -> pd.Series:
    return rx_replace(squash(text).str.lower(), "[ -]+", "_")


def parse_flags(values: pd.Series) -> pd.Series:
    """Return ``values`` as a nullable boolean Series: true, false, or missing (blank or unknown).

    Use :func:`parse_flag_fields` to also get ``invalid_flag`` issues for unknown text.
    """
    text = to_text(values)
    keys = _flag_keys(text)
    out = pd.Series(pd.NA, index=text.index, dtype="boolean", name=values.name)
    out[keys.isin(TRUE_WORDS).fillna(False).to_numpy(dtype=bool)] = True
    out[keys.isin(FALSE_WORDS).fillna(False).to_numpy(dtype=bool)] = False
    return out


def parse_flag_fields(frame: pd.DataFrame) -> FieldResult:
    """Parse every column of ``frame`` as a flag; unknown text is missing plus ``invalid_flag``.

    :return: nullable boolean columns named as the input's, and the issues.
    """
    columns: dict[str, pd.Series] = {}
    issues: list[pd.DataFrame] = []
    for name in frame.columns:
        text = to_text(frame[name])
        parsed = parse_flags(text)
        columns[str(name)] = parsed
        unknown = parsed.isna() & squash(text).notna()
        issues.append(
            issues_where(
                unknown,
                str(name),
                "invalid_flag",
                "warning",
                "Flag is not a yes/no value (expected yes/no, true/false, Y/N, 1/0, x or blank).",
                text,
            )
        )
    return FieldResult(pd.DataFrame(columns, index=frame.index), concat_issues(issues))


def _parse_pair(pair: str) -> dict[str, str] | None:
    head, equals, status = pair.partition("=")
    channel, dot, purpose = head.partition(".")
    if not equals or not dot:
        return None

    def key(word: str) -> str:
        return "_".join(word.strip().lower().replace("-", "_").split())

    found = (CHANNELS.get(key(channel)), PURPOSES.get(key(purpose)), STATUSES.get(key(status)))
    if None in found:
        return None
    return {"channel": str(found[0]), "purpose": str(found[1]), "status": str(found[2])}


def _parse_consent(text: str) -> tuple[list[dict[str, str]], bool]:
    signals: list[dict[str, str]] = []
    failed = False
    for pair in text.split(";"):
        if not pair.strip():
            continue
        parsed = _parse_pair(pair)
        if parsed is None:
            failed = True
        elif parsed not in signals:
            signals.append(parsed)
    return signals, failed


def _consent(values: pd.Series) -> tuple[pd.Series, np.ndarray, Encoded]:
    text = to_text(values)
    encoded = Encoded.of(text)
    parsed = [_parse_consent(value) for value in encoded.uniques.tolist()]
    per_unique = np.empty(len(parsed), dtype=object)
    per_unique[:] = [signals for signals, _ in parsed]
    failed = np.array([bad for _, bad in parsed], dtype=bool)
    rows = np.empty(len(text), dtype=object)
    present = encoded.present
    rows[present] = per_unique[encoded.codes[present]]
    for position in np.flatnonzero(~present).tolist():
        rows[position] = []
    return pd.Series(rows, index=text.index, dtype=object, name=values.name), failed, encoded


def parse_consent_text(values: pd.Series) -> pd.Series:
    """Return, per row, the list of ``{"channel", "purpose", "status"}`` choices in the text.

    Pairs that do not parse are left out (:func:`parse_consent_field` also reports them). Rows with
    the same text share one list object: treat the lists as read-only.
    """
    return _consent(values)[0]


def parse_consent_field(values: pd.Series, *, field: str = "consent_text") -> FieldResult:
    """Parse contact preferences into column ``consent_signals``, with ``invalid_consent_text`` issues.

    A row whose text has a pair that does not parse keeps the pairs that did.
    """
    signals, failed, encoded = _consent(values)
    issues = issues_where(
        pd.Series(encoded.rows(failed), index=signals.index),
        field,
        "invalid_consent_text",
        "warning",
        "Contact preferences must be channel.purpose=status pairs separated by ';' (channel: email, "
        "sms, phone, mail; status: opt_in, soft_opt_in, opt_out); unreadable pairs were ignored.",
        to_text(values),
    )
    return FieldResult(signals.rename("consent_signals").to_frame(), issues)
