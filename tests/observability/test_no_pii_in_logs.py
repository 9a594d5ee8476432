"""Issue 9: structured logs with run and record ids, never PII or secrets.

``donations_hourly`` runs end to end over the sandbox sample (every source emulator, the CSV drop,
the webhook inbox, every destination emulator), then a few commands people run afterwards print
their summaries and one donor is erased from the command line. Everything logged is captured at
DEBUG: the records reaching the root logger (pytest's ``caplog``; donor-sync's, Airflow's and every
library's), donor-sync's records as logged *before* the safety net cleans them (a handler ahead of
it on the ``donor_sync`` logger, so a leak in our code is found even though the net would hide
it), and whatever reached stdout and stderr (Airflow's structlog lines, the commands' output).

Every line is then searched for the sample donors' emails, first-and-last names and phone numbers,
read from the generated data (the truth file and every source record as the emulators serve it),
and for every secret in use: the connections' passwords and secret extras, the emulators' API keys,
client secrets, webhook signing secrets and the tokens they issued, and the privacy keys. A hit
fails the test naming where it was logged, with the value masked.
"""

from __future__ import annotations

import base64
import csv
import gc
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import psycopg
import pytest
from airflow.models import DagBag
from click.testing import CliRunner

from donor_sync.cli import main
from donor_sync.operators.delivery_tasks import DESTINATION_POOLS
from sandbox.common.runner import Sandbox
from tests.integration.test_donations_hourly_e2e import dagbag, sample, world  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.airflow, pytest.mark.xdist_group("airflow")]

KEYS = {
    purpose: {"current": f"{purpose[:2]}1", "keys": {f"{purpose[:2]}1": base64.b64encode(byte * 32).decode()}}
    for purpose, byte in (("tombstone", b"T"), ("pseudonym", b"P"), ("encryption", b"E"), ("links", b"L"))
}
EMAIL = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+")
DIGITS = re.compile(r"\+?\d[\d ().-]{6,}\d")
#: Setting and extra names that hold secrets (``consumer_key`` and ``list_id`` are not secrets).
SECRET_NAMES = re.compile(r"password|secret|token|api_?key|private_?key|passphrase", re.IGNORECASE)


# -- what must never appear -------------------------------------------------------------------------


@dataclass(frozen=True)
class Needles:
    """The sample donors' emails, names and phones, and the secrets in use; :meth:`find` searches."""

    emails: frozenset[str]  # lower case
    names: frozenset[str]  # lower case, "first last" and "last, first"
    phones: frozenset[str]  # the last ten digits
    secrets: frozenset[str]
    name_pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        alternatives = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        object.__setattr__(self, "name_pattern", pattern)

    def find(self, text: str) -> list[tuple[str, str]]:
        """Return ``(kind, value)`` of each needle in ``text`` (also URL-decoded)."""
        found: list[tuple[str, str]] = []
        for variant in {text, unquote_plus(text)}:
            found += [("email", e) for e in EMAIL.findall(variant) if e.lower() in self.emails]
            found += [("name", m.group(0)) for m in self.name_pattern.finditer(variant)]
            for candidate in DIGITS.findall(variant):
                digits = re.sub(r"\D", "", candidate)
                found += [("phone", candidate) for p in self.phones if p in digits]
            found += [("secret", s) for s in self.secrets if s in variant]
        return sorted(set(found))


def _person(names: set[str], first: Any, last: Any) -> None:
    first, last = (" ".join(str(v or "").split()).lower() for v in (first, last))
    if len(first) >= 2 and len(last) >= 2:
        names.update({f"{first} {last}", f"{last}, {first}"})


def _full_name(names: set[str], value: Any) -> None:
    name = " ".join(str(value or "").split()).lower()
    if " " in name and len(name) >= 5:
        names.add(name)


def _phone(phones: set[str], value: Any) -> None:
    digits = re.sub(r"\D", "", str(value or ""))
    if len(digits) >= 8:
        phones.add(digits[-10:])


def _walk(value: Any, emails: set[str], names: set[str], phones: set[str]) -> None:
    """Collect the PII of a source record as the emulators serve it (nested dicts and lists)."""
    if isinstance(value, list):
        for item in value:
            _walk(item, emails, names, phones)
        return
    if not isinstance(value, dict):
        return
    keys = {str(k).lower(): k for k in value}
    for lowered, key in keys.items():
        item = value[key]
        if isinstance(item, str):
            emails.update(e.lower() for e in EMAIL.findall(item))
            if "phone" in lowered or "mobile" in lowered:
                _phone(phones, item)
            if lowered.endswith("first_name"):
                last = keys.get(lowered[: -len("first_name")] + "last_name")
                if last is not None:
                    _person(names, item, value[last])
        else:
            _walk(item, emails, names, phones)
    personal = {"email", "phone", "address", "first_name", "member_email_address"} & set(keys)
    for key in ("name", "member_name"):
        if key in keys and (personal or key == "member_name"):
            _full_name(names, value[keys[key]])


