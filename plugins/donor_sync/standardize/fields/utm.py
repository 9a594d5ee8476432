"""UTM attribution: explicit fields first, then the landing URL's parameters, then the referrer's.

Each ``utm_*`` value is normalized by :func:`.utm_config.normalize_utm_value` (percent-decoded,
trimmed, lower case, spaces and ``+`` as the configured mark) and then mapped through the
configured alias table. Custom parameters named in the settings (``gclid``, ``fbclid``, ``form_id``)
go into ``utm_extra`` as they are (ids are case-sensitive): a dict per row, JSON-ready, landing URL
winning over referrer. Rows with the same URLs share one dict object: treat them as read-only.

URLs are parsed once per unique value. ``landing_url`` and ``referrer_url`` come back trimmed; a URL
that cannot be parsed (no host, spaces inside, a bad port or bracket) is kept and flagged
``invalid_url`` (warning) and contributes no parameters. A URL without a scheme
(``give.example.org/?utm_source=x``) is read as ``https``.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from donor_sync.standardize.fields._common import Encoded, to_text
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where
from donor_sync.standardize.fields.utm_config import UTM_PARAMS, UtmConfig, normalize_utm_value

_INVALID_URL: Final = (
    "URL cannot be parsed (expected an absolute URL such as https://example.org/page?utm_source=x); "
    "it is kept but its parameters are ignored."
)


def _parse_url(url: str, custom: dict[str, str]) -> tuple[bool, dict[str, str], dict[str, str]]:
    """Return (parseable, utm_* values as received, custom parameters) of one URL."""
    if any(ch.isspace() for ch in url):
        return False, {}, {}
    candidate = url if "://" in url else f"https://{url}"
    try:
        parts = urlsplit(candidate)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return False, {}, {}
    if not parts.scheme or not parts.hostname:
        return False, {}, {}
    utm: dict[str, str] = {}
    extra: dict[str, str] = {}
    query = parts.query
    if "=" in parts.fragment:  # some single-page forms carry the parameters after '#'
        query = f"{query}&{parts.fragment}" if query else parts.fragment
    for name, value in parse_qsl(query, keep_blank_values=False):
        key = name.strip().lower()
        if key in UTM_PARAMS:
            utm.setdefault(key, value)
        elif key in custom:
            extra.setdefault(custom[key], value.strip())
    return True, utm, extra


class _Urls:
    """One URL column parsed once per unique value."""

    def __init__(self, values: pd.Series, custom: dict[str, str]) -> None:
        text = to_text(values).str.strip()
        self.text = text.where(text.ne(""))
        self.encoded = Encoded.of(self.text)
        parsed = [_parse_url(url, custom) for url in self.encoded.uniques.tolist()]
        self.valid = np.array([ok for ok, _, _ in parsed], dtype=bool)
        self.utm = [utm for _, utm, _ in parsed]
        self.extra = [extra for _, _, extra in parsed]

    def param(self, name: str) -> pd.Series:
        per_unique = pd.Series([utm.get(name) for utm in self.utm], dtype=STRING)
        return self.encoded.take(per_unique, self.text.index)

    def invalid(self) -> pd.Series:
        return pd.Series(self.encoded.rows(~self.valid), index=self.text.index)


def _normalize(values: pd.Series, config: UtmConfig, param: str) -> pd.Series:
    encoded = Encoded.of(values)
    table = config.alias_table(param)
    normalized = []
    for value in encoded.uniques.tolist():
        text = normalize_utm_value(value, config.space_replacement)
        normalized.append(table.get(text, text) or None)
    return encoded.take(pd.Series(normalized, dtype=STRING), values.index)


def _extras(landing: _Urls, referrer: _Urls) -> np.ndarray:
    """Merge custom parameters per row (landing wins), once per unique pair of URLs."""
    pair = landing.encoded.codes * (len(referrer.extra) + 1) + (referrer.encoded.codes + 1)
    codes, uniques = pd.factorize(pair)
    merged: list[dict[str, Any]] = []
    for key in uniques.tolist():
        landing_code, referrer_code = divmod(int(key), len(referrer.extra) + 1)
        extra: dict[str, Any] = {}
        if referrer_code > 0:
            extra.update(referrer.extra[referrer_code - 1])
        if landing_code >= 0:
            extra.update(landing.extra[landing_code])
        merged.append(extra)
    per_unique = np.empty(len(merged), dtype=object)
    per_unique[:] = merged
    rows: np.ndarray = per_unique[codes]
    return rows


def extract_utm(
    explicit: pd.DataFrame,
    landing_url: pd.Series | None,
    referrer_url: pd.Series | None,
    config: UtmConfig,
) -> FieldResult:
    """Return normalized UTM attribution per row (see the module docstring).

    :param explicit: the source's own ``utm_*`` columns (any subset, possibly none), with the
        rows' index.
    :param landing_url: landing page URLs, or ``None``.
    :param referrer_url: referrer URLs, or ``None``.
    :param config: the loaded UTM settings.
    :return: columns utm_source, utm_medium, utm_campaign, utm_term, utm_content, utm_extra (dict),
        landing_url, referrer_url; issue ``invalid_url`` (warning).
    """
    index = explicit.index
    custom = {name.lower(): name for name in config.custom_params}
    landing = _Urls(to_text(landing_url, index), custom)
    referrer = _Urls(to_text(referrer_url, index), custom)
    columns: dict[str, Any] = {}
    for param in UTM_PARAMS:
        given = to_text(explicit[param]) if param in explicit.columns else to_text(None, index)
        given = given.str.strip()
        raw = given.where(given.ne("")).fillna(landing.param(param)).fillna(referrer.param(param))
        columns[param] = _normalize(raw, config, param)
    columns["utm_extra"] = pd.Series(_extras(landing, referrer), index=index, dtype=object)
    columns["landing_url"] = landing.text.astype(STRING)
    columns["referrer_url"] = referrer.text.astype(STRING)
    issues = [
        issues_where(urls.invalid(), name, "invalid_url", "warning", _INVALID_URL, urls.text)
        for name, urls in (("landing_url", landing), ("referrer_url", referrer))
    ]
    return FieldResult(pd.DataFrame(columns, index=index), concat_issues(issues))
