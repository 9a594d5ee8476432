"""Turn true persons into noisy appearances: nicknames, typos, case and format noise, changed contacts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sandbox.datagen.arrays import STR, BoolArray, IntArray, StrArray, cat, choose, pick, to_str
from sandbox.datagen.people import Table, draw_addresses, draw_phones, email_local_parts, unique_emails
from sandbox.datagen.vocab import EMAIL_DOMAIN_WEIGHTS, EMAIL_DOMAINS, STREET_TYPES, Vocabulary, ascii_fold

_KEYBOARD = "qwertyuiopasdfghjklzxcvbnm"


def typo(values: list[str], rng: np.random.Generator) -> list[str]:
    """Apply one keyboard-style typo (deletion, transposition, substitution, doubling) to each value."""
    n = len(values)
    ops = rng.integers(0, 4, n).tolist()
    where = rng.random(n).tolist()
    letters = rng.integers(0, len(_KEYBOARD), n).tolist()
    out: list[str] = []
    for value, op, w, letter in zip(values, ops, where, letters, strict=True):
        if len(value) < 3:
            out.append(value)
            continue
        i = 1 + int(w * (len(value) - 2))  # never the first character: it keeps case noise visible
        if op == 0:
            out.append(value[:i] + value[i + 1 :])
        elif op == 1 and i + 1 < len(value):
            out.append(value[:i] + value[i + 1] + value[i] + value[i + 2 :])
        elif op == 2:
            out.append(value[:i] + _KEYBOARD[letter] + value[i + 1 :])
        else:
            out.append(value[:i] + value[i] + value[i:])
    return out


def _apply(
    values: StrArray,
    mask: BoolArray,
    fn: Callable[[list[str], np.random.Generator], list[str]],
    rng: np.random.Generator,
) -> None:
    idx = np.flatnonzero(mask)
    if len(idx):
        values[idx] = np.array(fn(values[idx].tolist(), rng), dtype=STR)


def _nickname(vocab: Vocabulary, names: StrArray, rng: np.random.Generator) -> tuple[StrArray, BoolArray]:
    draws = rng.random(len(names)).tolist()
    out: list[str] = []
    changed: list[bool] = []
    for name, r in zip(names.tolist(), draws, strict=True):
        nicks = vocab.nicknames.get(name)
        if nicks:
            out.append(nicks[int(r * len(nicks))])
            changed.append(True)
        else:
            out.append(name)
            changed.append(False)
    return np.array(out, dtype=STR), np.array(changed, dtype=bool)


def _case_noise(values: StrArray, rng: np.random.Generator, upper: float, lower: float) -> StrArray:
    r = rng.random(len(values))
    out: StrArray = np.where(r < upper, np.strings.upper(values), values)
    out = np.where((r >= upper) & (r < upper + lower), np.strings.lower(values), out).astype(STR)
    return out


def _space_noise(values: StrArray, rng: np.random.Generator, share: float) -> StrArray:
    r = rng.random(len(values))
    out: StrArray = np.where(r < share / 2, cat(" ", values), values)
    out = np.where((r >= share / 2) & (r < share), cat(values, "  "), out).astype(STR)
    return out


def format_phones(rng: np.random.Generator, e164: StrArray) -> StrArray:
    """Write E.164 numbers the ways people type them: ``(212) 555-0100``, ``212.555.0100``, ``+44 20...``."""
    n = len(e164)
    nanp = np.strings.startswith(e164, "+1")
    area = np.strings.slice(e164, 2, 5)
    exch = np.strings.slice(e164, 5, 8)
    line = np.strings.slice(e164, 8, 12)
    style = rng.integers(0, 5, n)
    nanp_fmt = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [
            cat("(", area, ") ", exch, "-", line),
            cat(area, "-", exch, "-", line),
            cat(area, ".", exch, ".", line),
            cat(area, exch, line),
        ],
        default=e164,
    )
    spaced = cat(
        np.strings.slice(e164, 0, 3), " ", np.strings.slice(e164, 3, 7), " ", np.strings.slice(e164, 7, None)
    )
    other = np.where(style < 2, spaced, e164)
    out: StrArray = np.where(nanp, nanp_fmt, other).astype(STR)
    out[np.strings.str_len(e164) == 0] = ""
    return out


def make_appearances(  # noqa: PLR0915 - one recipe, read top to bottom
    rng: np.random.Generator, vocab: Vocabulary, persons: Table, person_idx: IntArray, rank: IntArray
) -> Table:
    """Copy persons into appearances; appearances after a person's first get duplicate noise."""
    n = len(person_idx)
    dup = rank > 0
    tags: list[tuple[BoolArray, str]] = []

    def tag(mask: BoolArray, name: str) -> None:
        tags.append((np.asarray(mask, dtype=bool), name))

    first = persons["first_name"][person_idx].copy()
    last = persons["last_name"][person_idx].copy()
    gender = persons["gender"][person_idx]

    nick_mask = dup & pick(rng, n, 0.10)
    if nick_mask.any():
        nicks, changed = _nickname(vocab, first[nick_mask], rng)
        first[nick_mask] = nicks
        real = np.zeros(n, dtype=bool)
        real[np.flatnonzero(nick_mask)[changed]] = True
        tag(real, "nickname")
    typo_first = dup & pick(rng, n, 0.06) & ~nick_mask
    _apply(first, typo_first, typo, rng)
    tag(typo_first, "first_typo")
    initial = dup & pick(rng, n, 0.02) & ~nick_mask & ~typo_first
    first[initial] = cat(
        np.strings.slice(first[initial], 0, 1), np.where(pick(rng, int(initial.sum()), 0.5), ".", "")
    )
    tag(initial, "first_initial")
    last_typo = dup & pick(rng, n, 0.04)
    _apply(last, last_typo, typo, rng)
    tag(last_typo, "last_typo")
    married = dup & pick(rng, n, 0.06) & (gender == "F") & ~last_typo
    last[married] = choose(rng, vocab.surnames, int(married.sum()), vocab.surname_weights)
    tag(married, "last_changed")
    swap = dup & pick(rng, n, 0.03)
    first[swap], last[swap] = last[swap], first[swap].copy()
    tag(swap, "name_swap")

    # Email: dropped, replaced (a new mailbox) or mistyped.
    email = persons["email"][person_idx].copy()
    has_email = np.strings.str_len(email) > 0
    r = rng.random(n)
    drop_email = dup & has_email & (r < 0.20)
    new_email = dup & (r >= 0.20) & (r < 0.38)
    typo_email = dup & has_email & (r >= 0.38) & (r < 0.42)
    email[drop_email] = ""
    if new_email.any():
        k = int(new_email.sum())
        f_slug = np.array([ascii_fold(x) for x in first[new_email].tolist()], dtype=STR)
        l_slug = np.array([ascii_fold(x) for x in last[new_email].tolist()], dtype=STR)
        local = cat(email_local_parts(rng, f_slug, l_slug), to_str(rng.integers(1, 10000, k)))
        domain = choose(rng, np.array(EMAIL_DOMAINS, dtype=STR), k, np.array(EMAIL_DOMAIN_WEIGHTS))
        email[new_email] = unique_emails(rng, local, domain, np.zeros(k, dtype=bool))
    if typo_email.any():
        parts = [e.split("@", 1) for e in email[typo_email].tolist()]
        locals_ = typo([p[0] for p in parts], rng)
        email[typo_email] = np.array(
            [f"{lo}@{p[1]}" for lo, p in zip(locals_, parts, strict=True)], dtype=STR
        )
    tag(drop_email, "email_dropped")
    tag(new_email, "email_changed")
    tag(typo_email, "email_typo")

    # Address: moved, mistyped street, missing, abbreviated street type, ZIP+4.
    country = persons["country"][person_idx].copy()
    address = {
        k: persons[k][person_idx].copy()
        for k in (
            "street_number",
            "street_name",
            "street_type",
            "unit",
            "place",
            "city",
            "state",
            "postal_code",
        )
    }
    moved = dup & pick(rng, n, 0.18)
    if moved.any():
        fresh = draw_addresses(rng, vocab, country[moved])
        for key, values in address.items():
            values[moved] = fresh[key]
    tag(moved, "moved")
    street_typo = dup & pick(rng, n, 0.08)
    _apply(address["street_name"], street_typo, typo, rng)
    tag(street_typo, "street_typo")
    missing = dup & pick(rng, n, 0.04)
    tag(missing, "address_missing")
    full = np.array([t[0] for t in STREET_TYPES], dtype=STR)
    abbr = np.array([t[1] for t in STREET_TYPES], dtype=STR)
    use_abbr = pick(rng, n, 0.3)
    stype = np.where(use_abbr, abbr[address["street_type"]], full[address["street_type"]]).astype(STR)
    line1 = cat(to_str(address["street_number"]), " ", address["street_name"], " ", stype)
    plus4 = pick(rng, n, 0.10) & (country == "US")
    postal = np.where(
        plus4, cat(address["postal_code"], "-", to_str(rng.integers(0, 10000, n), 4)), address["postal_code"]
    ).astype(STR)

    # Phone: dropped or replaced.
    phone = persons["phone"][person_idx].copy()
    r = rng.random(n)
    drop_phone = dup & (r < 0.30)
    new_phone = dup & (r >= 0.30) & (r < 0.45)
    phone[drop_phone] = ""
    phone[new_phone] = draw_phones(rng, vocab, country[new_phone], address["place"][new_phone])
    tag(drop_phone & (np.strings.str_len(persons["phone"][person_idx]) > 0), "phone_dropped")
    tag(new_phone, "phone_changed")

    # Case and whitespace noise on every appearance (lighter on first appearances).
    share = np.where(dup, 1.0, 0.5)
    case_mask = rng.random(n) < 0.15 * share
    tag(case_mask, "case")
    first = np.where(case_mask, _case_noise(first, rng, 0.6, 0.4), first).astype(STR)
    last = np.where(case_mask, _case_noise(last, rng, 0.6, 0.4), last).astype(STR)
    space_mask = rng.random(n) < 0.06 * share
    tag(space_mask, "whitespace")
    first = np.where(space_mask, _space_noise(first, rng, 1.0), first).astype(STR)
    email_case = rng.random(n) < 0.05
    email = np.where(email_case, np.strings.upper(email), email).astype(STR)

    phone = format_phones(rng, phone)
    blank = np.asarray("", dtype=STR)
    # The noise tags of each appearance, in tagging order: few distinct sets, so name each set once.
    bits = np.zeros(n, dtype=np.int64)
    for i, (mask, _) in enumerate(tags):
        bits |= mask.astype(np.int64) << i
    codes, inverse = np.unique(bits, return_inverse=True)
    names = [";".join(name for i, (_, name) in enumerate(tags) if code >> i & 1) for code in codes.tolist()]
    noise = np.array(names, dtype=STR)[inverse.reshape(-1)]
    return {
        "person_idx": person_idx,
        "rank": rank,
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "line1": np.where(missing, blank, line1).astype(STR),
        "line2": np.where(missing, blank, address["unit"]).astype(STR),
        "city": np.where(missing, blank, address["city"]).astype(STR),
        "state": np.where(missing, blank, address["state"]).astype(STR),
        "postal_code": np.where(missing, blank, postal).astype(STR),
        "country": country,
        "noise": noise,
    }
