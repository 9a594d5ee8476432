"""The column vocabularies of identity resolution: input fields and prepared columns.

Input fields are what a caller maps its data to (``donor-sync dedupe --map COLUMN=FIELD``).
Prepared columns are what :func:`donor_sync.identity.prepare.prepare` derives from them; the
rules file's blocking keys, deterministic rules and comparisons name prepared columns.
"""

from __future__ import annotations

from typing import Final

#: the fields a record may have (any subset; missing ones are treated as empty)
FIELDS: Final = (
    "first_name",
    "last_name",
    "full_name",
    "middle_name",
    "name_suffix",
    "email",
    "phone",
    "street",
    "street2",
    "city",
    "state",
    "postal_code",
    "country",
    "birth_date",
    "external_id",
)

#: prepared column -> what it holds (all text, lower case, missing as NA)
PREPARED_COLUMNS: Final[dict[str, str]] = {
    "first_name": "Given name, ASCII-folded lower case (parsed from full_name when not given).",
    "last_name": "Family name, ASCII-folded lower case.",
    "full_name": "first_name and last_name joined by a space.",
    "first_initial": "First letter of first_name.",
    "first_formal": "first_name's nickname-canonical form (bob -> robert), else first_name.",
    "first_metaphone": "Metaphone key of first_name.",
    "last_metaphone": "Metaphone key of last_name.",
    "last_soundex": "Soundex code of last_name.",
    "email": "Normalized email address, lower case (the standardizer's email_key).",
    "email_user": "Local part of email.",
    "phone": "Phone number in E.164 digits without '+'.",
    "street": "Street line (USPS-normalized for US/Canada), lower case.",
    "street_number": "Leading house number of street.",
    "street_name": "street without its house number.",
    "address": "street and zip5 joined (street and city without a postcode): one address, for one "
    "comparison that does not count street, postcode and city as independent evidence.",
    "street2": "Second address line, lower case.",
    "city": "City, lower case.",
    "state": "State or region code, lower case.",
    "postal_code": "Postal code, upper case without spaces.",
    "zip5": "First five characters of postal_code (a US ZIP+4 becomes its ZIP).",
    "country": "ISO alpha-2 country code.",
    "birth_date": "Birth date as YYYYMMDD digits (kept as written when not a valid date).",
    "birth_year": "First four digits of birth_date.",
    "external_id": "External identifier (a CRM id, a national id), trimmed lower case.",
}

#: name parts :func:`~donor_sync.identity.prepare.prepare` keeps beside the prepared columns, for
#: the merge guards only (rules files cannot name them; a frame without them -- records prepared
#: elsewhere -- just skips the guards that read them)
NAME_PART_COLUMNS: Final[dict[str, str]] = {
    "middle_initial": "First letter of the middle name (middle_name when given, else parsed from the "
    "names), when there is one.",
    "generation": "Generation suffix of the name (name_suffix when given, else parsed from the names): "
    "jr, sr, ii, iii or iv (2nd -> ii, Junior -> jr); other suffixes (PhD, MD) are not kept.",
}
