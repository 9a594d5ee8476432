"""Step 3b: route each record — staged with its review flags, or quarantined with every reason.

Order: field issues get their actions; drop_value empties the value (and flags it); the record
rules then check what is left; a record with any issue whose action is quarantine goes to the
quarantine with all of them, the others are staged with a flag for each flag/drop_value issue.
"Release as is" (an operator's decision) turns field-level quarantines into dropped values; a
record that still breaks a record rule cannot be released as it is and must be fixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from donor_sync.errors import DonorSyncError
from donor_sync.standardize.columns import DONOR_COLUMNS
from donor_sync.standardize.fields.result import STRING
from donor_sync.standardize.intake import DONOR_FIELDS
from donor_sync.standardize.rules import record_issues, with_actions
from donor_sync.standardize.settings import StandardizeSettings
from donor_sync.standardize.transform import Standardized, drop_columns_of

_DONOR_SIDE = frozenset(DONOR_FIELDS) | frozenset(DONOR_COLUMNS) | {"name_or_email", "consent_signals"}
_BOOL_COLUMNS = frozenset({"is_organization", "address_validated", "is_test", "is_anonymous", "is_recurring"})


class CannotReleaseError(DonorSyncError):
    """A quarantined record breaks a record rule, so it cannot be staged as it is (fix it instead)."""


@dataclass(frozen=True)
class Routed:
    """What happens to each row of a projection frame.

    ``quarantined`` is a bool per row; ``reasons`` the JSON reasons of quarantined rows;
    ``donor_flags``/``gift_flags`` a list of review flags per row (only non-empty rows present).
    """

    std: Standardized
    donors: pd.DataFrame
    gifts: pd.DataFrame
    quarantined: np.ndarray
    reasons: pd.Series
    donor_flags: dict[int, list[dict[str, str]]]
    gift_flags: dict[int, list[dict[str, str]]]
    issues: pd.DataFrame

    def add_flags(self, flags: pd.DataFrame) -> None:
        """Attach review flags (``row, code, field, message``) to the staged part each belongs to."""
        _attach(self, flags)


def _empty(frame: pd.DataFrame, rows: np.ndarray, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column not in frame.columns or column in _BOOL_COLUMNS:
            continue
        if column == "consent_signals":
            frame.loc[rows, column] = "[]"
            continue
        series = frame[column]
        if series.dtype == object:
            frame.loc[rows, column] = None
        else:
            frame.loc[rows, column] = pd.NA


def route(
    std: Standardized,
    settings: StandardizeSettings,
    *,
    release_rows: np.ndarray | None = None,
    strict_release: bool = False,
) -> Routed:
    """Apply the rules to one standardized frame and decide each record's fate.

    :param release_rows: per row, whether an operator released it as it is: its field-level
        quarantines become dropped values.
    :param strict_release: raise :class:`CannotReleaseError` when a released row still breaks a
        record rule (an operator's release); otherwise it stays quarantined (a re-run).
    """
    index = std.rows.index
    donors = std.donors.copy()
    gifts = std.gifts.copy()
    issues = with_actions(std.issues, settings)
    positions = (
        index.get_indexer(pd.Index(issues["row"].to_list())) if len(issues) else np.array([], dtype=int)
    )
    issues["position"] = positions
    released = release_rows if release_rows is not None else np.zeros(len(index), dtype=bool)
    if released.any() and len(issues):
        turn = (issues["action"] == "quarantine").to_numpy(dtype=bool) & released[positions]
        issues.loc[turn, "action"] = "drop_value"
    drops = issues[issues["action"] == "drop_value"]
    for field, group in drops.groupby("field", observed=True):
        rows = index[group["position"].to_numpy()]
        targets = drop_columns_of(str(field))
        _empty(donors, rows, targets)
        _empty(gifts, rows, targets)
    record = with_actions(record_issues(std, donors, gifts, issues, settings), settings)
    if len(record):
        record["position"] = index.get_indexer(pd.Index(record["row"].to_list()))
    every = pd.concat([issues, record], ignore_index=True) if len(record) else issues
    blocking = every[every["action"] == "quarantine"]
    if strict_release and released[blocking["position"].to_numpy(dtype=int)].any():
        codes = ", ".join(sorted(set(blocking["code"].astype(str))))
        raise CannotReleaseError(f"the record breaks record rules ({codes}); fix it instead of releasing it")
    quarantined = np.zeros(len(index), dtype=bool)
    quarantined[blocking["position"].to_numpy(dtype=int)] = True
    reasons = _reasons(blocking, index)
    routed = Routed(std, donors, gifts, quarantined, reasons, {}, {}, every)
    shown = every[every["action"].isin(["flag", "drop_value"])]
    if len(shown):
        _attach(routed, shown[["row", "code", "field", "message"]])
    if len(std.extra_flags):
        _attach(routed, std.extra_flags)
    return routed


def _reasons(blocking: pd.DataFrame, index: pd.Index) -> pd.Series:
    """Return, per quarantined row position, the JSON array of every reason."""
    if not len(blocking):
        return pd.Series({}, dtype=object)
    ordered = blocking.sort_values("position", kind="stable")
    values = ordered["value"].to_numpy(dtype=object)
    items = [
        json.dumps(
            {
                "rule": str(rule),
                "field": str(field),
                "code": str(code),
                "message": str(message),
                "value": None if value is None or value is pd.NA else str(value),
            },
            ensure_ascii=False,
        )
        for rule, field, code, message, value in zip(
            ordered["rule"].tolist(),
            ordered["field"].tolist(),
            ordered["code"].tolist(),
            ordered["message"].tolist(),
            values.tolist(),
            strict=True,
        )
    ]
    positions = ordered["position"].to_numpy(dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
    ends = np.r_[starts[1:], len(positions)]
    return pd.Series(
        {
            int(positions[a]): "[" + ",".join(items[a:b]) + "]"
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
        },
        dtype=object,
    )


def _attach(routed: Routed, flags: pd.DataFrame) -> None:
    index = routed.std.rows.index
    positions = index.get_indexer(pd.Index(flags["row"].to_list()))
    has_donor, has_gift = routed.std.has_donor, routed.std.has_gift
    for position, code, field, message in zip(
        positions.tolist(),
        flags["code"].tolist(),
        flags["field"].tolist(),
        flags["message"].tolist(),
        strict=True,
    ):
        item: dict[str, Any] = {"code": str(code), "field": str(field), "message": str(message)}
        donor_side = str(field) in _DONOR_SIDE
        if (donor_side and has_donor[position]) or not has_gift[position]:
            target = routed.donor_flags
        else:
            target = routed.gift_flags
        bucket = target.setdefault(position, [])
        if item not in bucket:
            bucket.append(item)


def flags_json(flags: dict[int, list[dict[str, str]]], positions: np.ndarray) -> pd.Series:
    """Return the review_flags JSON array for each of ``positions`` (``'[]'`` when none)."""
    out = np.full(len(positions), "[]", dtype=object)
    for i, position in enumerate(positions.tolist()):
        items = flags.get(position)
        if items:
            out[i] = json.dumps(items, ensure_ascii=False)
    return pd.Series(out, dtype=object)


def staged_parts(routed: Routed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the staged donor rows and gift rows (projection ids plus typed columns and flags)."""
    rows = routed.std.rows
    staged = ~routed.quarantined
    donor_pos = np.flatnonzero(staged & routed.std.has_donor)
    gift_pos = np.flatnonzero(staged & routed.std.has_gift)
    donors = routed.donors.iloc[donor_pos].reset_index(drop=True)
    donors.insert(0, "raw_record_id", rows["raw_record_id"].to_numpy()[donor_pos])
    donors.insert(1, "batch_id", rows["batch_id"].to_numpy()[donor_pos])
    donors.insert(2, "source", rows["source"].to_numpy()[donor_pos])
    donors.insert(3, "source_id", rows["donor_source_id"].astype(STRING).str.strip().to_numpy()[donor_pos])
    donors.insert(4, "source_updated_at", rows["source_updated_at"].to_numpy()[donor_pos])
    donors["review_flags"] = flags_json(routed.donor_flags, donor_pos).to_numpy()
    gifts = routed.gifts.iloc[gift_pos].reset_index(drop=True)
    gifts.insert(0, "raw_record_id", rows["raw_record_id"].to_numpy()[gift_pos])
    gifts.insert(1, "batch_id", rows["batch_id"].to_numpy()[gift_pos])
    gifts.insert(2, "source", rows["source"].to_numpy()[gift_pos])
    gifts.insert(3, "entity", rows["object_entity"].to_numpy()[gift_pos])
    gifts.insert(4, "source_id", rows["object_id"].to_numpy()[gift_pos])
    gifts.insert(
        5, "source_donor_id", rows["source_donor_id"].astype(STRING).str.strip().to_numpy()[gift_pos]
    )
    gifts.insert(6, "source_updated_at", rows["source_updated_at"].to_numpy()[gift_pos])
    gifts["review_flags"] = flags_json(routed.gift_flags, gift_pos).to_numpy()
    gifts["gift_position"] = gift_pos
    donors["donor_position"] = donor_pos
    return donors, gifts
