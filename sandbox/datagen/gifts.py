"""Draw the true gifts of each appearance: one-off and monthly, failures, refunds, campaigns, links."""

from __future__ import annotations

import numpy as np

from sandbox.datagen.arrays import STR, IntArray, StrArray, cat, lookup, pick, to_str
from sandbox.datagen.people import Table
from sandbox.datagen.tables import Gather
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


def campaign_codes(ts: IntArray) -> tuple[list[str], IntArray]:
    """Name each gift's campaign from its date: year-end, Giving Tuesday, spring appeal, gala, general.

    Return the distinct names (sorted by year, then kind) and each gift's index into them.
    """
    days = ts.astype("datetime64[s]").astype("datetime64[D]")
    year = days.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (days.astype("datetime64[M]").astype(np.int64) % 12) + 1
    day = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    kind = np.select(
        [
            (month == 11) & (day >= 25) | (month == 12) & (day <= 3),
            month == 12,
            (month == 4) | (month == 5),
            (month == 9) | (month == 10),
        ],
        [0, 1, 2, 3],
        default=4,
    )
    keys, inverse = np.unique(year * 5 + kind, return_inverse=True)
    prefixes = ("Giving Tuesday ", "Year-End Appeal ", "Spring Appeal ", "Fall Gala ")
    names = [prefixes[key % 5] + str(key // 5) if key % 5 < 4 else "General Giving" for key in keys.tolist()]
    return names, inverse.reshape(-1).astype(np.int64)


def campaign_names(ts: IntArray) -> StrArray:
    """Name each gift's campaign from its date (see ``campaign_codes``)."""
    names, codes = campaign_codes(ts)
    out: StrArray = np.array(names, dtype=STR)[codes]
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
    app_currency = lookup(COUNTRY_CURRENCY, appearances["country"])
    jpy = (app_currency == "JPY")[app]
    exponent = np.where(jpy, 0, 2).astype(np.int64)

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
        jpy,
        np.maximum(np.round(major * 150 / 100) * 100, 100),  # yen: no minor unit, round hundreds
        np.round(major * 100),
    ).astype(np.int64)

    # Outcome: card failures only where a card processor would report them.
    fail_p = np.where(recurring, 0.07, 0.02)
    failed = np.isin(source[app], (0, 2)) & (rng.random(n) < fail_p) & ~first_of_app
    refunded = ~failed & pick(rng, n, 0.03) & np.isin(source[app], ONLINE)
    partial = refunded & pick(rng, n, 0.2)
    refund_minor = np.where(partial, (minor * rng.uniform(0.2, 0.8, n)).astype(np.int64), minor)
    refund_minor = np.where(jpy, refund_minor, refund_minor // 100 * 100)
    refund_minor = np.where(refunded, np.maximum(refund_minor, 1), 0)
    refund_ts = np.minimum(ts + rng.integers(DAY, 30 * DAY, n), as_of - 1)

    # The random draws, in their fixed order; strings are built afterwards, already in time order.
    designation_idx = rng.choice(len(DESIGNATIONS), size=n, p=np.array(DESIGNATION_WEIGHTS))
    src = source[app]
    has_utm = (src != 3) & pick(rng, n, 0.55)
    channel = rng.integers(0, len(UTM_CHANNELS), n)
    has_content = has_utm & pick(rng, n, 0.3)
    content_idx = rng.choice(3, size=n)
    tribute = pick(rng, n, 0.04)
    honor = pick(rng, n, 0.6)
    honoree_first = rng.choice(len(vocab.first_names), size=n, p=vocab.first_weights)
    honoree_last = rng.choice(len(vocab.surnames), size=n, p=vocab.surname_weights)
    has_comment = pick(rng, n, 0.05)
    comment_idx = rng.choice(len(_COMMENTS), size=n)
    linked = np.isin(src, (1, 2)) & ~failed & pick(rng, n, link_share)
    anonymous = pick(rng, n, 0.05)
    cover_fee = pick(rng, n, 0.3) & (src != 3)

    order = np.argsort(ts, kind="stable")
    gifts: Table = {
        "appearance": app,
        "person_idx": person,
        "source": src,
        "ts": ts,
        "exponent": exponent,
        "amount_minor": minor,
        "recurring": recurring,
        "installment": k,
        "failed": failed,
        "refund_minor": refund_minor,
        "refund_ts": refund_ts,
        "anonymous": anonymous,
        "cover_fee": cover_fee,
        "linked": linked,
    }
    gifts = {key: values[order] for key, values in gifts.items()}
    has_utm, channel, has_content, content_idx = (
        has_utm[order],
        channel[order],
        has_content[order],
        content_idx[order],
    )
    tribute, honor = tribute[order], honor[order]
    blank = np.asarray("", dtype=STR)

    # Campaign and UTM columns take few distinct values: build each distinct combination's strings once
    # and keep the columns as lookups into them (``Gather``), not as millions of strings.
    names, campaign_code = campaign_codes(gifts["ts"])
    n_channels = len(UTM_CHANNELS)
    key = (((campaign_code * n_channels + channel) * 2 + has_utm) * 2 + has_content) * 3 + content_idx
    combos, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    k_content = combos % 3
    k_has_content = (combos // 3 % 2).astype(bool)
    k_has_utm = (combos // 6 % 2).astype(bool)
    k_channel = combos // 12 % n_channels
    k_campaign = np.asarray(names, dtype=STR)[combos // (12 * n_channels)]
    utm_source = np.array([c[0] for c in UTM_CHANNELS], dtype=STR)[k_channel]
    utm_medium = np.array([c[1] for c in UTM_CHANNELS], dtype=STR)[k_channel]
    utm_campaign = slugify(k_campaign)
    utm_content = np.where(k_has_content, cat("variant-", np.array(list("abc"), dtype=STR)[k_content]), "")
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
    url = np.where(k_has_content, cat(url, "&utm_content=", utm_content), url)
    honoree = cat(vocab.first_names[honoree_first[order]], " ", vocab.surnames[honoree_last[order]])
    gifts |= {
        "currency": Gather(app_currency, gifts["appearance"]),
        "campaign": Gather(np.asarray(names, dtype=STR), campaign_code),
        "designation": Gather(np.array(DESIGNATIONS, dtype=STR), designation_idx[order]),
        "landing_url": Gather(np.where(k_has_utm, url, blank).astype(STR), inverse),
        "utm_source": Gather(np.where(k_has_utm, utm_source, blank).astype(STR), inverse),
        "utm_medium": Gather(np.where(k_has_utm, utm_medium, blank).astype(STR), inverse),
        "utm_campaign": Gather(np.where(k_has_utm, utm_campaign, blank).astype(STR), inverse),
        "utm_content": Gather(np.where(k_has_content, utm_content, blank).astype(STR), inverse),
        "tribute_type": Gather(
            np.array(["", "honor", "memory"], dtype=STR), np.where(tribute, np.where(honor, 1, 2), 0)
        ),
        "honoree": np.where(tribute, honoree, blank).astype(STR),
        "comment": np.where(
            has_comment[order], np.array(_COMMENTS, dtype=STR)[comment_idx[order]], ""
        ).astype(STR),
    }
    gifts["gift_id"] = cat("G", to_str(np.arange(n), 10))
    return gifts
