"""Step 3a: the validation rules of standardize.yaml applied to issues and records.

Each issue gets an action from ``issue_actions`` (or ``field_actions``, or by severity) and the
name of the YAML rule that decided it. Record-level rules (``record_rules``) then check what a
staged row needs, after dropped values are gone, and add their own issues.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd

from donor_sync.standardize.fields.result import STRING, concat_issues, issues_where
from donor_sync.standardize.settings import StandardizeSettings
from donor_sync.standardize.transform import Standardized


def with_actions(issues: pd.DataFrame, settings: StandardizeSettings) -> pd.DataFrame:
    """Return ``issues`` with the columns ``action`` and ``rule`` (the YAML path that decided it)."""
    out = issues.copy()
    if not len(out):
        out["action"] = pd.Series([], dtype=STRING)
        if "rule" not in out:
            out["rule"] = pd.Series([], dtype=STRING)
        return out
    keys = out["code"].astype(str) + "\x1f" + out["field"].astype(str) + "\x1f" + out["severity"].astype(str)
    codes, uniques = pd.factorize(keys)
    actions, rules = [], []
    for unique in uniques:
        code, field, severity = str(unique).split("\x1f")
        actions.append(settings.action_for(code, field, severity))
        if code in settings.field_actions.get(field, {}):
            rules.append(f"field_actions.{field}.{code}")
        elif code in settings.issue_actions:
            rules.append(f"issue_actions.{code}")
        else:
            rules.append(f"unknown_issue_action.{severity}")
    out["action"] = pd.array(np.asarray(actions, dtype=object)[codes], dtype=STRING)
    decided = pd.array(np.asarray(rules, dtype=object)[codes], dtype=STRING)
    if "rule" in out.columns:
        out["rule"] = out["rule"].astype(STRING).fillna(pd.Series(decided, index=out.index))
    else:
        out["rule"] = decided
    return out


def _missing(values: pd.Series) -> np.ndarray:
    out: np.ndarray = values.isna().to_numpy(dtype=bool)
    return out


def _issue(
    mask: np.ndarray,
    index: pd.Index,
    *,
    field: str,
    code: str,
    message: str,
    rule: str,
    values: pd.Series | None = None,
) -> pd.DataFrame:
    found = issues_where(pd.Series(mask, index=index), field, code, "error", message, values)
    found["rule"] = pd.Series([rule] * len(found), dtype=STRING)
    return found


def record_issues(
    std: Standardized,
    donors: pd.DataFrame,
    gifts: pd.DataFrame,
    issues: pd.DataFrame,
    settings: StandardizeSettings,
) -> pd.DataFrame:
    """Check the record-level rules on the (already dropped-into) typed rows; return their issues.

    A 'missing' rule is not reported on a row whose field already has an issue that quarantines
    it: that issue (malformed_amount, unknown_currency...) is the reason. A dropped value is missing.
    """
    index = std.rows.index
    flagged: dict[str, np.ndarray] = {}
    blocking = issues[issues["action"] == "quarantine"] if "action" in issues.columns else issues
    if len(blocking):
        for field, rows in blocking.groupby("field", observed=True)["row"]:
            mask = np.zeros(len(index), dtype=bool)
            mask[index.get_indexer(pd.Index(rows.to_list()))] = True
            flagged[str(field)] = mask

    def unexplained(*fields: str) -> np.ndarray:
        mask = np.ones(len(index), dtype=bool)
        for f in fields:
            if f in flagged:
                mask &= ~flagged[f]
        return mask

    rules = settings.record_rules
    found: list[pd.DataFrame] = []
    g = std.has_gift
    if g.any():
        gift_rules = rules.gift
        if gift_rules.require_source_id:
            missing = g & ~_present_text(std.rows["gift_source_id"]) & unexplained("gift_source_id")
            found.append(
                _issue(
                    missing,
                    index,
                    field="gift_source_id",
                    code="missing_gift_source_id",
                    message="A gift needs its source id.",
                    rule="record_rules.gift.require_source_id",
                )
            )
        minor = gifts["amount_minor"].astype("Int64")
        no_amount = g & _missing(minor)
        found.append(
            _issue(
                no_amount & unexplained("amount", "amount_minor", "currency"),
                index,
                field="amount",
                code="missing_amount",
                message="A gift needs an amount.",
                rule="record_rules.gift.min_amount_exclusive",
            )
        )
        has = g & ~no_amount
        values = minor.to_numpy(dtype=np.int64, na_value=0)
        exponent = gifts["currency_exponent"].astype("Int64").to_numpy(dtype=np.int64, na_value=0)
        currency = gifts["currency"].astype(object).to_numpy(dtype=object)
        floor = gift_rules.min_amount_exclusive
        floor_by_exponent = np.array([int(floor * Decimal(10) ** e) for e in range(5)], dtype=np.int64)
        floor_minor = floor_by_exponent[np.clip(exponent, 0, 4)]
        maxima = gift_rules.max_amount
        codes, uniques = pd.factorize(pd.Series(currency).astype(str) + ":" + pd.Series(exponent).astype(str))
        limits = np.array(
            [
                int(maxima.get(u.split(":")[0], maxima["default"]) * Decimal(10) ** int(u.split(":")[1]))
                for u in uniques
            ],
            dtype=np.int64,
        )
        ceiling = limits[codes] if len(limits) else values
        low = has & (values <= floor_minor)
        high = has & (values > ceiling)
        text = minor.astype(STRING)
        found.append(
            _issue(
                low,
                index,
                field="amount",
                code="non_positive_amount",
                message=f"A gift's amount must be above {floor}.",
                rule="record_rules.gift.min_amount_exclusive",
                values=text,
            )
        )
        found.append(
            _issue(
                high,
                index,
                field="amount",
                code="amount_above_max",
                message="The amount is above the largest plausible gift for its currency.",
                rule="record_rules.gift.max_amount",
                values=text,
            )
        )
        if gift_rules.require_currency:
            found.append(
                _issue(
                    g & _missing(gifts["currency"]) & unexplained("currency"),
                    index,
                    field="currency",
                    code="missing_currency",
                    message="A gift needs its currency.",
                    rule="record_rules.gift.require_currency",
                )
            )
        if gift_rules.require_gift_at:
            found.append(
                _issue(
                    g & _missing(gifts["gift_at"]) & unexplained("gift_at"),
                    index,
                    field="gift_at",
                    code="missing_gift_at",
                    message="A gift needs the time it was made.",
                    rule="record_rules.gift.require_gift_at",
                )
            )
    d = std.has_donor
    if d.any() and rules.donor.require_any_of:
        anything = np.zeros(len(index), dtype=bool)
        for column in rules.donor.require_any_of:
            anything |= ~_missing(donors[column])
        explained = ~unexplained("full_name", "first_name", "last_name", "organization_name", "email")
        found.append(
            _issue(
                d & ~anything & ~explained,
                index,
                field="name_or_email",
                code="missing_donor_identity",
                message="A donor needs a name or an email (record_rules.donor.require_any_of).",
                rule="record_rules.donor.require_any_of",
            )
        )
    return concat_issues(found)


def _present_text(values: pd.Series) -> np.ndarray:
    out: np.ndarray = (
        (values.notna() & values.astype(STRING).str.strip().ne("")).fillna(False).to_numpy(dtype=bool)
    )
    return out
