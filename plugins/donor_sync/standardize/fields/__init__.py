"""Field standardizers: intake text columns -> typed, normalized staging columns plus issues.

Each function takes pandas Series/DataFrames of intake text (any index) and returns a
:class:`FieldResult`: ``values`` (output columns on the same index) and ``issues`` (long format:
row, field, code, severity, message, value). Nothing raises on bad input and no row is dropped;
the validation rules decide what each issue code means for the record.

Suggested order in the pipeline: :func:`clean_text` on the free-text columns first (names,
addresses, comments...: it repairs mojibake and flags encoding damage, formulas, markup and
length), then the specific standardizers on the cleaned columns; :func:`normalize_addresses`
before :func:`to_e164`, whose region comes from ``country_code``.

Output types: text as pandas ``string[pyarrow]`` with ``pd.NA``; flags ``bool`` (or nullable
``boolean`` for source flags); amounts as exact ``decimal.Decimal`` objects in an object column;
timestamps ``datetime64[us, UTC]``.
"""

from __future__ import annotations

from donor_sync.standardize.fields.addresses import normalize_addresses
from donor_sync.standardize.fields.emails import normalize_emails
from donor_sync.standardize.fields.flags import (
    parse_consent_field,
    parse_consent_text,
    parse_flag_fields,
    parse_flags,
)
from donor_sync.standardize.fields.money import parse_amounts, parse_optional_amounts
from donor_sync.standardize.fields.names import standardize_names
from donor_sync.standardize.fields.phones import to_e164
from donor_sync.standardize.fields.result import ISSUE_COLUMNS, FieldResult, issues_where
from donor_sync.standardize.fields.text import clean_text
from donor_sync.standardize.fields.timestamps import parse_timestamps
from donor_sync.standardize.fields.utm import extract_utm
from donor_sync.standardize.fields.utm_config import UtmConfig, load_utm_config

__all__ = [
    "ISSUE_COLUMNS",
    "FieldResult",
    "UtmConfig",
    "clean_text",
    "extract_utm",
    "issues_where",
    "load_utm_config",
    "normalize_addresses",
    "normalize_emails",
    "parse_amounts",
    "parse_consent_field",
    "parse_consent_text",
    "parse_flag_fields",
    "parse_flags",
    "parse_optional_amounts",
    "parse_timestamps",
    "standardize_names",
    "to_e164",
]
