"""Bad command-line arguments: a clear message and exit status 2, never a traceback (issue 10).

Ids that are not numbers or do not fit a bigint, donor ids that are not uuids, dates that do not
exist, destinations donor-sync does not know, and arguments whose bytes are not UTF-8 are usage
errors: refused before anything runs, naming the argument. An id that is well formed but not
found is exit status 1 with one ``error:`` line. A property test runs the read-only commands with
arbitrary text where an id, a uuid, a destination, a count or a date goes.

Already covered elsewhere: help on every command, unknown commands and options, an unreachable
database (tests/unit/test_cli.py), each command's own outputs (tests/*/test_cli.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.cli import main
from tests.conftest import REPO_ROOT
from tests.delivery.dlq.test_store import dead_letter

BIGGER_THAN_BIGINT = str(2**63)
CONSENT_SET = ["consent", "set", "--purpose", "marketing", "--channel", "email", "--status", "opt_out"]
NOT_UTF8 = "caf\udce9"  # what Python makes of the byte 0xE9 in a UTF-8 locale's argv
SOME_UUID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)
    return CliRunner()


def _run(cli: CliRunner, argv: list[str]) -> Result:
    result = cli.invoke(main, argv)
    # Only SystemExit (click's exit codes) may end a command: any other exception is a traceback.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{argv}: {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.output
    return result


USAGE_ERRORS = [
    # bad ids
    pytest.param(["dlq", "show", "abc"], "'abc' is not a valid integer", id="id-not-a-number"),
    pytest.param(["dlq", "replay", BIGGER_THAN_BIGINT], "is not in the range 1<=x<=", id="id-beyond-bigint"),
    pytest.param(
        ["dlq", "discard", BIGGER_THAN_BIGINT, "--note", "x"], "not in the range", id="discard-beyond-bigint"
    ),
    pytest.param(["dlq", "edit", "0", "--set", "Email=x"], "not in the range", id="id-zero"),
    pytest.param(["quarantine", "release", BIGGER_THAN_BIGINT], "not in the range", id="quarantine-id"),
    pytest.param(["review", "approve", "-1"], "No such option", id="negative-id"),
    pytest.param(["merges", "done", "1.5"], "'1.5' is not a valid integer", id="merge-id-fraction"),
    pytest.param(
        ["dlq", "list", "--limit", BIGGER_THAN_BIGINT], "not in the range", id="limit-beyond-bigint"
    ),
    pytest.param(["review", "list", "--limit", "0"], "not in the range", id="limit-zero"),
    pytest.param(
        ["privacy", "requests", "list", "--limit", BIGGER_THAN_BIGINT],
        "not in the range",
        id="requests-limit",
    ),
    pytest.param(["keys", "reencrypt", "--batch", "0"], "not in the range", id="batch-zero"),
    pytest.param(["journeys", "plan", "--limit", "-1"], "not in the range", id="journeys-limit"),
    pytest.param(
        ["journeys", "report", "--days", BIGGER_THAN_BIGINT], "not in the range", id="days-beyond-range"
    ),
    pytest.param(["audit", "verify", "--since-seq", BIGGER_THAN_BIGINT], "not in the range", id="chain-seq"),
    # bad uuids
    pytest.param(["consent", "show", "not-a-uuid"], "'not-a-uuid' is not a uuid", id="donor-not-a-uuid"),
    pytest.param(["consent", "show", "42"], "is not a uuid", id="donor-a-number"),
    pytest.param(["privacy", "link", "' OR 1=1 --"], "is not a uuid", id="donor-injection"),
    pytest.param([*CONSENT_SET, "--evidence", "call", "nope"], "is not a uuid", id="consent-set-donor"),
    pytest.param(["review", "unmerge", "12345"], "is not a uuid", id="unmerge-target"),
    pytest.param(
        ["outbox", "plan", "-d", "hubspot", "--donor", "jane@example.org"], "is not a uuid", id="plan-donor"
    ),
    # bad dates
    pytest.param(
        ["journeys", "plan", "--since", "yesterday"], "'yesterday' does not match the formats", id="word"
    ),
    pytest.param(
        ["journeys", "plan", "--since", "2026-02-30"], "does not match the formats", id="february-30"
    ),
    pytest.param(
        ["compliance", "report", "--since", "2026-13-01", "--until", "2026-12-31"],
        "does not match",
        id="month-13",
    ),
    pytest.param(
        [*CONSENT_SET, "--evidence", "call", "--expires", "31/12/2026", SOME_UUID],
        "does not match the formats",
        id="expires-day-first",
    ),
    # unknown destinations
    pytest.param(
        ["outbox", "plan", "-d", "salesfroce"], "no mapping file for destination 'salesfroce'", id="plan"
    ),
    pytest.param(
        ["outbox", "queue", "-d", "nowhere"], "known: braze, hubspot, mailchimp, salesforce", id="queue"
    ),
    pytest.param(["outbox", "push", "-d", "nowhere"], "unknown destination 'nowhere'", id="push"),
    pytest.param(["outbox", "plan", "-d", "../../etc/passwd"], "no mapping file for destination", id="path"),
    pytest.param(
        ["mapping", "objects", "mandrill"], "no mapping file for destination 'mandrill'", id="objects"
    ),
    pytest.param(["dlq", "list", "--destination", "nowhere"], "unknown destination 'nowhere'", id="dlq-list"),
    pytest.param(
        ["dlq", "replay", "--destination", "nowhere"], "unknown destination 'nowhere'", id="dlq-replay"
    ),
    pytest.param(["merges", "list", "-d", "nowhere"], "unknown destination 'nowhere'", id="merges-list"),
    pytest.param(["outbox", "status", "-d", "nowhere"], "unknown destination 'nowhere'", id="outbox-status"),
    # arguments whose bytes are not UTF-8
    pytest.param(
        ["quarantine", "list", "--source", NOT_UTF8], "'--source': not UTF-8 text", id="not-utf8-source"
    ),
    pytest.param(
        ["privacy", "erase", "--email", f"{NOT_UTF8}@example.org"], "not UTF-8 text", id="not-utf8-email"
    ),
    pytest.param(["dlq", "show", NOT_UTF8], "is not a valid integer", id="not-utf8-id"),
]


@pytest.mark.parametrize(("argv", "says"), USAGE_ERRORS)
def test_bad_arguments_are_usage_errors_naming_the_argument(
    cli: CliRunner, argv: list[str], says: str
) -> None:
    result = _run(cli, argv)
    assert result.exit_code == 2, result.output
    assert "Error: " in result.output
    assert says in result.output


NOT_FOUND = [
    pytest.param(["dlq", "show", "999"], "error: no dead letter 999", id="dead-letter"),
    pytest.param(["dlq", "edit", "999", "--set", "Email=x"], "error: no dead letter 999", id="edit"),
    pytest.param(["quarantine", "show", "999"], "error: no quarantine row 999", id="quarantine"),
    pytest.param(["review", "show", "999"], "error: no review 999", id="review"),
    pytest.param(["merges", "done", "999"], "error: no destination merge 999", id="merge"),
    pytest.param(["privacy", "requests", "show", SOME_UUID], "error: ", id="privacy-request"),
    pytest.param(["review", "unmerge", SOME_UUID], "error: no merge decision", id="unmerge"),
]


@pytest.mark.parametrize(("argv", "says"), NOT_FOUND)
def test_a_well_formed_id_that_is_not_found_is_one_error_line_and_exit_1(
    cli: CliRunner, argv: list[str], says: str
) -> None:
    result = _run(cli, argv)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(says)


def test_a_destination_filter_still_finds_rows_of_a_destination_no_longer_configured(
    db: psycopg.Connection, cli: CliRunner
) -> None:
    # Dead letters of a destination whose mapping was since removed ("fake_crm"): still listed.
    dead_letter(db, "kept")
    listed = _run(cli, ["dlq", "list", "--destination", "fake_crm"])
    assert listed.exit_code == 0, listed.output
    assert "1 of 1 dead letter(s) shown" in listed.output
    known = _run(cli, ["dlq", "list", "--destination", "salesforce"])
    assert (known.exit_code, known.output.strip()) == (0, "no dead letters")


def test_from_a_real_shell_the_same_errors_are_one_message_without_a_traceback(db_url: str) -> None:
    """argv as the operating system hands it over (bytes), through the installed entry point."""
    env = {**os.environ, "DONOR_SYNC_DB_URL": db_url, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    for argv, says in (
        ([b"quarantine", b"list", b"--source", b"caf\xe9"], b"not UTF-8 text"),
        ([b"dlq", b"replay", BIGGER_THAN_BIGINT.encode()], b"not in the range"),
        ([b"outbox", b"push", b"-d", b"nowhere"], b"unknown destination 'nowhere'"),
    ):
        done = subprocess.run(
            [sys.executable.encode(), b"-m", b"donor_sync", *argv], capture_output=True, env=env, check=False
        )
        assert done.returncode == 2, done.stderr
        assert says in done.stderr
        assert b"Traceback" not in done.stderr + done.stdout


# -- property: any text where an argument goes --------------------------------------------------------

#: Read-only commands, each with the place an argument goes ({} is replaced).
COMMANDS = [
    ["dlq", "show", "{}"],
    ["quarantine", "show", "{}"],
    ["review", "show", "{}"],
    ["consent", "show", "{}"],
    ["privacy", "requests", "show", "{}"],
    ["dlq", "list", "--destination", "{}"],
    ["merges", "list", "--destination", "{}"],
    ["outbox", "status", "--destination", "{}"],
    ["quarantine", "list", "--source", "{}"],
    ["quarantine", "list", "--code", "{}"],
    ["dlq", "list", "--limit", "{}"],
    ["mapping", "objects", "{}"],
    ["journeys", "plan", "--since", "{}"],
]
#: Anything argv can hold: no NUL (a C string ends there), but undecodable bytes (lone surrogates).
arguments = st.one_of(
    st.text(st.characters(exclude_characters="\x00"), max_size=40),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=10).map(lambda t: t + "\udcff"),
    st.integers().map(str),
    st.uuids().map(str),
    st.sampled_from(
        ["salesforce", "webhook_", "-1", "0", BIGGER_THAN_BIGINT, "2026-02-30", str(uuid.UUID(int=0))]
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), argument=arguments)
def test_any_argument_ends_in_an_exit_status_never_an_exception(
    cli: CliRunner, command: list[str], argument: str
) -> None:
    argv = [argument if part == "{}" else part for part in command]
    if argument.startswith("-") and command[-1] == "{}" and not command[-2].startswith("--"):
        argv.insert(len(argv) - 1, "--")  # a positional that starts with a dash
    result = _run(cli, argv)
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 1:
        assert result.output.startswith("error: "), result.output
