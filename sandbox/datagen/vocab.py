"""Load the small name, nickname and place tables and hold the other fixed vocabularies."""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from sandbox.datagen.arrays import STR, StrArray

DATA_DIR = Path(__file__).resolve().parent / "data"

STREET_NAMES = [
    "Main",
    "Oak",
    "Maple",
    "Cedar",
    "Elm",
    "Pine",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Church",
    "High",
    "Mill",
    "Walnut",
    "Chestnut",
    "Spruce",
    "Willow",
    "Birch",
    "Jefferson",
    "Lincoln",
    "Madison",
    "Franklin",
    "Adams",
    "Jackson",
    "Sunset",
    "River",
    "Spring",
    "Meadow",
    "Forest",
    "Highland",
    "Ridge",
    "Valley",
    "Center",
    "Union",
    "Market",
    "School",
    "Railroad",
    "Bridge",
    "Prospect",
    "Pleasant",
    "Locust",
    "Cherry",
    "Dogwood",
    "Magnolia",
    "Hickory",
    "Poplar",
    "Sycamore",
    "Laurel",
    "Orchard",
    "Grove",
    "Harbor",
    "Bay",
    "Lakeview",
    "Fairview",
    "Woodland",
    "Greenwood",
    "Kingston",
    "Victoria",
    "Albert",
    "Queen",
]
#: (full form, abbreviation) of street types
STREET_TYPES = (
    ("Street", "St"),
    ("Avenue", "Ave"),
    ("Road", "Rd"),
    ("Drive", "Dr"),
    ("Lane", "Ln"),
    ("Boulevard", "Blvd"),
    ("Court", "Ct"),
    ("Place", "Pl"),
    ("Terrace", "Ter"),
    ("Way", "Way"),
)
STREET_TYPE_WEIGHTS = (0.3, 0.2, 0.12, 0.1, 0.08, 0.05, 0.05, 0.04, 0.03, 0.03)
#: Reserved example domains only: generated addresses can never reach a real mailbox.
EMAIL_DOMAINS = (
    "gmail.example.com",
    "yahoo.example.com",
    "hotmail.example.com",
    "outlook.example.com",
    "icloud.example.com",
    "aol.example.com",
    "comcast.example.net",
    "proton.example.org",
    "work.example.org",
    "example.net",
)
EMAIL_DOMAIN_WEIGHTS = (0.36, 0.12, 0.1, 0.1, 0.09, 0.05, 0.05, 0.04, 0.05, 0.04)
DESIGNATIONS = (
    "General Fund",
    "Where Most Needed",
    "Scholarship Fund",
    "Building Fund",
    "Emergency Relief",
    "Food Program",
    "Youth Programs",
)
DESIGNATION_WEIGHTS = (0.35, 0.2, 0.12, 0.08, 0.1, 0.1, 0.05)
#: (utm_source, utm_medium)
UTM_CHANNELS = (
    ("facebook", "social"),
    ("instagram", "social"),
    ("google", "cpc"),
    ("newsletter", "email"),
    ("appeal", "email"),
    ("partner", "referral"),
    ("twitter", "social"),
)
EMPLOYERS = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "City Schools",
    "State University",
    "Self-employed",
    "Retired",
    "Riverside Hospital",
    "Northwind Traders",
)
OCCUPATIONS = ("Teacher", "Engineer", "Nurse", "Retired", "Attorney", "Manager", "Physician", "Student")
#: ISO 4217 code -> (minor-unit exponent, USD value of one major unit)
CURRENCIES: dict[str, tuple[int, float]] = {
    "USD": (2, 1.0),
    "EUR": (2, 1.08),
    "GBP": (2, 1.27),
    "CAD": (2, 0.73),
    "JPY": (0, 0.0067),
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "JPY": "¥"}
COUNTRY_CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "IE": "EUR", "JP": "JPY"}
COUNTRY_WEIGHTS = {"US": 0.86, "CA": 0.05, "GB": 0.045, "DE": 0.012, "FR": 0.01, "IE": 0.008, "JP": 0.015}
COUNTRY_DIAL = {"US": "1", "CA": "1", "GB": "44", "DE": "49", "FR": "33", "IE": "353", "JP": "81"}


