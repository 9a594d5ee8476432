"""Vocabularies from the rules file applied to columns: gift status, recurring interval, tribute,
payment method. Each maps unique values only (the texts repeat across millions of rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where
from donor_sync.standardize.settings import StandardizeSettings


def _key(value: str) -> str:
    """Return the lookup form of a vocabulary text: lower case, words joined by single spaces."""
    return " ".join(value.lower().replace("_", " ").replace("-", " ").split())


def _lookup(aliases: Mapping[Any, Iterable[str]]) -> dict[str, str]:
    return {_key(text): target for target, texts in aliases.items() for text in [target, *texts]}


def map_texts(values: pd.Series, table: Mapping[str, str]) -> pd.Series:
    """Map each text through ``table`` (keys in lookup form); unknown or missing texts give NA."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = pd.array([table.get(_key(str(u))) for u in uniques], dtype=STRING)
    out = mapped.take(codes, allow_fill=True)
    return pd.Series(out, index=values.index)


def map_status(status: pd.Series, source: pd.Series, settings: StandardizeSettings) -> FieldResult:
    """Map each source's status text to the staging status; unknown text is ``unknown_status``.

    A record without status text gets ``statuses.missing`` (or ``missing_status`` when unset).
    """
    shared = _lookup(settings.statuses.aliases)
    out = map_texts(status, shared)
    for src, table in settings.statuses.by_source.items():
        rows = (source == src).to_numpy(dtype=bool)
        if rows.any():
            override = map_texts(status[rows], {_key(k): v for k, v in table.items()})
            out[rows] = override.fillna(out[rows])
    blank = status.isna() | status.str.strip().eq("")
    blank = blank.fillna(True).to_numpy(dtype=bool)
    issues = [
        issues_where(
            pd.Series(~blank & out.isna().to_numpy(dtype=bool), index=status.index),
            "status",
            "unknown_status",
            "error",
            "Payment status is not one the rules map (statuses.aliases / statuses.by_source).",
            status,
        )
    ]
    if settings.statuses.missing is not None:
        out[blank] = settings.statuses.missing
    else:
        issues.append(
            issues_where(
                pd.Series(blank, index=status.index),
                "status",
                "missing_status",
                "error",
                "The record has no payment status and the rules give no default (statuses.missing).",
            )
        )
    return FieldResult(
        pd.DataFrame({"status": out.astype(STRING)}, index=status.index), concat_issues(issues)
    )


def recurring(
    is_recurring: pd.Series, interval: pd.Series, flags: pd.Series, settings: StandardizeSettings
) -> FieldResult:
    """Return is_recurring (bool) and recurring_interval from flag or frequency texts.

    ``is_recurring`` may be a yes/no flag (already parsed in ``flags``) or a frequency text
    ('monthly', 'one-time'); ``recurring_interval`` is read from its own field, else from that text.
    An interval text the rules do not know is ``unknown_interval`` (a warning: the gift is still one).
    """
    intervals = _lookup(settings.recurring.intervals)
    one_time = {_key(t) for t in settings.recurring.one_time}
    from_flag_text = map_texts(is_recurring, intervals)
    from_interval = map_texts(interval, intervals)
    interval_out = from_interval.fillna(from_flag_text)
    interval_text_one_time = map_texts(interval, dict.fromkeys(one_time, "x")).notna()
    flag_text_one_time = map_texts(is_recurring, dict.fromkeys(one_time, "x")).notna()
    recurring_out = flags.astype("boolean")
    recurring_out = recurring_out.mask(recurring_out.isna() & interval_out.notna(), True)
    recurring_out = recurring_out.mask(
        recurring_out.isna() & (interval_text_one_time | flag_text_one_time), False
    )
    recurring_bool = recurring_out.fillna(False).astype(bool)
    # A one-time gift has no interval; a frequency text saying "one-time" is not an error.
    interval_out = interval_out.where(recurring_bool.to_numpy())
    given = interval.notna() & interval.str.strip().ne("")
    unknown = given.fillna(False) & from_interval.isna() & ~interval_text_one_time
    issues = issues_where(
        unknown,
        "recurring_interval",
        "unknown_interval",
        "warning",
        "Recurring interval is not one the rules know (recurring.intervals).",
        interval,
    )
    values = pd.DataFrame(
        {"is_recurring": recurring_bool, "recurring_interval": interval_out.astype(STRING)}, index=flags.index
    )
    return FieldResult(values, issues)


def tributes(
    tribute_text: pd.Series, tribute_type: pd.Series, tribute_name: pd.Series, settings: StandardizeSettings
) -> FieldResult:
    """Return tribute_type (in_memory | in_honor) and tribute_name.

    The type comes from its own field ('memory', 'honor', ...) or from the prefix of the free text
    ('In memory of Jane Doe'), the honoree from its own field or from the rest of that text.
    A tribute text whose kind cannot be told is ``unknown_tribute`` (a warning; no tribute staged).
    """
    kinds = {"in_memory": settings.tributes.in_memory, "in_honor": settings.tributes.in_honor}
    type_table = _lookup(kinds)
    typed = map_texts(tribute_type, type_table)
    prefixes = sorted(
        ((_key(p), kind) for kind, texts in kinds.items() for p in texts), key=lambda kv: -len(kv[0])
    )
    codes, uniques = pd.factorize(tribute_text, use_na_sentinel=True)
    kind_of: list[str | None] = []
    name_of: list[str | None] = []
    for text in uniques:
        key = _key(str(text))
        found = next(((p, k) for p, k in prefixes if key == p or key.startswith(p + " ")), None)
        if found is None:
            kind_of.append(None)
            name_of.append(None)
            continue
        words = str(text).split()
        rest = " ".join(words[len(found[0].split()) :]).strip(" :-,")
        kind_of.append(found[1])
        name_of.append(rest or None)
    text_kind = pd.Series(
        pd.array(kind_of, dtype=STRING).take(codes, allow_fill=True), index=tribute_text.index
    )
    text_name = pd.Series(
        pd.array(name_of, dtype=STRING).take(codes, allow_fill=True), index=tribute_text.index
    )
    out_type = typed.fillna(text_kind)
    out_name = tribute_name.fillna(text_name).where(out_type.notna())
    unknown = (tribute_text.notna() & text_kind.isna() & typed.isna()) | (tribute_type.notna() & typed.isna())
    issues = issues_where(
        unknown.fillna(False),
        "tribute_text",
        "unknown_tribute",
        "warning",
        "Tribute is neither in memory nor in honor of someone by the rules (tributes); not staged.",
        tribute_text.fillna(tribute_type),
    )
    values = pd.DataFrame({"tribute_type": out_type.astype(STRING), "tribute_name": out_name.astype(STRING)})
    return FieldResult(values.set_axis(tribute_text.index), issues)


def payment_methods(values: pd.Series, settings: StandardizeSettings) -> pd.Series:
    """Return the payment method from the aliases, other texts lower-cased and trimmed."""
    mapped = map_texts(values, _lookup(settings.payment_methods))
    fallback = values.str.strip().str.lower()
    return mapped.fillna(fallback.where(fallback.ne(""))).astype(STRING)


def as_int(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return positive integers from text (``'3'``, ``'3.0'``) and a bool array of unreadable values."""
    number = pd.to_numeric(values, errors="coerce")
    whole = number.notna() & (number == np.floor(number)) & (number > 0) & (number < 2**31)
    given = values.notna() & values.str.strip().ne("")
    bad = (given & ~whole).fillna(False).to_numpy(dtype=bool)
    return number.where(whole).astype("Int64"), bad
