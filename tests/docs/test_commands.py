"""Every ``donor-sync`` command the runbooks and docs/architecture.md quote parses with the real CLI.

Each command is parsed by the ``donor-sync`` click group exactly as a shell would hand it over,
subcommand by subcommand, without running it: unknown commands, misspelt or missing options,
wrong types (an id that is not a number), bad choices and missing arguments all fail. Paths are
taken from the repo root, where the runbooks' example paths live.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from donor_sync.cli import main
from tests.conftest import REPO_ROOT
from tests.docs.markdown import RUNBOOKS, RUNBOOKS_DIR, Command, commands_in, doc_paths, fill_placeholders


def parse_argv(argv: list[str]) -> click.Context:
    """Parse ``donor-sync ARGV`` down to its leaf command without invoking anything.

    :raises click.ClickException: (UsageError, BadParameter...) for anything the CLI would refuse
        before running.
    """
    ctx = main.make_context("donor-sync", list(argv))
    command: click.Command = main
    while isinstance(command, click.Group):
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            raise click.UsageError("no subcommand given", ctx=ctx)
        name, sub, args = command.resolve_command(ctx, rest)
        assert name is not None
        assert sub is not None
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return ctx


def _all_commands() -> list[Command]:
    return [command for path in doc_paths() for command in commands_in(path)]


COMMANDS = _all_commands()


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where()} {' '.join(c.argv)}" for c in COMMANDS])
def test_quoted_command_parses(command: Command) -> None:
    try:
        argv = fill_placeholders(command.argv)
    except KeyError as unknown:
        pytest.fail(f"{command.where()}: unknown placeholder {unknown} in `{command.text}`")
    try:
        parse_argv(argv)
    except click.ClickException as exc:
        pytest.fail(f"{command.where()}: `{command.text}` does not parse: {exc.format_message()}")


def test_every_runbook_and_the_architecture_quote_commands() -> None:
    quoting = {c.path.name for c in COMMANDS}
    assert {*RUNBOOKS, "README.md", "architecture.md"} <= quoting
    assert len(COMMANDS) >= 60


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["dlq", "list", "-d", "hubspot"], id="option-dlq-list-does-not-have"),
        pytest.param(["outbox", "push"], id="missing-required-destination"),
        pytest.param(["dlq", "show", "forty-two"], id="id-not-a-number"),
        pytest.param(["keys", "rotate", "everything"], id="bad-choice"),
        pytest.param(["no-such-command"], id="unknown-command"),
        pytest.param(["dlq"], id="group-without-subcommand"),
        pytest.param(
            ["csv", "validate", "include/mappings/csv_formats/no_such_format.yaml"], id="missing-file"
        ),
    ],
)
def test_the_parser_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    with pytest.raises(click.ClickException):
        parse_argv(argv)


def test_the_parser_accepts_a_full_command_and_reads_its_values() -> None:
    ctx = parse_argv(
        ["dlq", "replay", "12", "13", "--destination", "hubspot", "--class", "auth", "--note", "x"]
    )
    assert ctx.command.name == "replay"
    assert ctx.params["ids"] == (12, 13)
    assert ctx.params["error_class"] == "auth"


def test_commands_are_found_in_code_blocks_inline_code_and_substitutions(tmp_path: Path) -> None:
    doc = RUNBOOKS_DIR / "sync-failure.md"
    sample = tmp_path / "sample.md"
    sample.write_text(
        "Run `donor-sync dlq list --destination hubspot` first; `donor-sync` alone is a name;\n"
        'open `psql "$(donor-sync db url)"`.\n\n'
        "```bash\n"
        "# donor-sync in a comment is not a command\n"
        "DONOR_SYNC_DB_URL=postgresql://x donor-sync db status | head\n"
        'psql "$(donor-sync db url --reveal)" -c "SELECT 1"\n'
        "donor-sync outbox queue \\\n"
        "  -d salesforce --full\n"
        "python -c \"print('donor-sync: not a command')\"\n"
        "```\n\n"
        "```sql\nSELECT 'donor-sync dlq list';\n```\n",
        encoding="utf-8",
    )
    found = [(c.line, c.argv) for c in commands_in(sample)]
    assert sorted(found) == [
        (1, ("dlq", "list", "--destination", "hubspot")),
        (2, ("db", "url")),
        (6, ("db", "status")),
        (7, ("db", "url", "--reveal")),
        (8, ("outbox", "queue", "-d", "salesforce", "--full")),
    ]
    assert commands_in(doc), "sync-failure.md quotes commands"


def test_an_unknown_placeholder_is_an_error() -> None:
    assert fill_placeholders(("dlq", "show", "<dead-letter-id>")) == ["dlq", "show", "42"]
    with pytest.raises(KeyError, match="<letter>"):
        fill_placeholders(("dlq", "show", "<letter>"))
