"""Person and organization names: parts, casing, nicknames, organizations, phonetic blocking keys.

Where a row has its own first or last name fields, they are used (cleaned, cased, a quoted or
bracketed nickname moved out of the first name, a trailing suffix moved out of the last name);
``full_name`` is parsed only for rows without them. Parsing takes two roads:

- the common ``First Last`` and ``Last, First`` (one word of letters each, no title, suffix or
  particle) are split by RE2 patterns over the unique values;
- everything else (titles, suffixes, middle names, nicknames, particles, several words) goes to
  nameparser, once per unique value: its 2.x ``parse`` (``HumanName`` is that version's
  compatibility layer over the same parser; ``parse`` uses an immutable parser instead of the
  module-level configuration ``HumanName`` reads).

Casing is decided per word: a word written all in capitals or all in lower case is proper-cased
(``BARBARA corell`` -> ``Barbara Corell``), a word in mixed case is left as typed (``McKenzie``,
``DeShawn``, ``O'Brien``). Proper-casing handles ``Mc``/``Mac`` (``MACLEOD`` -> ``MacLeod``, with
the exceptions of Lingua::EN::NameCase: ``Machado``, ``Macias``, ``Mackie``...), ``O'``/``D'``,
hyphens and initials; particles (van, von, de, der, la, du...) stay lower case inside a name part
and are capitalized at its start, as the name is written on its own (``Van der Berg``,
``De la Cruz``).

Organizations: a name with an organization keyword (:data:`ORGANIZATION_KEYWORDS`: Foundation,
Inc, LLC, Trust, Association...) is an organization; weak keywords that are also surnames
(Church, Temple, Bank, Fund) count only in names of three or more words or when followed by more
words (``First Baptist Church``, ``Church of the Redeemer``, not ``Charlotte Church``). A row with
an ``organization_name`` is an organization gift: ``is_organization`` is true and the person name,
if any, is its contact.

Blocking keys: ``last_name_key`` and ``first_name_key`` are jellyfish Metaphone keys of the
ASCII-folded letters. Metaphone was chosen over NYSIIS on the sample generator's surnames with its
own keyboard typos: it keeps 57 % of typo'd surnames in the original's block against 40 % for
NYSIIS, for the same selectivity (231 vs 236 keys for 256 surnames).

Issues: ``missing_name`` (warning) when a row has no person and no organization name;
``unusual_name_characters`` (warning) when a person name part holds characters no name has
(digits, ``;``, ``=``, ``<``, ``@``...) or an organization name has ``;``, ``=``, ``<``, ``--``...:
that is how injection attempts and misplaced data show.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from functools import cache
from typing import Final

import jellyfish
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from nameparser import parse

from donor_sync.standardize.fields._common import (
    Encoded,
    arrow,
    rx_extract,
    rx_test,
    squash,
    to_text,
)
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where

PARTS: Final = ("name_prefix", "first_name", "middle_name", "last_name", "name_suffix", "nickname")

#: Words that make a name an organization's (matched as whole words, any case).
ORGANIZATION_KEYWORDS: Final = (
    "foundation",
    "fdn",
    "inc",
    "incorporated",
    "llc",
    "l.l.c",
    "ltd",
    "limited",
    "llp",
    "plc",
    "corp",
    "corporation",
    "company",
    "co",
    "association",
    "assn",
    "assoc",
    "university",
    "college",
    "institute",
    "society",
    "charity",
    "charitable",
    "trust",
    "trustees",
    "ministries",
    "ministry",
    "parish",
    "diocese",
    "synagogue",
    "mosque",
    "congregation",
    "baptist",
    "methodist",
    "presbyterian",
    "lutheran",
    "episcopal",
    "catholic",
    "partners",
    "partnership",
    "group",
    "holdings",
    "enterprises",
    "industries",
    "gmbh",
    "committee",
    "council",
    "federation",
    "alliance",
    "club",
    "league",
    "union",
    "cooperative",
    "coop",
    "hospital",
    "school",
    "academy",
    "foundations",
    "philanthropies",
    "philanthropy",
    "endowment",
    "nonprofit",
    "daf",
    "ymca",
    "ywca",
    "pta",
    "pto",
    "rotary",
    "kiwanis",
    "lions",
)
#: Organization words that are also surnames: they count only inside longer names.
WEAK_ORGANIZATION_KEYWORDS: Final = ("church", "temple", "bank", "fund", "chapel", "mission")
PARTICLES: Final = frozenset(
    {
        "van",
        "von",
        "de",
        "der",
        "den",
        "del",
        "della",
        "di",
        "da",
        "du",
        "des",
        "la",
        "le",
        "dos",
        "das",
        "ten",
        "ter",
        "zu",
        "y",
    }
)
TITLES: Final = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "rev",
        "fr",
        "sir",
        "dame",
        "lady",
        "lord",
        "hon",
        "capt",
        "col",
        "gen",
        "maj",
        "lt",
        "sgt",
        "rabbi",
        "pastor",
        "father",
        "sister",
        "brother",
    }
)
#: suffix as written (lower case, dots removed) -> canonical form
SUFFIXES: Final[dict[str, str]] = {
    "jr": "Jr.",
    "sr": "Sr.",
    "ii": "II",
    "iii": "III",
    "iv": "IV",
    "2nd": "2nd",
    "3rd": "3rd",
    "phd": "PhD",
    "md": "MD",
    "dds": "DDS",
    "dmd": "DMD",
    "esq": "Esq.",
    "cpa": "CPA",
    "rn": "RN",
    "jd": "JD",
    "mba": "MBA",
    "dvm": "DVM",
    "obe": "OBE",
    "mbe": "MBE",
    "cbe": "CBE",
    "qc": "QC",
    "kc": "KC",
    "ret": "Ret.",
}
#: Mac-names that are not Mac + name (Lingua::EN::NameCase's list, and a few more)
_MAC_EXCEPTIONS: Final = (
    "macevicius",
    "machado",
    "machar",
    "machin",
    "machlin",
    "macias",
    "maciulis",
    "mackie",
    "mackle",
    "macklin",
    "mackmin",
    "macquarie",
    "mackey",
    "macedo",
    "macon",
    "macey",
    "macri",
)
_MAC: Final = re.compile(r"mac[a-z]{2,}[^aciozj]")
_MC: Final = re.compile(r"mc[a-z]{2,}")
_APOSTROPHE: Final = re.compile(r"([a-z])(['\u2019])([a-z].*)")
_INITIALS: Final = re.compile(r"(?:[^\W\d_]\.)+")
_LETTER: Final = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # ASCII and Latin letters
_WORD: Final = f"[{_LETTER}][{_LETTER}'\u2019-]*"
# RE2 patterns (pyarrow), run on whitespace-squashed text.
#: two words of letters: the vectorized "First Last" road
_FIRST_LAST: Final = f"^(?P<first>{_WORD}) (?P<last>{_WORD})$"
#: "Last, First" (bank exports) with one word each
_LAST_FIRST: Final = f"^(?P<last>{_WORD}) ?, ?(?P<first>{_WORD})$"
_QUOTES: Final = '"\u201c\u201d'
_NICKNAME: Final = (
    f"^(?P<before>[^{_QUOTES}()]*?) ?[{_QUOTES}(](?P<nick>[^{_QUOTES}()]+)[{_QUOTES})] ?(?P<after>.*)$"
)
_TRAILING_WORD: Final = "^(?P<rest>.*[^ ,])[ ,]+(?P<word>[^ ,]+)$"
#: what an organization name never has (they may have digits, &, !, +: 3M, 7-Eleven, Yahoo!)
_UNUSUAL_ORGANIZATION: Final = r"[;=<>{}\[\]|\\`]|--"
#: characters a name part never has
_UNUSUAL: Final = r"[0-9;=<>@#$%^*_{}\[\]|\\/:!?+~`]"


@cache
def _organization_pattern() -> str:
    strong = "|".join(re.escape(word).replace(r"\.", r"\.?") for word in ORGANIZATION_KEYWORDS)
    weak = "|".join(WEAK_ORGANIZATION_KEYWORDS)
    # "& Co", strong keywords as whole words; weak ones followed by a word or in 3+ word names.
    return (
        rf"(?i)(?:^|[ ,(])(?:{strong})\.?(?:$|[ ,)])|& ?co\b"
        rf"|(?:^| )(?:{weak}) [^ ]|^[^ ]+ [^ ]+ .*\b(?:{weak})$"
    )


def _is_organization(values: pd.Series) -> np.ndarray:
    encoded = Encoded.of(values)
    return encoded.rows(rx_test(encoded.uniques, _organization_pattern()))


def _cap_part(part: str) -> str:
    lower = part.lower()
    if _INITIALS.fullmatch(lower):
        return part.upper()
    apostrophe = _APOSTROPHE.fullmatch(lower)
    if apostrophe:
        return apostrophe[1].upper() + apostrophe[2] + apostrophe[3].capitalize()
    if _MC.fullmatch(lower):
        return "Mc" + lower[2:].capitalize()
    if _MAC.fullmatch(lower) and not lower.startswith(_MAC_EXCEPTIONS):
        return "Mac" + lower[3:].capitalize()
    return lower.capitalize()


def _case_word(word: str, *, first: bool) -> str:
    if any(ch.isupper() for ch in word) and any(ch.islower() for ch in word):
        return word  # mixed case: as typed
    if not first and word.lower() in PARTICLES:
        return word.lower()
    return "-".join(_cap_part(piece) for piece in word.split("-"))


def case_name(value: str) -> str:
    """Proper-case the words of a name part written in one case; leave mixed-case words as typed."""
    return " ".join(_case_word(word, first=i == 0) for i, word in enumerate(value.split(" ")))


def case_title(value: str) -> str:
    """Case a title (``DR.`` -> ``Dr.``, ``mr. and mrs.`` -> ``Mr. and Mrs.``)."""
    words = value.split(" ")
    return " ".join(w.lower() if w.lower() in {"and", "&"} else _case_word(w, first=True) for w in words)


def case_suffix(value: str) -> str:
    """Return the canonical suffix (``jr`` -> ``Jr.``, ``PHD`` -> ``PhD``) or the value as typed."""
    return SUFFIXES.get(value.lower().replace(".", "").replace(" ", ""), value)


def phonetic_key(value: str) -> str | None:
    """Return the Metaphone key of the ASCII letters of ``value`` (``None`` when it has none)."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    letters = "".join(ch for ch in folded if ch.isalpha())
    return str(jellyfish.metaphone(letters)) or None if letters else None


