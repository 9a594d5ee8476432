"""docs/events.md carries the catalogue generated from the schema files, current."""

from __future__ import annotations

import click
import pytest

from donor_sync.events.catalogue import CATALOGUE
from donor_sync.events.docs import BEGIN, END, default_page, render_catalogue
from donor_sync.events.settings import load_event_settings
from tests.conftest import REPO_ROOT
from tests.docs.markdown import commands_in, fill_placeholders
from tests.docs.test_commands import parse_argv


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


def test_every_command_the_page_quotes_parses_with_the_real_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)
    name = load_event_settings().subscribers[0].name  # <name>: a subscriber events.yaml configures
    commands = commands_in(default_page())
    assert len(commands) >= 2
    for command in commands:
        argv = fill_placeholders(tuple(arg.replace("<name>", name) for arg in command.argv))
        try:
            parse_argv(argv)
        except click.ClickException as exc:
            pytest.fail(f"{command.where()}: `{command.text}` does not parse: {exc.format_message()}")
