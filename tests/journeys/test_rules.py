"""Journey rules: the shipped file loads, errors name the file, line and field; the docs page is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.errors import ConfigError
from donor_sync.journeys.rules import load_rules
from donor_sync.journeys.rules_doc import doc_path, render

HEAD = """version: 1
defaults:
  consent: {purpose: fundraising, channel: email, status_in: [opt_in]}
  suppressions: [deceased]
journeys:
"""


def _load(tmp_path: Path, journeys: str) -> None:
    path = tmp_path / "journeys.yaml"
    path.write_text(HEAD + journeys, encoding="utf-8")
    load_rules(path)


def test_shipped_rules_load_and_cover_every_entry_point() -> None:
    rules = load_rules()
    types = {j.entry.type for j in rules.journeys}
    assert types == {
        "first_gift", "major_gift", "recurring_started", "recurring_failed", "recurring_lapsed",
        "designation", "campaign", "tribute", "in_memoriam",
    }  # fmt: skip


def test_docs_page_is_current() -> None:
    assert doc_path().read_text(encoding="utf-8") == render(), "run `donor-sync journeys docs --write`"


@pytest.mark.parametrize(
    ("journeys", "line", "field", "message"),
    [
        (
            "  - id: a\n    entry: {type: major_gift}\n    destination: {braze: {canvas_id: c}}\n",
            7,
            "journeys.0.entry.major_gift.threshold",
            "Field required",
        ),
        (
            "  - id: a\n    entry: {type: birthday}\n    destination: {braze: {canvas_id: c}}\n",
            7,
            "journeys.0.entry",
            "does not match any of the expected tags",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n"
            "    destination: {mailchimp: {journey_id: 1, step_id: 2}}\n"
            "    trigger_properties: {amount: amount}\n",
            6,
            "journeys.0",
            "Mailchimp journey triggers carry no properties",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n    destination: {braze: {canvas_id: c}}\n"
            "    trigger_properties: {name: tribute_name}\n",
            9,
            "journeys.0.trigger_properties",
            "not trigger property fields: tribute_name",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n"
            "    destination: {braze: {canvas_id: c, campaign_id: d}}\n",
            8,
            "journeys.0.destination.braze",
            "exactly one of canvas_id and campaign_id",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n    destination: {braze: {canvas_id: c}}\n"
            "    experiment: {id: x, holdout: 1.5, variants: [{name: a, weight: 1}]}\n",
            9,
            "journeys.0.experiment.holdout",
            "less than 1",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n    destination: {braze: {canvas_id: c}}\n"
            "    quiet_hours: {start: '09:00', end: '09:00'}\n",
            9,
            "journeys.0.quiet_hours",
            "empty window",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n    destination: {braze: {canvas_id: c}}\n"
            "  - id: a\n    entry: {type: tribute}\n    destination: {braze: {canvas_id: c}}\n",
            5,
            "journeys",
            "journey id 'a' is used twice",
        ),
        (
            "  - id: a\n    entry: {type: first_gift}\n    conditions: {amount_min: 50, amount_max: 10}\n"
            "    destination: {braze: {canvas_id: c}}\n",
            8,
            "journeys.0.conditions",
            "amount_min is above amount_max",
        ),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, journeys: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, journeys)
    text = str(caught.value)
    assert str(tmp_path / "journeys.yaml") in text
    assert f"line {line}, {field}" in text, text
    assert message in text
