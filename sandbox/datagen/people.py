"""Draw the true persons: names, addresses, emails, phones, households and status flags."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sandbox.datagen.arrays import STR, BoolArray, IntArray, StrArray, cat, choose, lookup, pick, to_str
from sandbox.datagen.vocab import (
    COUNTRY_DIAL,
    COUNTRY_WEIGHTS,
    EMAIL_DOMAIN_WEIGHTS,
    EMAIL_DOMAINS,
    EMPLOYERS,
    OCCUPATIONS,
    STREET_NAMES,
    STREET_TYPE_WEIGHTS,
    STREET_TYPES,
    Vocabulary,
    ascii_fold,
)

#: named columns: numpy arrays, or lazy ``Gather`` lookups (same length, indexable by rows)
Table = dict[str, Any]

_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"), dtype=STR)
_DIGITS = np.array(list("0123456789"), dtype=STR)


def draw_first_names(rng: np.random.Generator, vocab: Vocabulary, gender: StrArray) -> StrArray:
    """Draw first names matching each gender, weighted towards common names."""
    out = np.empty(len(gender), dtype=STR)
    for g in ("F", "M"):
        mask = gender == g
        pool = np.flatnonzero(vocab.first_gender == g)
        weights = vocab.first_weights[pool] / vocab.first_weights[pool].sum()
        out[mask] = vocab.first_names[pool[rng.choice(len(pool), size=int(mask.sum()), p=weights)]]
    return out


def draw_surnames(rng: np.random.Generator, vocab: Vocabulary, n: int) -> StrArray:
    """Draw surnames: common ones by a Zipf weight, and a long tail built from syllables."""
    common = choose(rng, vocab.surnames, n, vocab.surname_weights)
    tail = cat(choose(rng, vocab.syllable_prefixes, n), choose(rng, vocab.syllable_suffixes, n))
    out: StrArray = np.where(pick(rng, n, 0.45), tail, common).astype(STR)
    return out


def draw_countries(rng: np.random.Generator, n: int) -> StrArray:
    """Draw each person's country (mostly US)."""
    codes = np.array(list(COUNTRY_WEIGHTS), dtype=STR)
    weights = np.array(list(COUNTRY_WEIGHTS.values()))
    return choose(rng, codes, n, weights / weights.sum())


def _postal_codes(rng: np.random.Generator, country: StrArray, prefix: StrArray) -> StrArray:
    n = len(country)
    d = [to_str(rng.integers(0, 10, n)) for _ in range(4)]
    letter = [choose(rng, _LETTERS, n) for _ in range(3)]
    us = cat(prefix, to_str(rng.integers(0, 100, n), 2))
    ca = cat(prefix, " ", d[0], letter[0], d[1])
    gb = cat(prefix, " ", d[0], letter[0], letter[1])
    five = cat(prefix, d[0], d[1])
    jp = cat(prefix, "-", to_str(rng.integers(0, 10000, n), 4))
    ie = cat(prefix, " ", letter[0], d[0], d[1], letter[1])
    out: StrArray = np.select(
        [country == "US", country == "CA", country == "GB", country == "JP", country == "IE"],
        [us, ca, gb, jp, ie],
        default=five,
    ).astype(STR)
    return out


