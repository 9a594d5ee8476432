"""Structured logs: bound ids on every record, the JSON and text formats, the PII and secret safety net,
and what reaches Airflow 3's structured task log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
import structlog.contextvars

from donor_sync.observability.logging import (
    JsonFormatter,
    RedactingFilter,
    TextFormatter,
    bind,
    bind_task_context,
    bound,
    configure,
    current_ids,
    install,
    redact_text,
    register_secret,
)
from tests.conftest import REPO_ROOT

PSEUDONYM = b"p" * 32
KEYS = json.dumps(
    {
        "pseudonym": {"current": "p1", "keys": {"p1": base64.b64encode(PSEUDONYM).decode()}},
        "tombstone": {"current": "t1", "keys": {"t1": base64.b64encode(b"t" * 32).decode()}},
    }
)


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    """Each test starts and ends with nothing bound (the store is per thread, shared by tests)."""
    before = structlog.contextvars.get_contextvars()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**before)


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("donor_sync.test", logging.INFO, __file__, 1, message, args or None, None)
    record.__dict__.update(extra)
    return record


def _tag(kind: str, value: str, key: bytes = PSEUDONYM) -> str:
    return f"{kind}#{hmac.new(key, f'log|{kind}|{value}'.encode(), hashlib.sha256).hexdigest()[:8]}"


# -- bound ids ----------------------------------------------------------------------------------


def test_bound_ids_reach_every_record_and_are_restored_after_the_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install()
    log = logging.getLogger("donor_sync.delivery.test")
    run = UUID("8d3f5a4e-0000-4000-8000-000000000001")
    bind(sync_run_id=run, destination="hubspot")
    with caplog.at_level(logging.INFO):
        with bound(batch_id=7, destination="salesforce"):
            log.info("inside")
            assert current_ids() == {"sync_run_id": str(run), "destination": "salesforce", "batch_id": 7}
        log.info("after", extra={"donor_id": "d-1"})
    inside, after = caplog.records
    names = ("sync_run_id", "destination", "batch_id", "donor_id")
    assert [getattr(inside, n, None) for n in names] == [str(run), "salesforce", 7, None]
    assert [getattr(after, n, None) for n in names] == [str(run), "hubspot", None, "d-1"]
    bind(destination=None)
    assert current_ids() == {"sync_run_id": str(run)}


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        pytest.param({"email": "a@example.org"}, ValueError, id="not-an-id"),
        pytest.param({"first_name": "Ada"}, ValueError, id="a-name"),
        pytest.param({"donor_id": {"email": "a@example.org"}}, TypeError, id="not-a-scalar"),
    ],
)
def test_only_ids_can_be_bound(ids: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        bind(**ids)
    assert current_ids() == {}


def test_a_task_binds_its_run_destination_and_airflow_ids() -> None:
    from airflow.sdk import DAG

    from donor_sync.operators.dag_defaults import START_DATE, default_args
    from donor_sync.operators.delivery_tasks import push_task

    with DAG("log_ids", schedule=None, start_date=START_DATE, default_args=default_args()):
        pushed = push_task.override(task_id="push_hubspot")("run-42", "hubspot")
    operator = pushed.operator
    assert bind_task_context in operator.on_execute_callback, "every donor-sync task binds its ids"

    class _TaskInstance:  # the attributes Airflow's RuntimeTaskInstance has
        dag_id, task_id, run_id, map_index, try_number = "log_ids", "push_hubspot", "manual__1", -1, 2

    bind(source="stripe", batch_id=9)  # left over from an earlier task in the same thread
    bind_task_context({"ti": _TaskInstance(), "task": operator})
    assert current_ids() == {
        "sync_run_id": "run-42",
        "destination": "hubspot",
        "dag_id": "log_ids",
        "task_id": "push_hubspot",
        "run_id": "manual__1",
        "map_index": -1,
        "try_number": 2,
    }


# -- formats ------------------------------------------------------------------------------------


def test_json_lines_hold_the_message_the_ids_and_no_other_extras() -> None:
    record = _record(
        "pushed %d records to %s", 12, "hubspot", sync_run_id="r-1", batch_id=3, gift_key="g-9", email="x"
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert list(document)[:4] == ["ts", "level", "logger", "message"]
    assert document["message"] == "pushed 12 records to hubspot"
    assert (document["level"], document["logger"]) == ("info", "donor_sync.test")
    assert (document["sync_run_id"], document["batch_id"], document["gift_key"]) == ("r-1", 3, "g-9")
    assert "email" not in document, "only ids, keys and hashes leave as extras"
    assert document["exc"].endswith("RuntimeError: boom")
    assert document["ts"].endswith("+00:00")


def test_text_lines_name_the_ids_after_the_logger() -> None:
    formatter = TextFormatter()
    plain = formatter.format(_record("queued %s", 4))
    assert plain.endswith(" INFO donor_sync.test: queued 4")
    with_ids = formatter.format(_record("queued %s", 4, sync_run_id="r-1", destination="braze"))
    assert with_ids.endswith(" INFO donor_sync.test [sync_run_id=r-1 destination=braze]: queued 4")


# -- the safety net -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        pytest.param("batch 7: 1,703 records, 23 quarantined", True, id="counts"),
        pytest.param("run 2026-11-26 10:13:04 (manual__2026-11-26T10:13:04.047+00:00)", True, id="dates"),
        pytest.param("donor 0063f1fb-e06b-4ee1-9d4a-ce96ec8f7b34 at 127.0.0.1:38211", True, id="uuid-port"),
        pytest.param("created 1767225600, charge ch_3RFGGkH2ESox0FeE, amount 260.77", True, id="ids"),
        pytest.param("contact 5552345678 in cents 12345678", False, id="ten-digits-like-a-phone"),
    ],
)
def test_ordinary_values_are_left_alone(text: str, kept: bool) -> None:
    assert (redact_text(text, {}) == text) is kept


@pytest.mark.parametrize(
    ("text", "phone", "digits"),
    [
        pytest.param("call (907) 908-6398 now", "(907) 908-6398", "9079086398", id="nanp-parens"),
        pytest.param("call 816-390-1164", "816-390-1164", "8163901164", id="nanp-dashes"),
        pytest.param("call 8163901164.", "8163901164", "8163901164", id="nanp-bare"),
        pytest.param("call +13053520903", "+13053520903", "3053520903", id="e164"),
        pytest.param("call +1 305.352.0903", "+1 305.352.0903", "3053520903", id="e164-dots"),
        pytest.param("call +44 20 7946 0958", "+44 20 7946 0958", "2079460958", id="international"),
    ],
)
def test_phone_numbers_become_keyed_tags(text: str, phone: str, digits: str) -> None:
    env = {"DONOR_SYNC_PRIVACY_KEYS": KEYS}
    assert redact_text(text, env) == text.replace(phone, _tag("phone", digits))


def test_emails_become_tags_keyed_by_the_pseudonym_ring() -> None:
    env = {"DONOR_SYNC_PRIVACY_KEYS": KEYS}
    text = "no contact for Jane.Doe+gifts@Example.ORG or jane.doe+gifts@example.org"
    tag = _tag("email", "jane.doe+gifts@example.org")
    assert redact_text(text, env) == f"no contact for {tag} or {tag}", "one address, one tag"
    # Without the ring in the environment: a key of this process, still no address.
    other = redact_text(text, {})
    assert "@" not in other
    assert tag not in other
    assert other.count(other.split()[-1]) == 2


def test_known_secrets_are_masked() -> None:
    env = {
        "AIRFLOW_CONN_HUBSPOT": json.dumps(
            {"conn_type": "hubspot", "password": "pat-na1-abcdef", "extra": {"client_secret": "cs-123456"}}
        ),
        "AIRFLOW_CONN_STRIPE": "http://api:sk_live_987654@api.stripe.test/?webhook_secret=whsec_777777",
        "DONOR_SYNC_DB_URL": "postgresql://sync:db-pa%24%24word@db.internal/donor_sync",
        "DONOR_SYNC_PRIVACY_KEYS": KEYS,
    }
    register_secret("tok-registered-1")
    key = base64.b64encode(b"t" * 32).decode()
    text = (
        "auth pat-na1-abcdef cs-123456 sk_live_987654 whsec_777777 db-pa$$word "
        f"{key} tok-registered-1 ?token=tok-registered-1 and pat-na1-abcdef%2F"
    )
    clean = redact_text(text, env)
    assert clean == "auth *** *** *** *** *** *** *** ?token=*** and ***%2F"
    assert redact_text("auth api1 sandbox", env) == "auth api1 sandbox", "short values are not secrets"


def test_the_filter_cleans_message_arguments_and_tracebacks() -> None:
    record = _record("no contact for %s", "ada@example.org")
    try:
        raise LookupError("Key (email)=(ada@example.org) already exists")
    except LookupError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    message = record.getMessage()
    assert "ada@example.org" not in message
    assert message.startswith("no contact for email#")
    assert "LookupError: Key (email)=(email#" in message, "the traceback is folded in, cleaned"
    assert record.exc_info is None
    untouched = _record("pushed %d", 3)
    assert RedactingFilter().filter(untouched)
    assert (untouched.msg, untouched.args) == ("pushed %d", (3,))


def test_the_net_cleans_donor_sync_records_before_any_handler_writes_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install()
    install()
    nets = [h for h in logging.getLogger("donor_sync").handlers if type(h).__name__ == "_SafetyNet"]
    assert len(nets) == 1, "installing twice keeps one"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("donor_sync.privacy.test").debug("erasing %s", "ada@example.org")
        logging.getLogger("not_ours").debug("left to %s", "its owner@example.org")
    ours, theirs = caplog.records
    assert "ada@example.org" not in caplog.text
    assert ours.getMessage().startswith("erasing email#")
    assert theirs.getMessage() == "left to its owner@example.org", "only donor_sync records are ours"
    assert logging.getLogger("urllib3.connectionpool").level == logging.INFO, "request URLs stay out"


def test_the_command_line_writes_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    level = root.level
    handler = configure(level=logging.INFO, log_format="json")
    try:
        with bound(sync_run_id="r-7"):
            logging.getLogger("donor_sync.test").info("matched %s", "+1 (907) 908-6398")
            logging.getLogger("elsewhere").info("saw %s", "bo@example.org")
        logging.getLogger("donor_sync.test").debug("below the level")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(d["logger"], d["sync_run_id"]) for d in lines] == [
        ("donor_sync.test", "r-7"),
        ("elsewhere", "r-7"),
    ]
    assert lines[0]["message"].startswith("matched phone#")
    assert lines[1]["message"].startswith("saw email#"), "the command line's handler cleans every library"


def test_the_cli_takes_its_log_format_from_the_environment(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "id,first,last,email\n1,Ada,Quillfeather,ada.q@example.org\n2,Ada,Quillfeather,ada.q@example.org\n"
        "3,Bo,Rivendale,bo.r@example.org\n",
        encoding="utf-8",
    )
    args = ["-v", "dedupe", str(export), "--out", str(tmp_path / "out.csv"), "--id", "id"]
    args += ["--map", "first=first_name", "--map", "last=last_name", "--map", "email=email"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins"), "DONOR_SYNC_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "donor_sync", *args], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(d["logger"].startswith("donor_sync.") for d in lines), "dedupe logs its stages at INFO"
    assert all(d["command"] == "dedupe" and {"ts", "level", "message"} <= set(d) for d in lines)
    assert not any(word in result.stderr + result.stdout for word in ("Quillfeather", "example.org"))
    bad = subprocess.run(
        [sys.executable, "-m", "donor_sync", "db", "status"],
        capture_output=True,
        text=True,
        env={**env, "DONOR_SYNC_LOG_FORMAT": "yaml"},
        check=False,
    )
    assert bad.returncode == 2
    assert "log-format" in bad.stderr


# -- Airflow's task log -------------------------------------------------------------------------

_TASK_PROCESS = """
import io, logging, sys
from airflow.sdk.log import configure_logging

out = io.BytesIO()
# What a task process does: structlog JSON to the supervisor, the stdlib routed through it.
configure_logging(json_output=True, output=out, sending_to_supervisor=True)
import donor_sync.operators  # noqa: F401 - installs the ids and the safety net
from donor_sync.observability.logging import bound

log = logging.getLogger("donor_sync.sources.test")
with bound(sync_run_id="r-9", batch_id=4):
    log.info("landed %s", "ada@example.org", extra={"donor_id": "d-1"})
sys.stdout.write(out.getvalue().decode())
"""


def test_bound_ids_reach_airflows_structured_task_log(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins"), "AIRFLOW_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _TASK_PROCESS], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(line) for line in result.stdout.splitlines() if '"donor_sync.' in line]
    assert line["logger"] == "donor_sync.sources.test"
    assert (line["sync_run_id"], line["batch_id"]) == ("r-9", 4), "bound ids are keys of the line"
    assert line["event"].startswith("landed email#"), "the safety net ran before Airflow's handler"
    assert "donor_id" not in line, "Airflow's handler keeps no extra= values: bind ids instead"