def ascii_fold(text: str) -> str:
    """Return ``text`` without accents and without characters an email local part would drop."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass(frozen=True)
class Vocabulary:
    """The name and place tables as arrays, with sampling weights."""

    first_names: StrArray
    first_gender: StrArray
    first_weights: np.ndarray
    first_slugs: StrArray
    surnames: StrArray
    surname_weights: np.ndarray
    surname_slugs: StrArray
    syllable_prefixes: StrArray
    syllable_suffixes: StrArray
    #: nickname table: formal -> nicknames
    nicknames: dict[str, tuple[str, ...]]
    #: every name -> its canonical (formal) name; names without nicknames map to themselves
    canonical: dict[str, str]
    place_city: StrArray
    place_state: StrArray
    place_prefix: StrArray
    place_country: StrArray
    place_area: StrArray


def _read(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _zipf(n: int, offset: float) -> np.ndarray:
    weights = 1.0 / (np.arange(n, dtype=np.float64) + offset)
    return np.asarray(weights / weights.sum())


@cache
def load_vocabulary() -> Vocabulary:
    """Load the tables in ``data/`` once per process."""
    firsts = _read("first_names.csv")
    surnames = [row["surname"] for row in _read("surnames.csv")]
    nick_rows = _read("nicknames.csv")
    places = _read("places.csv")
    nicknames: dict[str, list[str]] = {}
    canonical: dict[str, str] = {}
    for row in nick_rows:
        nicknames.setdefault(row["formal"], []).append(row["nickname"])
        canonical.setdefault(row["nickname"], row["formal"])
    for row in firsts:
        canonical.setdefault(row["name"], row["name"])
    prefixes = [
        "Ash",
        "Bal",
        "Bran",
        "Cal",
        "Dar",
        "El",
        "Fair",
        "Gil",
        "Hart",
        "Kil",
        "Lang",
        "Mar",
        "Nor",
        "Os",
        "Pem",
        "Rad",
        "Sel",
        "Thorn",
        "Wal",
        "Win",
        "Ald",
        "Bex",
        "Crom",
        "Dun",
        "Fen",
        "Hol",
        "Kirk",
        "Lind",
        "Mel",
        "Pen",
        "Ros",
        "Stan",
        "Tre",
        "Whit",
        "Yar",
        "Bro",
        "Cor",
        "Gar",
        "Har",
        "Mont",
    ]
    suffixes = [
        "by",
        "ton",
        "ley",
        "wood",
        "ford",
        "field",
        "well",
        "more",
        "stead",
        "worth",
        "ridge",
        "brook",
        "dale",
        "ham",
        "son",
        "man",
        "ett",
        "ard",
        "ick",
        "ston",
        "croft",
        "hurst",
        "combe",
        "thorpe",
        "wick",
        "land",
        "ing",
        "er",
        "ow",
        "ell",
    ]
    return Vocabulary(
        first_names=np.array([r["name"] for r in firsts], dtype=STR),
        first_gender=np.array([r["gender"] for r in firsts], dtype=STR),
        first_weights=_zipf(len(firsts), 8.0),
        first_slugs=np.array([ascii_fold(r["name"]) for r in firsts], dtype=STR),
        surnames=np.array(surnames, dtype=STR),
        surname_weights=_zipf(len(surnames), 10.0),
        surname_slugs=np.array([ascii_fold(s) for s in surnames], dtype=STR),
        syllable_prefixes=np.array(prefixes, dtype=STR),
        syllable_suffixes=np.array(suffixes, dtype=STR),
        nicknames={k: tuple(v) for k, v in nicknames.items()},
        canonical=canonical,
        place_city=np.array([p["city"] for p in places], dtype=STR),
        place_state=np.array([p["state"] for p in places], dtype=STR),
        place_prefix=np.array([p["postal_prefix"] for p in places], dtype=STR),
        place_country=np.array([p["country"] for p in places], dtype=STR),
        place_area=np.array([p["area_code"] for p in places], dtype=STR),
    )