def _map_unique(values: pd.Series, fn: Callable[[str], str | None]) -> pd.Series:
    """Apply ``fn`` once per unique value and map the results back to the rows."""
    encoded = Encoded.of(values)
    mapped = pd.Series([fn(v) for v in encoded.uniques.tolist()], dtype=STRING)
    return encoded.take(mapped, values.index)


def _is_word(words: pd.Series, vocabulary: Collection[str]) -> np.ndarray:
    """Return, per row, whether the word (lower case, periods dropped) is in ``vocabulary``."""
    keys = pc.replace_substring(pc.utf8_lower(arrow(words)), ".", "")
    return np.asarray(pc.is_in(keys, pa.array(sorted(vocabulary))).fill_null(False), dtype=bool)


def _parse(value: str) -> tuple[str | None, ...]:
    name = parse(value)
    parts = (name.title, name.given, name.middle, name.family, name.suffix, name.nickname)
    return tuple(part or None for part in parts)


def _split_unique(names: pd.Series) -> pd.DataFrame:
    """Split unique full names: vectorized "First Last" and "Last, First", nameparser for the rest."""
    count = len(names)
    columns = {part: np.full(count, None, dtype=object) for part in PARTS}
    done = np.zeros(count, dtype=bool)
    for pattern in (_FIRST_LAST, _LAST_FIRST):
        pair = rx_extract(names, pattern)
        fast = (
            ~done
            & pair["first"].notna().to_numpy(dtype=bool)
            & ~_is_word(pair["first"], TITLES | PARTICLES)
            & ~_is_word(pair["last"], SUFFIXES)
        )
        columns["first_name"][fast] = pair["first"].to_numpy(dtype=object)[fast]
        columns["last_name"][fast] = pair["last"].to_numpy(dtype=object)[fast]
        done |= fast
    values = names.tolist()
    for position in np.flatnonzero(~done).tolist():
        for part, found in zip(PARTS, _parse(values[position]), strict=True):
            columns[part][position] = found
    return pd.DataFrame({part: pd.Series(columns[part], dtype=STRING) for part in PARTS})


