"""Turn input records into the prepared columns that blocking and comparisons work on.

Input is a frame of the fields in :data:`~donor_sync.identity.columns.FIELDS` (any subset) plus a
record id. The standardize stage's vectorized field standardizers do the heavy lifting, so a
record is normalized the same way here as in staging:

- names: :func:`~donor_sync.standardize.fields.standardize_names` (first/last when given, else
  ``full_name`` parsed; ``Last, First`` understood), then ASCII-folded, lower case, punctuation
  and hyphens to spaces; the middle name's initial and a generation suffix (Jr, Sr, II, III, IV)
  are kept apart, for the merge guards;
- email: :func:`~donor_sync.standardize.fields.normalize_emails`'s ``email_key`` (a value that does
  not validate is kept lower-cased, so two copies of the same typo still match);
- phone: :func:`~donor_sync.standardize.fields.to_e164` with the record's country;
- address: :func:`~donor_sync.standardize.fields.normalize_addresses` (USPS forms in the US and
  Canada), then split into house number and street name;
- birth date: YYYYMMDD digits (ISO, ``YYYYMMDD`` and US ``MM/DD/YYYY`` are read).

Every function works once per unique value, so repeated values (most of them) cost nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import jellyfish
import numpy as np
import pandas as pd

from donor_sync.identity.columns import FIELDS, NAME_PART_COLUMNS, PREPARED_COLUMNS
from donor_sync.identity.nicknames import Nicknames, load_nicknames

STRING = "string[pyarrow]"
#: longer name values are not names
MAX_NAME_LENGTH = 80
_NOT_NAME = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")
_HOUSE = re.compile(r"^\s*(\d+[a-z]?)\b[\s,]*(.*)$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})")
_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


@dataclass
class PreparedRecords:
    """Prepared records: ``frame`` has ``record_id`` and every prepared column, row i is record i.

    Integer codes of a column's values (equal values, equal codes; missing is -1) are computed on
    first use and cached: blocking and comparisons work on them.
    """

    frame: pd.DataFrame
    _codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def record_ids(self) -> np.ndarray:
        """Return the record ids, in row order."""
        return np.asarray(self.frame["record_id"].to_numpy(dtype=object))

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(codes, uniques)`` of a prepared column: int32 codes (-1 missing), unique values."""
        hit = self._codes.get(column)
        if hit is None:
            codes, uniques = pd.factorize(self.frame[column], use_na_sentinel=True)
            hit = (codes.astype(np.int32, copy=False), np.asarray(uniques, dtype=object))
            self._codes[column] = hit
        return hit

    def joint_codes(self, first: str, second: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return codes of two columns over one shared vocabulary (for swapped-column levels)."""
        key = f"{first}\x00{second}"
        hit = self._codes.get(key)
        both = pd.concat([self.frame[first], self.frame[second]], ignore_index=True)
        if hit is None:
            codes, uniques = pd.factorize(both, use_na_sentinel=True)
            hit = (codes.astype(np.int32, copy=False), np.asarray(uniques, dtype=object))
            self._codes[key] = hit
        n = len(self.frame)
        return hit[0][:n], hit[0][n:], hit[1]


def map_unique(values: pd.Series, fn: Callable[[str], str | None]) -> pd.Series:
    """Apply ``fn`` once per distinct non-missing value; missing stays missing."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in np.asarray(uniques, dtype=object).tolist()] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=STRING)


def fold(text: str) -> str | None:
    """Return ``text`` ASCII-folded, lower case, letters and single spaces only (None if empty)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    cleaned = _SPACES.sub(" ", _NOT_NAME.sub(" ", ascii_text.replace("'", ""))).strip()
    return cleaned or None


def _lower_text(values: pd.Series) -> pd.Series:
    """Return text lower-cased with runs of whitespace squashed (vectorized; empty -> missing)."""
    text = values.astype(STRING).str.lower().str.replace(r"\s+", " ", regex=True).str.strip()
    return text.where(text != "")


def birth_digits(text: str) -> str | None:
    """Return a birth date as YYYYMMDD (ISO, YYYYMMDD or MM/DD/YYYY in), else its digits as written."""
    text = text.strip()
    match = _ISO.match(text)
    if match:
        return f"{match[1]}{int(match[2]):02d}{int(match[3]):02d}"
    match = _US.match(text)
    if match:
        return f"{match[3]}{int(match[1]):02d}{int(match[2]):02d}"
    digits = re.sub(r"\D", "", text)
    return digits or None


def _metaphone(name: str) -> str | None:
    return str(jellyfish.metaphone(name.replace(" ", ""))) or None


def _soundex(name: str) -> str | None:
    letters = name.replace(" ", "")
    return str(jellyfish.soundex(letters)) if letters else None


def _column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    if name not in frame.columns:
        return None
    values = frame[name].astype(STRING).str.strip()
    return values.where(values != "")


def _text_or_empty(frame: pd.DataFrame, name: str) -> pd.Series:
    found = _column(frame, name)
    return found if found is not None else pd.Series(pd.NA, index=frame.index, dtype=STRING)


def _name_column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    """Return a name column with values too long to be a name blanked (pasted text, an injection
    attempt): they would cost the name parser seconds and can only match by accident."""
    values = _column(frame, name)
    if values is None:
        return None
    return values.where(values.str.len() <= MAX_NAME_LENGTH)


#: generation suffixes (as folded: lower case, no dots) -> one form each
GENERATIONS: dict[str, str] = {
    "jr": "jr",
    "junior": "jr",
    "sr": "sr",
    "senior": "sr",
    "ii": "ii",
    "2nd": "ii",
    "iii": "iii",
    "3rd": "iii",
    "iv": "iv",
    "4th": "iv",
}


def _generation(suffix: str) -> str | None:
    """Return the generation suffix (jr, sr, ii, iii, iv) of a name suffix, else None (PhD, MD)."""
    return GENERATIONS.get(suffix.lower().replace(".", "").replace(" ", ""))


def _initial(name: str) -> str | None:
    folded = fold(name)
    return folded[:1] if folded else None


def _names(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Return first name, last name, generation suffix and middle initial."""
    from donor_sync.standardize.fields import standardize_names

    full, first, last = (_name_column(frame, n) for n in ("full_name", "first_name", "last_name"))
    if full is None and first is None and last is None:
        empty = pd.Series(pd.NA, index=frame.index, dtype=STRING)
        return empty, empty, empty, empty
    values = standardize_names(full, first, last).values
    generation = map_unique(values["name_suffix"], _generation)
    middle_initial = map_unique(values["middle_name"], _initial)
    # Parts given in their own columns (standardized records keep them apart) win over parsed ones.
    given_suffix, given_middle = _name_column(frame, "name_suffix"), _name_column(frame, "middle_name")
    if given_suffix is not None:
        generation = map_unique(given_suffix, _generation).fillna(generation)
    if given_middle is not None:
        middle_initial = map_unique(given_middle, _initial).fillna(middle_initial)
    return (
        map_unique(values["first_name"], fold),
        map_unique(values["last_name"], fold),
        generation,
        middle_initial,
    )


def _email(frame: pd.DataFrame) -> pd.Series:
    from donor_sync.standardize.fields import normalize_emails

    raw = _column(frame, "email")
    if raw is None:
        return _text_or_empty(frame, "email")
    key = normalize_emails(raw, allow_special_use_domains=("example", "test")).values["email_key"]
    return key.astype(STRING).fillna(raw.str.lower())


def _address(frame: pd.DataFrame) -> dict[str, pd.Series]:
    from donor_sync.standardize.fields import normalize_addresses

    parts = {n: _column(frame, n) for n in ("street", "street2", "city", "state", "postal_code", "country")}
    if all(v is None for v in parts.values()):
        empty = pd.Series(pd.NA, index=frame.index, dtype=STRING)
        return dict.fromkeys(("street", "street2", "city", "state", "postal_code", "country"), empty)
    values = normalize_addresses(
        parts["street"],
        parts["street2"],
        parts["city"],
        parts["state"],
        parts["postal_code"],
        parts["country"],
    ).values
    postal = values["postal_code"].astype(STRING).str.upper().str.replace(" ", "", regex=False)
    return {
        "street": _lower_text(values["address_line1"]),
        "street2": _lower_text(values["address_line2"]),
        "city": _lower_text(values["city"]),
        "state": _lower_text(values["region"]),
        "postal_code": postal.where(postal != ""),
        "country": values["country_code"].astype(STRING),
    }


def _phone(frame: pd.DataFrame, country: pd.Series) -> pd.Series:
    from donor_sync.standardize.fields import to_e164

    raw = _column(frame, "phone")
    if raw is None:
        return _text_or_empty(frame, "phone")
    e164 = to_e164(raw, country.where(country.notna()), "US").values["phone"].astype(STRING)
    digits = raw.str.replace(r"\D", "", regex=True)
    fallback = digits.where(digits.str.len() >= 7)
    return e164.str.lstrip("+").fillna(fallback)


def prepare(
    frame: pd.DataFrame, *, id_column: str = "record_id", nicknames: Nicknames | None = None
) -> PreparedRecords:
    """Prepare records for matching (see the module docstring).

    :param frame: columns named as :data:`~donor_sync.identity.columns.FIELDS` (any subset) and
        ``id_column``; other columns are ignored.
    :param id_column: the record id column; missing, the row number is the id.
    :param nicknames: the nickname table (the shipped one by default).
    :return: the prepared records, row i for input row i.
    """
    nicknames = nicknames or load_nicknames()
    frame = frame.reset_index(drop=True)
    ids = (
        frame[id_column].astype(str)
        if id_column in frame.columns
        else pd.Series(np.arange(len(frame)).astype(str), index=frame.index)
    )
    first, last, generation, middle_initial = _names(frame)
    address = _address(frame)
    email = _email(frame)
    out: dict[str, pd.Series] = {"record_id": ids.astype(object)}
    out["first_name"] = first
    out["last_name"] = last
    out["full_name"] = (first.fillna("") + " " + last.fillna("")).str.strip()
    out["full_name"] = out["full_name"].where(out["full_name"] != "")
    out["first_initial"] = first.str.slice(0, 1)
    out["middle_initial"] = middle_initial
    out["generation"] = generation
    out["first_formal"] = map_unique(first, nicknames.formal)
    out["first_metaphone"] = map_unique(first, _metaphone)
    out["last_metaphone"] = map_unique(last, _metaphone)
    out["last_soundex"] = map_unique(last, _soundex)
    out["email"] = email
    out["email_user"] = email.str.replace(r"@.*$", "", regex=True)
    out["phone"] = _phone(frame, address["country"])
    street = address["street"]
    out["street"] = street
    number = street.str.extract(r"^(\d+[a-z]?)\b", expand=False).astype(STRING)
    rest = street.str.replace(r"^\d+[a-z]?\b[\s,]*", "", regex=True)
    out["street_number"] = number
    out["street_name"] = rest.where(rest != "")
    out["street2"] = address["street2"]
    out["city"] = address["city"]
    out["state"] = address["state"]
    out["postal_code"] = address["postal_code"]
    out["zip5"] = address["postal_code"].str.slice(0, 5).str.lower()
    area = out["zip5"].fillna(address["city"])
    out["address"] = (street + " " + area).where(street.notna() & area.notna())
    out["country"] = address["country"]
    birth = map_unique(_text_or_empty(frame, "birth_date"), birth_digits)
    out["birth_date"] = birth
    out["birth_year"] = birth.str.slice(0, 4)
    out["external_id"] = _lower_text(_text_or_empty(frame, "external_id"))
    prepared = pd.DataFrame({k: out[k] for k in ("record_id", *PREPARED_COLUMNS, *NAME_PART_COLUMNS)})
    for col in (*PREPARED_COLUMNS, *NAME_PART_COLUMNS):
        prepared[col] = prepared[col].astype(STRING)
    return PreparedRecords(prepared)


__all__ = ["FIELDS", "PreparedRecords", "birth_digits", "fold", "map_unique", "prepare"]
