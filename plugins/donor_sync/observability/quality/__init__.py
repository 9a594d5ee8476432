"""The data quality scorecard (issue 9): completeness, validity, duplicate rate, consent coverage.

Per run, over the records it touched; configured in ``include/mappings/quality.yaml`` (reference:
docs/data-quality.md). :func:`compute_scorecard` computes one, :func:`record_scorecard` records it
as stage ``quality`` of ``sync.run_metrics`` (the health collection records it with the other
figures), :func:`scorecard_trend` reads the latest runs' scorecards back.
"""

from __future__ import annotations

from donor_sync.observability.quality.scorecard import (
    Scorecard,
    compute_scorecard,
    record_scorecard,
    weighted_score,
)
from donor_sync.observability.quality.settings import QualitySettings, load_quality_settings
from donor_sync.observability.quality.trend import ScorecardPoint, scorecard_trend

__all__ = [
    "QualitySettings",
    "Scorecard",
    "ScorecardPoint",
    "compute_scorecard",
    "load_quality_settings",
    "record_scorecard",
    "scorecard_trend",
    "weighted_score",
]