def draw_addresses(rng: np.random.Generator, vocab: Vocabulary, country: StrArray) -> Table:
    """Draw one address per entry of ``country``, in that country."""
    n = len(country)
    place = np.empty(n, dtype=np.int64)
    for code in np.unique(country):
        mask = country == code
        pool = np.flatnonzero(vocab.place_country == code)
        place[mask] = pool[rng.integers(0, len(pool), int(mask.sum()))]
    number = np.minimum(rng.lognormal(6.0, 1.2, n).astype(np.int64) + 1, 29999)
    street_type = rng.choice(len(STREET_TYPES), size=n, p=np.array(STREET_TYPE_WEIGHTS))
    has_unit = pick(rng, n, 0.12)
    unit_kind = choose(rng, np.array(["Apt ", "Unit ", "Suite ", "#"], dtype=STR), n)
    unit_no = to_str(rng.integers(1, 40, n))
    unit_letter = np.where(pick(rng, n, 0.4), choose(rng, _LETTERS[:6], n), "")
    unit = np.where(has_unit, cat(unit_kind, unit_no, unit_letter), "").astype(STR)
    return {
        "street_number": number,
        "street_name": choose(rng, np.array(STREET_NAMES, dtype=STR), n),
        "street_type": street_type.astype(np.int64),
        "unit": unit,
        "place": place,
        "city": vocab.place_city[place],
        "state": vocab.place_state[place],
        "postal_code": _postal_codes(rng, country, vocab.place_prefix[place]),
        "country": country,
    }


def draw_phones(rng: np.random.Generator, vocab: Vocabulary, country: StrArray, place: IntArray) -> StrArray:
    """Draw E.164 phone numbers (``+1AAAEEELLLL``) with area codes of the person's city."""
    n = len(country)
    country_dial = lookup(COUNTRY_DIAL, country)
    area = vocab.place_area[place]
    nanp = cat("+1", area, to_str(rng.integers(200, 1000, n)), to_str(rng.integers(0, 10000, n), 4))
    rest_len = 10 - np.strings.str_len(area)
    rest = to_str(rng.integers(0, 10**8, n), 8)
    other = cat("+", country_dial, area, np.strings.slice(rest, 0, rest_len))
    out: StrArray = np.where(np.isin(country, ["US", "CA"]), nanp, other).astype(STR)
    return out


def email_local_parts(rng: np.random.Generator, first_slug: StrArray, last_slug: StrArray) -> StrArray:
    """Build email local parts from name slugs in the common patterns people use."""
    n = len(first_slug)
    initial = np.strings.slice(first_slug, 0, 1)
    last_initial = np.strings.slice(last_slug, 0, 1)
    two = to_str(rng.integers(0, 100, n), 2)
    year = to_str(rng.integers(1950, 2006, n))
    patterns = [
        cat(first_slug, ".", last_slug),
        cat(first_slug, last_slug),
        cat(initial, last_slug),
        cat(first_slug, last_initial),
        cat(first_slug, "_", last_slug),
        cat(first_slug, ".", last_slug, two),
        cat(first_slug, year),
        cat(last_slug, initial, two),
    ]
    which = rng.choice(len(patterns), size=n, p=[0.25, 0.15, 0.15, 0.05, 0.1, 0.15, 0.1, 0.05])
    out: StrArray = patterns[0].copy()
    for k in range(1, len(patterns)):
        mask = which == k
        out[mask] = patterns[k][mask]
    return out


def slugs(vocab: Vocabulary, names: StrArray, table: StrArray, table_slugs: StrArray) -> StrArray:
    """Map names to ASCII slugs through their table, folding names outside it."""
    order = np.argsort(table)
    sorted_table = table[order]
    pos = np.clip(np.searchsorted(sorted_table, names), 0, len(table) - 1)
    found = sorted_table[pos] == names
    out = table_slugs[order][pos].astype(STR)
    if not found.all():
        missing = np.flatnonzero(~found)
        out[missing] = np.array([ascii_fold(s) for s in names[missing].tolist()], dtype=STR)
    return out


def unique_emails(rng: np.random.Generator, local: StrArray, domain: StrArray, keep: BoolArray) -> StrArray:
    """Join local parts and domains, adding digits where two persons would share an address.

    Entries where ``keep`` is set may share (joint household mailboxes) and are left alone.
    """
    email = cat(local, "@", domain)
    for _ in range(6):
        dup = pd.Series(email.tolist(), dtype=object).duplicated().to_numpy() & ~keep
        if not dup.any():
            break
        local = np.where(dup, cat(local, to_str(rng.integers(1, 1000, len(email)))), local).astype(STR)
        email = cat(local, "@", domain)
    return email


