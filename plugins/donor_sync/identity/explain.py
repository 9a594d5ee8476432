"""Human-readable explanations of scored pairs: each field's level and contribution, summing to the score.

Values are left out unless asked for (``show_values``): explanations go to logs and the review
queue's audit trail, which must not carry donors' PII; the review screen asks for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from donor_sync.identity.comparisons import level_label

if TYPE_CHECKING:
    from donor_sync.identity.engine import DedupeResult


@dataclass(frozen=True)
class Contribution:
    """One line of an explanation."""

    comparison: str
    level: str
    weight: float
    left_value: str | None = None
    right_value: str | None = None


def contributions(result: DedupeResult, pair: int, *, show_values: bool = False) -> list[Contribution]:
    """Return the prior and each comparison's contribution to pair ``pair`` (a row of ``result.pairs``).

    The weights sum to the pair's match weight.
    """
    row = result.pairs.iloc[pair]
    out = [Contribution("prior", "chance two records are one donor", float(result.model.prior_weight))]
    frame = result.prepared.frame
    for comparison in result.model.comparisons:
        level = comparison.levels[int(row[f"{comparison.name}_level"])]
        left_value = right_value = None
        if show_values:
            left_value = _text(frame[comparison.column].iat[int(row["left_row"])])
            right_value = _text(frame[comparison.column].iat[int(row["right_row"])])
        out.append(
            Contribution(
                comparison.name,
                level_label(level),
                float(row[f"{comparison.name}_weight"]),
                left_value,
                right_value,
            )
        )
    return out


def _text(value: Any) -> str | None:
    return None if value is None or value is _NA else str(value)


try:  # pandas' missing-value singleton, compared by identity
    from pandas import NA as _NA
except ImportError:  # pragma: no cover
    _NA = None


def explain_pair(result: DedupeResult, pair: int, *, show_values: bool = False) -> str:
    """Return a multi-line explanation of pair ``pair``: band, score and every contribution."""
    row = result.pairs.iloc[pair]
    lines = [
        f"{row['left_id']} ~ {row['right_id']}: band {row['band']}, match weight "
        f"{row['match_weight']:+.2f} (probability {row['match_probability']:.6f})"
    ]
    if row.get("rule"):
        lines.append(f"  deterministic rule: {row['rule']}")
    if row["household"]:
        lines.append("  household link: same surname and address, different first names (never merged)")
    for item in contributions(result, pair, show_values=show_values):
        values = ""
        if show_values and item.comparison != "prior":
            values = f"  [{item.left_value!s} | {item.right_value!s}]"
        lines.append(f"  {item.comparison:<16} {item.level:<34} {item.weight:+8.2f}{values}")
    lines.append(f"  {'total':<16} {'':<34} {row['match_weight']:+8.2f}")
    return "\n".join(lines)