def _split_full(full: pd.Series) -> pd.DataFrame:
    """Split full names, once per unique value (missing rows stay missing)."""
    encoded = Encoded.of(full)
    parts = _split_unique(encoded.uniques)
    return pd.DataFrame({part: encoded.take(parts[part], full.index) for part in PARTS})


def _nicknames(first: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Move a quoted or bracketed nickname out of first names (``Robert "Bob"``)."""
    encoded = Encoded.of(first)
    found = rx_extract(encoded.uniques, _NICKNAME)
    has = found["nick"].notna()
    rest = squash(found["before"].fillna("") + " " + found["after"].fillna(""))
    cleaned = encoded.uniques.where(~has, rest)
    return encoded.take(cleaned, first.index), encoded.take(found["nick"], first.index)


def _suffixes(last: pd.Series, suffix: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Move a trailing suffix out of last names (``Smith Jr.``) where there is no suffix field."""
    encoded = Encoded.of(last)
    found = rx_extract(encoded.uniques, _TRAILING_WORD)
    is_suffix = pd.Series(_is_word(found["word"], SUFFIXES), index=found.index)
    stem = encoded.take(found["rest"].where(is_suffix), last.index)
    word = encoded.take(found["word"].where(is_suffix), last.index)
    move = stem.notna() & suffix.isna()
    return last.where(~move, stem), suffix.where(~move, word)


def standardize_names(  # noqa: PLR0917 - the positional contract the pipeline calls
    full_name: pd.Series | None,
    first_name: pd.Series | None,
    last_name: pd.Series | None,
    middle_name: pd.Series | None = None,
    name_prefix: pd.Series | None = None,
    name_suffix: pd.Series | None = None,
    organization_name: pd.Series | None = None,
) -> FieldResult:
    """Standardize donor names (see the module docstring); any argument may be ``None``.

    :return: columns name_prefix, first_name, middle_name, last_name, name_suffix, nickname,
        is_organization (bool), organization_name, last_name_key, first_name_key; issues
        ``missing_name`` and ``unusual_name_characters`` (warnings).
    """
    given = [
        s
        for s in (full_name, first_name, last_name, middle_name, name_prefix, name_suffix, organization_name)
        if s is not None
    ]
    if not given:
        raise ValueError("standardize_names needs at least one name column")
    index = given[0].index
    full, first, last, middle, prefix, suffix, organization = (
        squash(to_text(s, index))
        for s in (full_name, first_name, last_name, middle_name, name_prefix, name_suffix, organization_name)
    )
    has_fields = (first.notna() | last.notna()).to_numpy(dtype=bool)
    combined = squash(first.fillna("") + " " + last.fillna(""))
    fields_org = has_fields & _is_organization(combined)
    full_org = ~has_fields & _is_organization(full)
    org_name = organization.fillna(combined.where(fields_org)).fillna(full.where(full_org))
    is_org = org_name.notna().to_numpy(dtype=bool)

    # Each road works on its own rows (the others masked to missing), once per unique value.
    use_fields = has_fields & ~fields_org
    use_full = ~has_fields & ~full_org
    split = _split_full(full.where(use_full))
    given_first, nickname = _nicknames(first.where(use_fields))
    given_last, given_suffix = _suffixes(last.where(use_fields), suffix.where(use_fields))
    person = use_fields | (use_full & full.notna().to_numpy(dtype=bool))
    parts = {
        "name_prefix": prefix.where(person).fillna(split["name_prefix"]),
        "first_name": given_first.fillna(split["first_name"]),
        "middle_name": middle.where(person).fillna(split["middle_name"]),
        "last_name": given_last.fillna(split["last_name"]),
        "name_suffix": given_suffix.fillna(split["name_suffix"]).fillna(suffix.where(person)),
        "nickname": nickname.fillna(split["nickname"]),
    }
    for part in ("first_name", "middle_name", "last_name", "nickname"):
        parts[part] = _map_unique(parts[part], case_name)
    parts["name_prefix"] = _map_unique(parts["name_prefix"], case_title)
    parts["name_suffix"] = _map_unique(parts["name_suffix"], case_suffix)

    values = pd.DataFrame(
        {
            **{part: parts[part].astype(STRING) for part in PARTS},
            "is_organization": is_org,
            "organization_name": org_name.astype(STRING),
            "last_name_key": _map_unique(parts["last_name"], phonetic_key),
            "first_name_key": _map_unique(parts["first_name"], phonetic_key),
        },
        index=index,
    )
    no_name = values["first_name"].isna() & values["last_name"].isna() & ~is_org
    person_text = parts["first_name"].fillna("")
    for part in ("name_prefix", "middle_name", "last_name", "name_suffix", "nickname"):
        person_text = person_text + " " + parts[part].fillna("")
    unusual = pd.Series(
        rx_test(person_text, _UNUSUAL) | rx_test(org_name.fillna(""), _UNUSUAL_ORGANIZATION), index=index
    )
    raw_name = full.where(~has_fields, combined)
    issues = [
        issues_where(
            no_name,
            "full_name",
            "missing_name",
            "warning",
            "Record has no usable person or organization name (expected a first and/or last name, "
            "a full name, or an organization name).",
            None,
        ),
        issues_where(
            unusual,
            "full_name",
            "unusual_name_characters",
            "warning",
            "Name contains characters that names do not have (digits or symbols such as ; = < @); "
            "check for misplaced data or an injection attempt.",
            raw_name,
        ),
    ]
    return FieldResult(values, concat_issues(issues))
