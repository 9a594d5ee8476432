"""Draw the true gifts of each appearance: one-off and monthly, failures, refunds, campaigns, links."""

from __future__ import annotations

import numpy as np

from sandbox.datagen.arrays import STR, IntArray, StrArray, cat, choose, lookup, pick, to_str
from sandbox.datagen.people import Table
from sandbox.datagen.vocab import (
    COUNTRY_CURRENCY,
    DESIGNATION_WEIGHTS,
    DESIGNATIONS,
    UTM_CHANNELS,
    Vocabulary,
)

SOURCES = ("stripe", "donorbox", "classy", "bank_cheque_export", "event_platform_export")
ONLINE = (0, 1, 2)  # sources where monthly plans and card failures exist
DAY = 86_400
_ONE_OFF_MAJOR = np.array([5, 10, 20, 25, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000])
_ONE_OFF_WEIGHTS = np.array([3, 8, 7, 14, 5, 14, 5, 14, 4, 8, 6, 4, 1.5, 0.5])
_MONTHLY_MAJOR = np.array([5, 10, 15, 20, 25, 30, 50, 100])
_MONTHLY_WEIGHTS = np.array([8, 20, 10, 14, 14, 6, 8, 3])
_COMMENTS = (
    "Keep up the great work!",
    "Thank you for all you do.",
    "In gratitude",
    "Happy to help",
    "For the kids",
    "Matching gift to follow",
)


