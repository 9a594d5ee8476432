"""Step 2: one projection frame (intake text) → typed staging columns and every issue found.

The field standardizers (:mod:`donor_sync.standardize.fields`) do the per-field work; this module
decides which rows carry a donor and which a gift, feeds each standardizer the columns it needs
with the settings and the source's parse options, and derives what is specific to staging: gift
status (with refunds and disputes), recurring plan, tribute, payment method, test payments, gift
and plan keys, and consent signals. Nothing here decides what an issue does; routing does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from donor_sync.standardize import fields, vocabulary
from donor_sync.standardize.columns import DONOR_COLUMNS, GIFT_COLUMNS
from donor_sync.standardize.fields.result import STRING, FieldResult, concat_issues, issues_where
from donor_sync.standardize.gift_keys import gift_keys, recurring_keys
from donor_sync.standardize.projections import ParseOptions
from donor_sync.standardize.settings import StandardizeSettings

#: Free-text intake fields cleaned by clean_text (repair, hazards, lengths). Codes, numbers, dates,
#: flags, ids and phone numbers are left to their own parsers: a leading '-' or '+' is data there.
CLEANED_FIELDS: Final[tuple[str, ...]] = (
    "full_name",
    "name_prefix",
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "organization_name",
    "email",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "consent_text",
    "status",
    "payment_method",
    "recurring_interval",
    "designation",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "landing_url",
    "referrer_url",
    "tribute_text",
    "tribute_type",
    "tribute_name",
    "comment",
)

#: Intake flag fields of a donor that may stand for consent signals (``consent_flags``), plus deceased.
DONOR_FLAG_FIELDS: Final[tuple[str, ...]] = (
    "email_opt_in",
    "sms_opt_in",
    "email_opt_out",
    "do_not_mail",
    "do_not_call",
    "deceased",
)

#: Gift columns of a standardized frame: the staging columns plus the minor units of fee and refund.
GIFT_FRAME_COLUMNS: Final[tuple[str, ...]] = (*GIFT_COLUMNS, "fee_amount_minor", "refunded_amount_minor")

_OCCURRED = "@@occurred_at@@"  # a closed-vocabulary JSON never contains it


@dataclass(frozen=True)
class Standardized:
    """The typed result of one projection frame, over the frame's rows (index 0..n-1).

    ``donors`` and ``gifts`` cover every row (missing where the row has no such part);
    ``has_donor``/``has_gift`` say which rows carry which. ``extra_flags`` are review flags found
    here that are not issues of a field standardizer (deceased, test_payment).
    """

    rows: pd.DataFrame
    has_donor: np.ndarray
    has_gift: np.ndarray
    donors: pd.DataFrame
    gifts: pd.DataFrame
    issues: pd.DataFrame
    extra_flags: pd.DataFrame


def _present(values: pd.Series) -> np.ndarray:
    out: np.ndarray = (
        (values.notna() & values.astype(STRING).str.strip().ne("")).fillna(False).to_numpy(dtype=bool)
    )
    return out


def _reindex(result: FieldResult, index: pd.Index) -> FieldResult:
    return FieldResult(result.values.reindex(index), result.issues)


def _flag_rows(mask: np.ndarray, code: str, field: str, message: str, index: pd.Index) -> pd.DataFrame:
    rows = index[mask]
    return pd.DataFrame(
        {
            "row": pd.Series(np.asarray(rows, dtype=object), dtype=object),
            "code": pd.Series([code] * len(rows), dtype=STRING),
            "field": pd.Series([field] * len(rows), dtype=STRING),
            "message": pd.Series([message] * len(rows), dtype=STRING),
        }
    )


def standardize_frame(
    frame: pd.DataFrame,
    options: ParseOptions,
    settings: StandardizeSettings,
    *,
    now: datetime,
    carries_gift: bool,
    utm_config: Any = None,
) -> Standardized:
    """Standardize one projection frame (its index must be 0..n-1).

    :param options: the source's parse options (a CSV format's date format, separators...).
    :param carries_gift: whether the projection's records are gifts (a customer record is not).
    :param utm_config: the UTM rules (``fields.utm_config.load_utm_config``); the shipped file when None.
    """
    index = frame.index
    has_donor = _present(frame["donor_source_id"])
    has_gift = np.full(len(frame), carries_gift, dtype=bool)
    issues: list[pd.DataFrame] = []

    present_text = [f for f in CLEANED_FIELDS if f in frame.columns]
    cleaned = fields.clean_text(frame[present_text], {f: settings.max_length(f) for f in present_text})
    issues.append(cleaned.issues)
    text = frame.copy()
    for column in present_text:
        text[column] = cleaned.values[column]
    _withhold(text, cleaned.issues, settings)

    donors = _donors(text, has_donor, settings, now, issues)
    gifts, extra = _gifts(
        text, has_gift, options=options, settings=settings, now=now, utm_config=utm_config, issues=issues
    )
    donors["consent_signals"] = _consent_signals(text, has_donor, gifts, settings, issues)
    issues.append(_future_versions(frame, has_gift, settings, now))
    deceased = fields.parse_flags(text["deceased"]).fillna(False).to_numpy(dtype=bool) & has_donor
    extra_flags = pd.concat(
        [
            extra,
            _flag_rows(deceased, "deceased", "deceased", "The source marks this donor as deceased.", index),
        ],
        ignore_index=True,
    )
    return Standardized(frame, has_donor, has_gift, donors, gifts, concat_issues(issues), extra_flags)


def _future_versions(
    frame: pd.DataFrame, has_gift: np.ndarray, settings: StandardizeSettings, now: datetime
) -> pd.DataFrame:
    """Report records without a gift whose version time is in the future (a gift's own time is checked).

    A Stripe customer created next year is bad data like a gift dated next year (code
    future_timestamp, field source_updated_at).
    """
    rows = ~has_gift
    if not rows.any():
        return concat_issues([])
    stamps = pd.to_datetime(frame["source_updated_at"], utc=True, errors="coerce", format="ISO8601")
    limit = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    limit += timedelta(minutes=settings.defaults.future_tolerance_minutes)
    future = rows & (stamps > limit).fillna(False).to_numpy(dtype=bool)
    return issues_where(
        pd.Series(future, index=frame.index),
        "source_updated_at",
        "future_timestamp",
        "error",
        "The record's creation or change time is in the future.",
        frame["source_updated_at"],
    )


def _withhold(text: pd.DataFrame, issues: pd.DataFrame, settings: StandardizeSettings) -> None:
    """Empty text values whose clean_text issue quarantines the record or drops the value.

    The later standardizers then do not parse them (a 6,000-character "name" is not a name), and
    the issue keeps the value for the quarantine.
    """
    if not len(issues):
        return
    decided = issues.assign(
        action=[
            settings.action_for(str(c), str(f), str(s))
            for c, f, s in zip(issues["code"], issues["field"], issues["severity"], strict=True)
        ]
    )
    withheld = decided[decided["action"].isin(["quarantine", "drop_value"])]
    for field, rows in withheld.groupby("field", observed=True)["row"]:
        text.loc[rows.to_list(), str(field)] = pd.NA


def _donors(
    text: pd.DataFrame,
    has_donor: np.ndarray,
    settings: StandardizeSettings,
    now: datetime,
    issues: list[pd.DataFrame],
) -> pd.DataFrame:
    index = text.index
    sub = text[has_donor]
    if not len(sub):
        return pd.DataFrame({c: pd.Series(pd.NA, index=index, dtype=object) for c in DONOR_COLUMNS})
    names = fields.standardize_names(
        sub["full_name"],
        sub["first_name"],
        sub["last_name"],
        middle_name=sub["middle_name"],
        name_prefix=sub["name_prefix"],
        name_suffix=sub["name_suffix"],
        organization_name=sub["organization_name"],
    )
    emails = fields.normalize_emails(
        sub["email"], allow_special_use_domains=settings.defaults.allow_special_use_domains
    )
    addresses = fields.normalize_addresses(
        sub["address_line1"],
        sub["address_line2"],
        sub["city"],
        sub["region"],
        sub["postal_code"],
        sub["country"],
        default_country=settings.defaults.default_country,
    )
    phones = fields.to_e164(sub["phone"], addresses.values["country_code"], settings.defaults.default_region)
    birth = fields.parse_timestamps(
        sub["birth_date"],
        now=now,
        field="birth_date",
        required=False,
    )
    for result in (names, emails, addresses, phones, birth):
        issues.append(result.issues)
    out = pd.concat(
        [names.values, emails.values[["email"]], addresses.values, phones.values[["phone"]]], axis=1
    )
    out["birth_date"] = (
        birth.values["birth_date"].dt.date.astype(object).where(birth.values["birth_date"].notna(), None)
    )
    return out.reindex(columns=list(DONOR_COLUMNS)).reindex(index)


def _gifts(
    text: pd.DataFrame,
    has_gift: np.ndarray,
    *,
    options: ParseOptions,
    settings: StandardizeSettings,
    now: datetime,
    utm_config: Any,
    issues: list[pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    index = text.index
    empty_flags = _flag_rows(np.zeros(len(index), dtype=bool), "", "", "", index)
    sub = text[has_gift]
    if not len(sub):
        return pd.DataFrame(
            {c: pd.Series(pd.NA, index=index, dtype=object) for c in GIFT_FRAME_COLUMNS}
        ), empty_flags
    money = fields.parse_amounts(
        sub["amount"],
        sub["amount_minor"],
        sub["currency"],
        decimal=options.decimal,
        thousands=options.thousands,
    )
    fee = fields.parse_optional_amounts(
        sub["fee_amount"],
        sub["fee_amount_minor"],
        sub["currency"],
        decimal=options.decimal,
        thousands=options.thousands,
        field="fee_amount",
    )
    refund = fields.parse_optional_amounts(
        sub["refunded_amount"],
        sub["refunded_amount_minor"],
        sub["currency"],
        decimal=options.decimal,
        thousands=options.thousands,
        field="refunded_amount",
    )
    timezone = options.timezone or settings.defaults.timezone
    tolerance = timedelta(minutes=settings.defaults.future_tolerance_minutes)
    gift_at = fields.parse_timestamps(
        sub["gift_at"], fmt=options.date_format, timezone=timezone, now=now, future_tolerance=tolerance
    )
    refunded_at = fields.parse_timestamps(
        sub["refunded_at"],
        fmt=options.date_format,
        timezone=timezone,
        now=now,
        future_tolerance=tolerance,
        field="refunded_at",
        required=False,
    )
    flag_values = fields.parse_flag_fields(sub[["disputed", "livemode", "is_anonymous"]])
    recurring_flag = fields.parse_flags(sub["is_recurring"])
    recurring = vocabulary.recurring(sub["is_recurring"], sub["recurring_interval"], recurring_flag, settings)
    status = vocabulary.map_status(sub["status"], sub["source"], settings)
    tribute = vocabulary.tributes(sub["tribute_text"], sub["tribute_type"], sub["tribute_name"], settings)
    installment, bad_installment = vocabulary.as_int(sub["installment_number"])
    utm = fields.extract_utm(
        sub[["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]],
        sub["landing_url"],
        sub["referrer_url"],
        utm_config if utm_config is not None else fields.load_utm_config(),
    )
    for result in (money, fee, refund, gift_at, refunded_at, flag_values, recurring, status, tribute, utm):
        issues.append(result.issues)
    issues.append(
        issues_where(
            pd.Series(bad_installment, index=sub.index),
            "installment_number",
            "invalid_installment",
            "warning",
            "Installment number is not a positive whole number.",
            sub["installment_number"],
        )
    )

    out = pd.DataFrame(index=sub.index)
    for column in ("amount", "currency", "currency_exponent", "amount_minor"):
        out[column] = money.values[column]
    out["fee_amount"] = fee.values["fee_amount"]
    out["gift_at"] = gift_at.values["gift_at"]
    out["refunded_at"] = refunded_at.values["refunded_at"]
    out["payment_method"] = vocabulary.payment_methods(sub["payment_method"], settings)
    out["is_anonymous"] = flag_values.values["is_anonymous"].fillna(False).astype(bool)
    out["is_recurring"] = recurring.values["is_recurring"]
    out["recurring_interval"] = recurring.values["recurring_interval"]
    out["recurring_source_id"] = sub["recurring_source_id"].where(out["is_recurring"].to_numpy())
    out["recurring_key"] = recurring_keys(sub, out["is_recurring"])
    out["installment_number"] = installment.where(out["is_recurring"].to_numpy())
    out["designation"] = sub["designation"]
    out["campaign"] = sub["campaign"]
    for column in (
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
        "landing_url",
        "referrer_url",
    ):
        out[column] = utm.values[column]
    out["utm_extra"] = utm.values["utm_extra"]
    out["tribute_type"] = tribute.values["tribute_type"]
    out["tribute_name"] = tribute.values["tribute_name"]
    out["gift_key"] = gift_keys(sub, key_by_platform_id=settings.gift_keys.key_by_platform_id)

    refunded, final_status, refund_issues = _refunds_and_status(
        out["amount_minor"],
        refund.values["refunded_amount_minor"],
        status.values["status"],
        flag_values.values["disputed"],
    )
    out["fee_amount_minor"] = fee.values["fee_amount_minor"]
    out["refunded_amount_minor"] = refunded
    out["refunded_amount"] = None  # the writer computes it exactly from the minor units
    out["status"] = final_status
    issues.append(refund_issues)

    out["is_test"], flags = _test_payments(sub, flag_values.values["livemode"], settings)
    return out.reindex(columns=list(GIFT_FRAME_COLUMNS)).reindex(index), flags


def _test_payments(
    sub: pd.DataFrame, livemode: pd.Series, settings: StandardizeSettings
) -> tuple[np.ndarray, pd.DataFrame]:
    """Return is_test per gift and the test_payment flags.

    A test-mode payment (livemode false) is a test when its source is expected to be live; a
    published test card is one only when the source does not say whether it was live.
    """
    codes, sources = pd.factorize(sub["source"])
    expects_live = np.array([settings.expects_live(str(s)) for s in sources], dtype=bool)[codes]
    test_mode = livemode.eq(False).fillna(False).to_numpy(dtype=bool) & expects_live
    last4 = sub["card_last4"].astype(STRING).str.strip()
    test_card = last4.isin(settings.test_payments.test_card_last4).fillna(False).to_numpy(
        dtype=bool
    ) & livemode.isna().to_numpy(dtype=bool)
    flags = pd.concat(
        [
            _flag_rows(
                test_mode,
                "test_payment",
                "livemode",
                "A test-mode payment from a source expected to be live (test_payments).",
                sub.index,
            ),
            _flag_rows(
                test_card & ~test_mode,
                "test_payment",
                "card_last4",
                "Paid with a processor's published test card (test_payments.test_card_last4).",
                sub.index,
            ),
        ],
        ignore_index=True,
    )
    return test_mode | test_card, flags


def _refunds_and_status(
    amount_minor: pd.Series, refunded_minor: pd.Series, status: pd.Series, disputed: pd.Series
) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """Reconcile refund amounts (minor units) with the status, vectorized.

    A 'succeeded' gift with a refund becomes partially_refunded or refunded; a 'refunded' gift
    without a refunded amount is taken as fully refunded; a disputed succeeded gift is 'disputed'.
    A refund above the amount is ``refund_exceeds_amount``. Returns refunded minor units (0 when
    none), the status, and the issues.
    """
    has_amount = amount_minor.notna().to_numpy(dtype=bool)
    amount = amount_minor.to_numpy(dtype=np.int64, na_value=0)
    refund = refunded_minor.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    states = status.astype(object).where(status.notna(), None).to_numpy(dtype=object)
    refunded_status = states == "refunded"
    refund = np.where(refunded_status & has_amount & (refund == 0), amount, refund)
    exceeds = has_amount & (refund > amount)
    refunded_now = (states == "succeeded") & has_amount & ~exceeds & (refund > 0)
    states = np.where(refunded_now, np.where(refund == amount, "refunded", "partially_refunded"), states)
    states = np.where(
        (states == "succeeded") & disputed.fillna(False).to_numpy(dtype=bool), "disputed", states
    )
    issues = issues_where(
        pd.Series(exceeds, index=amount_minor.index),
        "refunded_amount",
        "refund_exceeds_amount",
        "error",
        "Refunded amount is larger than the gift's amount.",
        refunded_minor.astype(STRING),
    )
    return (
        pd.Series(refund, index=amount_minor.index, dtype="Int64"),
        pd.Series(states, index=amount_minor.index).astype(STRING),
        issues,
    )


def _consent_signals(
    text: pd.DataFrame,
    has_donor: np.ndarray,
    gifts: pd.DataFrame,
    settings: StandardizeSettings,
    issues: list[pd.DataFrame],
) -> pd.Series:
    """Return the consent_signals JSON array of each row (``'[]'`` when none).

    Signals come from contact-preference text and from the flags ``consent_flags`` names; each
    gets ``occurred_at`` (the gift's time, else the record's version time) and its evidence.
    Built per unique (text, flags) as a template, then the time is filled in vectorized.
    """
    index = text.index
    parsed = fields.parse_consent_field(text["consent_text"])
    issues.append(parsed.issues)
    flag_fields = [f for f in settings.consent_flags if f in text.columns]
    flags: dict[str, np.ndarray] = {}
    if flag_fields:
        flag_values = fields.parse_flag_fields(text[flag_fields])
        issues.append(flag_values.issues)
        flags = {
            name: flag_values.values[name].eq(True).fillna(False).to_numpy(dtype=bool) for name in flag_fields
        }
    signals = parsed.values["consent_signals"].to_numpy(dtype=object)
    key = text["consent_text"].fillna("").astype(STRING)
    for name in flag_fields:
        key = key + np.where(flags[name], "|1", "|0")
    key = key.where(has_donor, "")
    codes, uniques = pd.factorize(key, use_na_sentinel=False)
    first_row = np.full(len(uniques), -1, dtype=np.int64)
    first_row[codes[::-1]] = np.arange(len(codes))[::-1]
    templates: list[str] = []
    for code, unique in enumerate(uniques.tolist()):
        row = int(first_row[code])
        if not unique or row < 0:
            templates.append("[]")
            continue
        items: list[dict[str, Any]] = [
            {**s, "occurred_at": _OCCURRED, "evidence": {"field": "consent_text"}} for s in signals[row] or ()
        ]
        for name in flag_fields:
            if flags[name][row]:
                flag = settings.consent_flags[name]
                item = {"channel": flag.channel, "purpose": flag.purpose, "status": flag.status}
                items.append({**item, "occurred_at": _OCCURRED, "evidence": {"field": name}})
        templates.append(json.dumps(items, separators=(",", ":")) if items else "[]")
    per_row = np.asarray(templates, dtype=object)[codes]
    needs = np.array([_OCCURRED in t for t in templates], dtype=bool)[codes]
    if not needs.any():
        return pd.Series(per_row, index=index, dtype=object)
    rows = np.flatnonzero(needs)
    gift_at = pd.to_datetime(gifts["gift_at"].iloc[rows], utc=True, errors="coerce")
    version = pd.to_datetime(
        text["source_updated_at"].iloc[rows], utc=True, errors="coerce", format="ISO8601"
    )
    when = gift_at.where(gift_at.notna(), version).to_numpy(dtype="datetime64[s]")
    stamps = np.char.add(np.datetime_as_string(when, unit="s"), "Z")
    stamps = np.where(np.isnat(when), "", stamps)
    out = per_row.copy()
    out[rows] = np.strings.replace(
        per_row[rows].astype(np.dtypes.StringDType()), _OCCURRED, stamps.astype(np.dtypes.StringDType())
    ).astype(object)
    return pd.Series(out, index=index, dtype=object)


def drop_columns_of(field: str) -> tuple[str, ...]:
    """Return the staging columns emptied when a value of intake ``field`` is dropped."""
    return _DROPS.get(field, (field,))


_NAME_PARTS = (
    "name_prefix",
    "first_name",
    "middle_name",
    "last_name",
    "name_suffix",
    "nickname",
    "last_name_key",
)
_DROPS: Mapping[str, tuple[str, ...]] = {
    "full_name": _NAME_PARTS,
    "first_name": ("first_name",),
    "last_name": ("last_name", "last_name_key"),
    "country": ("country_code",),
    "amount": ("amount", "amount_minor"),
    "amount_minor": ("amount", "amount_minor"),
    "fee_amount": ("fee_amount", "fee_amount_minor"),
    "fee_amount_minor": ("fee_amount", "fee_amount_minor"),
    "refunded_amount": ("refunded_amount", "refunded_amount_minor"),
    "refunded_amount_minor": ("refunded_amount", "refunded_amount_minor"),
    "tribute_text": ("tribute_type", "tribute_name"),
    "consent_text": ("consent_signals",),
}
