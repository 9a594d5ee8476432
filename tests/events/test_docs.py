"""docs/events.md carries the catalogue generated from the schema files, current."""

from __future__ import annotations

from donor_sync.events.catalogue import CATALOGUE
from donor_sync.events.docs import BEGIN, END, default_page, render_catalogue


def test_the_catalogue_in_docs_is_current() -> None:
    text = default_page().read_text(encoding="utf-8")
    section = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert section == render_catalogue(), "run: python -m donor_sync.events.docs"
    for event_type in CATALOGUE:
        assert f"### `{event_type}` v1" in section


def test_the_policy_is_stated() -> None:
    text = default_page().read_text(encoding="utf-8")
    for phrase in (
        "additive only",
        "side by side",
        "deprecation window",
        "Deduplicate by `id`",
        "not guaranteed",
    ):
        assert phrase in text