def make_persons(
    rng: np.random.Generator, vocab: Vocabulary, n: int, household_share: float, shared_email_share: float
) -> Table:
    """Draw ``n`` true persons with households (members share surname and address)."""
    idx = np.arange(n, dtype=np.int64)
    gender = np.where(pick(rng, n, 0.5), "F", "M").astype(STR)
    first = draw_first_names(rng, vocab, gender)
    last = draw_surnames(rng, vocab, n)
    country = draw_countries(rng, n)
    address = draw_addresses(rng, vocab, country)
    has_phone = pick(rng, n, 0.62)
    phone = draw_phones(rng, vocab, country, address["place"])

    # Households: members copy a head's surname and address (and often phone); first names differ.
    n_members = round(n * household_share) if n >= 4 else 0
    household = np.full(n, -1, dtype=np.int64)
    role = np.full(n, "", dtype=STR)
    shared_email = np.zeros(n, dtype=bool)
    if n_members:
        members = np.sort(rng.choice(n, size=n_members, replace=False))
        is_member = np.zeros(n, dtype=bool)
        is_member[members] = True
        candidates = np.flatnonzero(~is_member)
        heads = candidates[rng.integers(0, len(candidates), n_members)]
        last[members] = last[heads]
        country[members] = country[heads]
        for _key, values in address.items():
            values[members] = values[heads]
        share_phone = pick(rng, n_members, 0.5)
        phone[members[share_phone]] = phone[heads[share_phone]]
        has_phone[members[share_phone]] = has_phone[heads[share_phone]]
        household[members] = heads
        household[heads] = heads
        role[heads] = "head"
        role[members] = "member"
        # A member's first name must not be the head's, nor a nickname of it.
        for _ in range(20):
            canon_m = np.array([vocab.canonical.get(x, x) for x in first[members].tolist()], dtype=STR)
            canon_h = np.array([vocab.canonical.get(x, x) for x in first[heads].tolist()], dtype=STR)
            clash = canon_m == canon_h
            if not clash.any():
                break
            first[members[clash]] = draw_first_names(rng, vocab, gender[members[clash]])
        shared_email[members] = pick(rng, n_members, shared_email_share)

    first_slug = slugs(vocab, first, vocab.first_names, vocab.first_slugs)
    last_slug = np.array([_fold(s) for s in last.tolist()], dtype=STR)
    local = email_local_parts(rng, first_slug, last_slug)
    domain = choose(rng, np.array(EMAIL_DOMAINS, dtype=STR), n, np.array(EMAIL_DOMAIN_WEIGHTS))
    if n_members:
        heads_of = household[shared_email]
        local[shared_email] = local[heads_of]
        domain[shared_email] = domain[heads_of]
    email = unique_emails(rng, local, domain, shared_email)
    has_email = pick(rng, n, 0.78) | shared_email
    if n_members:
        has_email[household[shared_email]] = True

    has_job = pick(rng, n, 0.3)
    return {
        "idx": idx,
        "person_id": cat("P", to_str(idx, 8)),
        "gender": gender,
        "first_name": first,
        "last_name": last,
        "email": np.where(has_email, email, "").astype(STR),
        "phone": np.where(has_phone, phone, "").astype(STR),
        **address,
        "household": household,
        "household_role": role,
        "employer": np.where(has_job, choose(rng, np.array(EMPLOYERS, dtype=STR), n), "").astype(STR),
        "occupation": np.where(has_job, choose(rng, np.array(OCCUPATIONS, dtype=STR), n), "").astype(STR),
        "do_not_contact": pick(rng, n, 0.015),
        "deceased": pick(rng, n, 0.006),
    }


_FOLD_CACHE: dict[str, str] = {}


def _fold(name: str) -> str:
    hit = _FOLD_CACHE.get(name)
    if hit is None:
        hit = _FOLD_CACHE[name] = ascii_fold(name)
    return hit