def sample_pii(data: Path) -> tuple[set[str], set[str], set[str]]:
    """Return the emails, names and phones of the generated sample: truth and every source record."""
    emails: set[str] = set()
    names: set[str] = set()
    phones: set[str] = set()
    with (data / "truth" / "persons.csv").open(encoding="utf-8", newline="") as handle:
        for person in csv.DictReader(handle):
            if person["email"]:
                emails.add(person["email"].lower())
            _person(names, person["first_name"], person["last_name"])
            _phone(phones, person["phone"])
    for path in sorted(data.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            _walk(json.loads(line), emails, names, phones)
    for path in sorted((data / "csv").glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                cells = {k.lower(): v for k, v in row.items() if k}
                for column, cell in cells.items():
                    if "email" in column:
                        emails.update(e.lower() for e in EMAIL.findall(cell or ""))
                    elif "phone" in column or "mobile" in column:
                        _phone(phones, cell)
                    elif column == "donor name":
                        _full_name(names, cell)
                        if "," in (cell or ""):
                            last, first = cell.split(",", 1)
                            _person(names, first, last)
                _person(names, cells.get("first name"), cells.get("last name"))
    return emails, names, phones


def _secret_strings(value: Any, sensitive: bool = False) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_strings(item, sensitive or bool(SECRET_NAMES.search(str(key))))
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _secret_strings(item, sensitive)
    elif sensitive and isinstance(value, str) and len(value) >= 6:
        yield value


def secrets_in_use(box: Sandbox) -> set[str]:
    """Every connection secret of the test: connections, emulator credentials and issued tokens, keys."""
    found: set[str] = set()
    for name, value in os.environ.items():
        if name.startswith("AIRFLOW_CONN_"):
            conn = json.loads(value)
            extra = conn.get("extra") or {}
            found.update(_secret_strings({"password": conn.get("password"), **extra}))
    found.update(_secret_strings(KEYS, sensitive=True))
    for running in box.running.values():
        emulator = running.emulator
        with emulator.lock:
            found.update(_secret_strings(emulator.settings))
            for issued in ("sessions", "tokens"):  # Salesforce sessions, Classy tokens
                found.update(t for t in getattr(emulator, issued, {}) if isinstance(t, str) and len(t) >= 6)
    return found


# -- capture ----------------------------------------------------------------------------------------


class _Raw(logging.Handler):
    """Formats each donor_sync record as logged, before the safety net (behind it) rewrites it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((f"{record.name} {record.levelname} (as logged)", self.format(record)))


@pytest.fixture
def raw_donor_sync() -> Iterator[_Raw]:
    logger = logging.getLogger("donor_sync")
    handler = _Raw()
    logger.handlers.insert(0, handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """The commands put their console handler on the root logger (and lower its level): undo that."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if type(h).__module__.startswith("donor_sync.")]:
        root.removeHandler(handler)
    root.setLevel(level)


def _record_lines(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    formatter = logging.Formatter()
    return [(f"{r.name} {r.levelname}", formatter.format(r)) for r in records]


def _stream_lines(label: str, text: str) -> list[tuple[str, str]]:
    return [(label, line) for line in text.splitlines() if line.strip()]


def _mask(text: str, hits: list[tuple[str, str]]) -> str:
    text = unquote_plus(text) if any(value not in text for _, value in hits) else text
    for kind, value in hits:
        text = re.sub(re.escape(value), f"<{kind}:{value[:2]}***>", text, flags=re.IGNORECASE)
    return text[:400]


# -- the test ---------------------------------------------------------------------------------------


def _cli(runner: CliRunner, *args: str) -> list[tuple[str, str]]:
    result = runner.invoke(main, ["-v", *args], catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    return _stream_lines(f"donor-sync {' '.join(args[:2])}", result.output)


@pytest.fixture
def at_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG from here on (asked for before ``world``, so its set-up is captured too)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def test_no_log_line_holds_a_donors_pii_or_a_secret(
    raw_donor_sync: _Raw,
    root_logging: None,
    at_debug: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    world: tuple[str, Sandbox],  # noqa: F811
    dagbag: DagBag,  # noqa: F811
    sample: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog = at_debug
    db_url, box = world
    monkeypatch.setenv("DONOR_SYNC_PRIVACY_KEYS", json.dumps(KEYS))
    monkeypatch.setenv("DONOR_SYNC_PRIVACY_KEYS_LOCAL", "0")
    monkeypatch.setenv("DONOR_SYNC_DB_URL", db_url)

    # -- the pipeline, then what people run afterwards ---------------------------------------------
    assert str(dagbag.dags["donations_hourly"].test().state) == "success"
    run_records = list(caplog.records)
    with psycopg.connect(db_url) as conn:
        subject = conn.execute(
            "SELECT d.donor_id, d.email FROM core.donors d WHERE d.email IS NOT NULL"
            " AND d.merged_into IS NULL AND EXISTS (SELECT FROM core.donor_sources s"
            "   WHERE s.donor_id = d.donor_id AND s.role = 'destination' AND s.system = 'salesforce')"
            " ORDER BY d.donor_id LIMIT 1"
        ).fetchone()
        review = conn.execute("SELECT count(*) FROM sync.review_queue").fetchone()
    assert subject is not None
    assert review is not None
    assert review[0] > 0, "the sample leaves pairs to review, so `review list` prints some"
    donor_id, email = str(subject[0]), str(subject[1])
    runner = CliRunner()
    printed: list[tuple[str, str]] = []
    for args in (
        ("dlq", "list", "--status", "all"),
        ("review", "list"),
        ("outbox", "status"),
        ("quarantine", "list"),
        ("journeys", "report"),
        ("consent", "show", donor_id),
        ("privacy", "erase", "--email", email, "--process"),
        ("privacy", "requests", "list"),
    ):
        printed += _cli(runner, *args)
    out, err = capfd.readouterr()
    gc.collect()  # the erasers' HTTP sessions close now, so the emulators stop promptly

    lines = [
        *_record_lines(caplog.get_records("setup")),  # the sample loaded, the webhooks received
        *_record_lines(caplog.records),
        *raw_donor_sync.lines,
        *_stream_lines("stdout", out),
        *_stream_lines("stderr", err),
        *printed,
    ]

    # -- the search is not vacuous ------------------------------------------------------------------
    emails, names, phones = sample_pii(sample)
    needles = Needles(frozenset(emails), frozenset(names), frozenset(phones), frozenset(secrets_in_use(box)))
    assert len(needles.emails) > 150
    assert len(needles.names) > 300
    assert len(needles.phones) > 50
    assert {"sk_test_sandbox", "whsec_sandbox", KEYS["pseudonym"]["keys"]["ps1"]} <= needles.secrets
    assert len(needles.secrets) >= 10
    assert needles.find(f"pushed {email.upper()}") == [("email", email.upper())]
    assert len(lines) > 500, "the run, the commands and the erasure logged at DEBUG"
    assert any(w.endswith(" DEBUG") and not w.startswith("donor_sync") for w, _ in lines), "libraries' DEBUG"
    assert any("(as logged)" in name for name, _ in lines)

    # -- every line is clean ------------------------------------------------------------------------
    leaks = [f"{where}: {_mask(text, hits)}" for where, text in lines if (hits := needles.find(text))]
    assert not leaks, f"{len(leaks)} log line(s) hold PII or a secret:\n" + "\n".join(leaks[:40])

    # -- and each carries the ids of its run and task ---------------------------------------------
    ours = [r for r in run_records if r.name.startswith("donor_sync.")]
    assert ours
    run_ids = {getattr(r, "sync_run_id", None) for r in ours}
    assert len(run_ids) == 1, run_ids
    assert None not in run_ids
    assert all(getattr(r, "dag_id", None) == "donations_hourly" and getattr(r, "task_id", None) for r in ours)
    by_destination = [r for r in ours if hasattr(r, "destination")]
    assert {vars(r)["destination"] for r in by_destination} == set(DESTINATION_POOLS)
    assert all(vars(r)["task_id"].endswith(f"_{vars(r)['destination']}") for r in by_destination)
    # Airflow's own lines inside a task carry them too: its structlog renderer merges the bound ids.
    [run_id] = run_ids
    for destination in DESTINATION_POOLS:
        done = [
            text
            for where, text in lines
            if where == "stdout"
            and "Done. Returned value was" in text
            and f"task_id=push_{destination} " in text
        ]
        assert len(done) == 1, (destination, done)
        assert f"sync_run_id={run_id}" in done[0]
        assert f"destination={destination}" in done[0]
