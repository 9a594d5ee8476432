"""Resolve: staged records to golden donors and gifts in core (issue 5).

Donor side (:mod:`~donor_sync.resolve.donors`): deterministic and probabilistic matching against
the golden records' stored blocking keys, survivorship, review queue, households and unmerge.
"""

from __future__ import annotations

from donor_sync.resolve.donors import ResolveCounts, ResolveRules, load_resolve_rules, resolve_donors
from donor_sync.resolve.review import (
    LabelledPairs,
    Review,
    ReviewDetail,
    decide,
    get_review,
    labelled_pairs,
    list_reviews,
    merge_donors,
)
from donor_sync.resolve.survivorship import SurvivorshipRules, load_survivorship, recompute_golden
from donor_sync.resolve.unmerge import UnmergeResult, unmerge

__all__ = [
    "LabelledPairs",
    "ResolveCounts",
    "ResolveRules",
    "Review",
    "ReviewDetail",
    "SurvivorshipRules",
    "UnmergeResult",
    "decide",
    "get_review",
    "labelled_pairs",
    "list_reviews",
    "load_resolve_rules",
    "load_survivorship",
    "merge_donors",
    "recompute_golden",
    "resolve_donors",
    "unmerge",
]

# Gift side and donor aggregates (donor_sync.resolve.gifts / aggregates / fiscal).
from donor_sync.resolve.aggregates import AggregateCounts, refresh_aggregates
from donor_sync.resolve.fiscal import GivingSettings, load_giving_settings
from donor_sync.resolve.gifts import GiftResolveCounts, refresh_plans, resolve_gifts

__all__ += [
    "AggregateCounts",
    "GiftResolveCounts",
    "GivingSettings",
    "load_giving_settings",
    "refresh_aggregates",
    "refresh_plans",
    "resolve_gifts",
]