def campaign_names(ts: IntArray) -> StrArray:
    """Name each gift's campaign from its date: year-end, Giving Tuesday, spring appeal, gala, general."""
    days = ts.astype("datetime64[s]").astype("datetime64[D]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (days.astype("datetime64[M]").astype(np.int64) % 12) + 1
    day = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    ys = to_str(year)
    out: StrArray = np.select(
        [
            (month == 11) & (day >= 25) | (month == 12) & (day <= 3),
            month == 12,
            (month == 4) | (month == 5),
            (month == 9) | (month == 10),
        ],
        [
            cat("Giving Tuesday ", ys),
            cat("Year-End Appeal ", ys),
            cat("Spring Appeal ", ys),
            cat("Fall Gala ", ys),
        ],
        default=np.asarray("General Giving", dtype=STR),
    ).astype(STR)
    return out


def slugify(values: StrArray) -> StrArray:
    """Lower-case and hyphenate campaign names for URLs."""
    out: StrArray = np.strings.replace(np.strings.lower(values), " ", "-")
    return out


def make_gifts(  # noqa: PLR0915, PLR0917 - one linear recipe, easier to read in one place
    rng: np.random.Generator,
    vocab: Vocabulary,
    appearances: Table,
    source: IntArray,
    start: int,
    as_of: int,
    link_share: float,
) -> Table:
    """Draw every gift of every appearance, sorted by time."""
    n_app = len(source)
    online = np.isin(source, ONLINE)
    recurring_app = online & pick(rng, n_app, 0.07)
    months = rng.integers(2, 13, n_app)
    one_offs = 1 + np.minimum(rng.geometric(0.7, n_app) - 1, 5)
    count = np.where(recurring_app, months, one_offs)
    app = np.repeat(np.arange(n_app, dtype=np.int64), count)
    n = len(app)
    first_of_app = np.zeros(n, dtype=bool)
    offsets = np.cumsum(count) - count
    first_of_app[offsets] = True
    k = np.arange(n, dtype=np.int64) - np.repeat(offsets, count)  # installment number within appearance
    recurring = recurring_app[app]

    span = as_of - start
    app_start = start + (rng.random(n_app) * (span - 20 * DAY)).astype(np.int64)
    plan_start = (
        as_of - (months * 30.44 * DAY).astype(np.int64) - (rng.random(n_app) * 400 * DAY).astype(np.int64)
    )
    plan_start = np.maximum(plan_start, start)
    one_off_ts = app_start[app] + (rng.random(n) * (as_of - app_start[app])).astype(np.int64)
    monthly_ts = plan_start[app] + (k * 30.44 * DAY).astype(np.int64) + rng.integers(0, 3600, n)
    ts = np.where(recurring, monthly_ts, one_off_ts)
    ts = np.minimum(ts, as_of - 60)

    person = appearances["person_idx"][app]
    country = appearances["country"][app]
    currency = lookup(COUNTRY_CURRENCY, country)
    exponent = np.where(currency == "JPY", 0, 2).astype(np.int64)

    one_major = _ONE_OFF_MAJOR[
        rng.choice(len(_ONE_OFF_MAJOR), n, p=_ONE_OFF_WEIGHTS / _ONE_OFF_WEIGHTS.sum())
    ]
    plan_major = _MONTHLY_MAJOR[
        rng.choice(len(_MONTHLY_MAJOR), n_app, p=_MONTHLY_WEIGHTS / _MONTHLY_WEIGHTS.sum())
    ]
    major = np.where(recurring, plan_major[app], one_major).astype(np.float64)
    odd = pick(rng, n, 0.15) & ~recurring  # fee-covered or free-typed amounts such as 37.42
    major = np.where(odd, np.round(major * rng.uniform(0.7, 1.6, n), 2), major)
    minor = np.where(
        currency == "JPY",
        np.maximum(np.round(major * 150 / 100) * 100, 100),  # yen: no minor unit, round hundreds
        np.round(major * 100),
    ).astype(np.int64)

    # Outcome: card failures only where a card processor would report them.
    fail_p = np.where(recurring, 0.07, 0.02)
    failed = np.isin(source[app], (0, 2)) & (rng.random(n) < fail_p) & ~first_of_app
    refunded = ~failed & pick(rng, n, 0.03) & np.isin(source[app], ONLINE)
    partial = refunded & pick(rng, n, 0.2)
    refund_minor = np.where(partial, (minor * rng.uniform(0.2, 0.8, n)).astype(np.int64), minor)
    refund_minor = np.where(currency == "JPY", refund_minor, refund_minor // 100 * 100)
    refund_minor = np.where(refunded, np.maximum(refund_minor, 1), 0)
    refund_ts = np.minimum(ts + rng.integers(DAY, 30 * DAY, n), as_of - 1)

    campaign = campaign_names(ts)
    designation = choose(rng, np.array(DESIGNATIONS, dtype=STR), n, np.array(DESIGNATION_WEIGHTS))
    src = source[app]
    has_utm = (src != 3) & pick(rng, n, 0.55)
    channel = rng.integers(0, len(UTM_CHANNELS), n)
    utm_source = np.array([c[0] for c in UTM_CHANNELS], dtype=STR)[channel]
    utm_medium = np.array([c[1] for c in UTM_CHANNELS], dtype=STR)[channel]
    utm_campaign = slugify(campaign)
    has_content = has_utm & pick(rng, n, 0.3)
    utm_content = np.where(has_content, cat("variant-", choose(rng, np.array(list("abc"), dtype=STR), n)), "")
    url = cat(
        "https://give.example.org/",
        utm_campaign,
        "?utm_source=",
        utm_source,
        "&utm_medium=",
        utm_medium,
        "&utm_campaign=",
        utm_campaign,
    )
    url = np.where(has_content, cat(url, "&utm_content=", utm_content), url)
    blank = np.asarray("", dtype=STR)

    tribute = pick(rng, n, 0.04)
    tribute_type = np.where(tribute, np.where(pick(rng, n, 0.6), "honor", "memory"), "").astype(STR)
    honoree = cat(
        choose(rng, vocab.first_names, n, vocab.first_weights),
        " ",
        choose(rng, vocab.surnames, n, vocab.surname_weights),
    )
    comment = np.where(pick(rng, n, 0.05), choose(rng, np.array(_COMMENTS, dtype=STR), n), "").astype(STR)
    linked = np.isin(src, (1, 2)) & ~failed & pick(rng, n, link_share)

    order = np.argsort(ts, kind="stable")
    gifts: Table = {
        "appearance": app,
        "person_idx": person,
        "source": src,
        "ts": ts,
        "currency": currency,
        "exponent": exponent,
        "amount_minor": minor,
        "recurring": recurring,
        "installment": k,
        "failed": failed,
        "refund_minor": refund_minor,
        "refund_ts": refund_ts,
        "campaign": campaign,
        "designation": designation,
        "landing_url": np.where(has_utm, url, blank).astype(STR),
        "utm_source": np.where(has_utm, utm_source, blank).astype(STR),
        "utm_medium": np.where(has_utm, utm_medium, blank).astype(STR),
        "utm_campaign": np.where(has_utm, utm_campaign, blank).astype(STR),
        "utm_content": np.where(has_content, utm_content, blank).astype(STR),
        "tribute_type": tribute_type,
        "honoree": np.where(tribute, honoree, blank).astype(STR),
        "comment": comment,
        "anonymous": pick(rng, n, 0.05),
        "cover_fee": pick(rng, n, 0.3) & (src != 3),
        "linked": linked,
    }
    gifts = {key: values[order] for key, values in gifts.items()}
    gifts["gift_id"] = cat("G", to_str(np.arange(n), 10))
    return gifts
