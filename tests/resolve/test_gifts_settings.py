"""giving.yaml: the shipped rules load, and mistakes are reported with file, line and field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.resolve.fiscal import default_giving_path, load_giving_settings


def test_the_shipped_rules_load() -> None:
    rules = load_giving_settings()
    assert rules.reporting_currency == "USD"
    assert rules.fiscal_year_start_month == 7
    assert rules.processors == ["stripe"]
    assert rules.fiscal_year(date(2026, 1, 15)) == (date(2025, 7, 1), date(2026, 7, 1))
    # 02:00 UTC on Jan 15 is still Jan 14 in New York
    assert rules.today(datetime(2026, 1, 15, 2, tzinfo=UTC)) == date(2026, 1, 14)
    with pytest.raises(ValueError, match="timezone-aware"):
        rules.today(datetime(2026, 1, 15, 2))


#: (text in the shipped file, its replacement, field named, text on the line named)
BROKEN = [
    pytest.param(
        "fiscal_year_start_month: 7",
        "fiscal_year_start_month: 13",
        "fiscal_year_start_month",
        "fiscal_year_start_month:",
        id="month",
    ),
    pytest.param(
        "time_zone: America/New_York", "time_zone: Mars/Olympus", "time_zone", "time_zone:", id="zone"
    ),
    pytest.param(
        "reporting_currency: USD",
        "reporting_currency: usd",
        "reporting_currency",
        "reporting_currency:",
        id="currency",
    ),
    pytest.param("    year: 45\n", "", "recurring.grace_days", "grace_days:", id="grace-missing-a-unit"),
    pytest.param(
        "recency_days: [90, 180, 365, 730]",
        "recency_days: [90, 80, 365, 730]",
        "rfm.recency_days",
        "recency_days:",
        id="thresholds-not-ascending",
    ),
    pytest.param(
        "{name: loyal, min_recency: 3, min_frequency: 3}",
        "{name: loyal, min_recency: 4, max_recency: 2}",
        "rfm.segments.1",
        "name: loyal",
        id="empty-segment",
    ),
    pytest.param(
        "{name: lapsed, max_recency: 1}",
        "{name: champion, max_recency: 1}",
        "rfm.segments",
        "segments:",
        id="segment-names-repeat",
    ),
    pytest.param(
        "counted_statuses: [",
        "counted_statuses: [paid, ",
        "counted_statuses.0",
        "counted_statuses:",
        id="unknown-status",
    ),
    pytest.param(
        "processors: [stripe]", "processors: [Stripe Inc]", "processors", "processors:", id="processor-name"
    ),
    pytest.param(
        "default_segment: occasional",
        "default_segmnt: occasional",
        "rfm.default_segmnt",
        "default_segmnt:",
        id="typo",
    ),
]


@pytest.mark.parametrize(("old", "new", "field", "marker"), BROKEN)
def test_a_mistake_names_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, marker: str
) -> None:
    text = default_giving_path().read_text(encoding="utf-8")
    assert old in text
    broken = text.replace(old, new, 1)
    path = tmp_path / "giving.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_giving_settings(path)
    message = str(caught.value)
    line = next(
        n
        for n, content in enumerate(broken.splitlines(), 1)
        if marker in content and not content.lstrip().startswith("#")
    )
    assert f"{path}: line {line}, {field}:" in message
