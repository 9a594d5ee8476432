"""Country names and codes to ISO 3166-1 alpha-2, from CLDR (babel) plus common aliases.

Recognized: alpha-2 codes (``us``), alpha-3 codes (``USA``, from CLDR's territory aliases), the
English, French, German and Spanish CLDR names (``United States``, ``Allemagne``,
``Deutschland``, ``Alemania``), and the aliases in :data:`ALIASES` (``U.S.A.``, ``UK``,
``Great Britain``, ``Holland``...). Matching ignores case, accents, periods and apostrophes.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from babel import Locale
from babel.core import get_global

from donor_sync.standardize.fields._common import lookup_key

#: CLDR codes that are not countries: the EU, eurozone, UN, outlying Oceania, pseudo-locales.
_NOT_COUNTRIES: Final = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})
_NAME_LOCALES: Final = ("en", "fr", "de", "es")
ALIASES: Final[dict[str, str]] = {
    "usa": "US",
    "us": "US",
    "u s": "US",
    "united states of america": "US",
    "america": "US",
    "the united states": "US",
    "united states america": "US",
    "estados unidos": "US",
    "uk": "GB",
    "u k": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "gb": "GB",
    "holland": "NL",
    "the netherlands": "NL",
    "republic of ireland": "IE",
    "eire": "IE",
    "south korea": "KR",
    "korea": "KR",
    "republic of korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "russian federation": "RU",
    "turkey": "TR",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "burma": "MM",
    "macedonia": "MK",
    "swaziland": "SZ",
    "east timor": "TL",
    "vatican": "VA",
    "holy see": "VA",
    "drc": "CD",
    "democratic republic of the congo": "CD",
    "republic of the congo": "CG",
    "palestine": "PS",
    "hong kong": "HK",
    "macau": "MO",
    "macao": "MO",
    "taiwan": "TW",
    "uae": "AE",
    "prc": "CN",
    "viet nam": "VN",
    "deutschland": "DE",
}


@cache
def country_table() -> dict[str, str]:
    """Return lookup key -> alpha-2 code for every recognized spelling."""
    territories = [str(code) for code in Locale("en").territories]
    countries = {code for code in territories if len(code) == 2 and code.isalpha()} - _NOT_COUNTRIES
    table: dict[str, str] = {}
    for locale in _NAME_LOCALES:
        for code, name in Locale(locale).territories.items():
            if str(code) in countries:
                table.setdefault(lookup_key(str(name)), str(code))
    for alias, replacement in get_global("territory_aliases").items():
        if len(alias) == 3 and alias.isalpha() and len(replacement) == 1 and replacement[0] in countries:
            table[alias.lower()] = replacement[0]
    for code in countries:
        table[code.lower()] = code
    table.update(ALIASES)
    return table


def country_code(text: str) -> str | None:
    """Return the alpha-2 code of a country code or name, or ``None`` when it is not recognized."""
    return country_table().get(lookup_key(text))
