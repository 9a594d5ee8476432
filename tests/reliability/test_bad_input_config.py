"""Bad configuration files: every YAML loader answers a broken file with one ConfigError that names
the file, the line and the field, never a traceback (issue 10).

The corpus (tests/reliability/corpus/config) holds copies of shipped mapping and rule files with one
mistake each: a misspelt key, a key written twice (YAML would silently keep the second), a field
core does not have, a value of the wrong type, a tab, an unclosed brace, a file saved as Latin-1.
Then the same few generic breakages are fed to every loader, and a property test feeds them random
YAML documents and random bytes: each either loads or raises ConfigError naming the file.

Already covered elsewhere, loader by loader (field-level checks of each schema): tests/delivery/mapping/
test_loader.py, tests/standardize/test_pipeline_rules_file.py, tests/sources/test_csv_drop_formats.py,
tests/web/test_webhooks_config.py, tests/identity/test_rules.py, tests/journeys/test_rules.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from donor_sync.cli import main
from donor_sync.delivery.mapping import load_mapping, validate_file
from donor_sync.delivery.reconcile.settings import load_reconcile_settings
from donor_sync.delivery.settings import load_delivery_settings
from donor_sync.errors import ConfigError
from donor_sync.events.settings import load_event_settings
from donor_sync.identity.rules import load_rules as load_dedup_rules
from donor_sync.journeys.rules import load_rules as load_journey_rules
from donor_sync.local_airflow import load_settings as load_airflow_settings
from donor_sync.privacy.consent.pullback import load_pullback_settings
from donor_sync.privacy.crypto.settings import load_encryption_settings
from donor_sync.privacy.erasers.settings import load_erasure_settings
from donor_sync.privacy.gate.policy import load_policy
from donor_sync.privacy.profiles.model import load_profile
from donor_sync.privacy.retention.settings import load_retention_settings
from donor_sync.resolve.fiscal import load_giving_settings
from donor_sync.resolve.survivorship import load_survivorship
from donor_sync.sources.csv_drop import load_format
from donor_sync.standardize.fields.utm_config import load_utm_config
from donor_sync.standardize.settings import load_settings as load_standardize_rules
from donor_sync.web.preferences.config import load_preference_settings
from donor_sync.web.webhooks.config import load_settings as load_webhook_settings

CORPUS = Path(__file__).with_name("corpus") / "config"

#: Every loader of a YAML file under include/ (and airflow_settings.yaml), by the file it reads.
LOADERS: dict[str, Callable[[Path], Any]] = {
    "standardize.yaml": load_standardize_rules,
    "dedup.yaml": load_dedup_rules,
    "journeys.yaml": load_journey_rules,
    "giving.yaml": load_giving_settings,
    "survivorship.yaml": load_survivorship,
    "delivery.yaml": load_delivery_settings,
    "reconcile.yaml": load_reconcile_settings,
    "events.yaml": load_event_settings,
    "webhooks.yaml": load_webhook_settings,
    "utm.yaml": load_utm_config,
    "privacy/destinations.yaml": load_policy,
    "privacy/retention.yaml": load_retention_settings,
    "privacy/encryption.yaml": load_encryption_settings,
    "privacy/erasure.yaml": load_erasure_settings,
    "privacy/consent_pullback.yaml": load_pullback_settings,
    "privacy/preference_centre.yaml": load_preference_settings,
    "privacy/profiles/<profile>.yaml": load_profile,
    "destinations/<destination>.yaml": load_mapping,
    "csv_formats/<format>.yaml": load_format,
    "airflow_settings.yaml": load_airflow_settings,
}


# -- the corpus: one mistake per file ----------------------------------------------------------------


def _mapping_problems(path: Path) -> str:
    mapping, problems = validate_file(path)
    assert mapping is None
    return "\n".join(str(p) for p in problems)


def _config_error(loader: Callable[[Path], Any]) -> Callable[[Path], str]:
    def load(path: Path) -> str:
        with pytest.raises(ConfigError) as raised:
            loader(path)
        return str(raised.value)

    return load


#: corpus file -> (how it is loaded, what the error must say: file:line or "line N", and the field)
CORPUS_CASES: dict[str, tuple[Callable[[Path], str], str, str]] = {
    "mailchimp_unknown_key.yaml": (_mapping_problems, ":61:", "member.email_address.transform: Extra inputs"),
    "mailchimp_key_twice.yaml": (_mapping_problems, ":60:", "objects.0.fields.0.from: written twice"),
    "mailchimp_unknown_core_field.yaml": (
        _mapping_problems,
        ":59:",
        "member.email_address.from: unknown source field 'emial'",
    ),
    "mailchimp_tab_indent.yaml": (_mapping_problems, ":59:", "(yaml): not valid YAML"),
    "mailchimp_latin1.yaml": (_mapping_problems, ":29:", "(file): not UTF-8 text"),
    "standardize_unknown_action.yaml": (
        _config_error(load_standardize_rules),
        "line 55",
        "issue_actions.too_long: Input should be",
    ),
    "standardize_key_twice.yaml": (
        _config_error(load_standardize_rules),
        "line 56",
        "issue_actions.too_long: written twice",
    ),
    "dedup_not_a_number.yaml": (
        _config_error(load_dedup_rules),
        "line 16",
        "blocking.max_block_size: Input should be",
    ),
    "journeys_unknown_key.yaml": (
        _config_error(load_journey_rules),
        "line 23",
        "defaults.quiet_hour: Extra inputs",
    ),
    "webhooks_unclosed_brace.yaml": (
        _config_error(load_webhook_settings),
        "line 37",
        "while parsing a flow mapping",
    ),
    "csv_formats/bank_cheque_export.yaml": (
        _config_error(load_format),
        "line 32",
        "columns.amount_paid: 'amount_paid' is not an intake field",
    ),
}


@pytest.mark.parametrize(("name", "case"), sorted(CORPUS_CASES.items()), ids=sorted(CORPUS_CASES))
def test_each_corpus_file_is_refused_naming_its_file_line_and_field(
    name: str, case: tuple[Callable[[Path], str], str, str]
) -> None:
    load, line, says = case
    path = CORPUS / name
    message = load(path)
    assert str(path) in message
    assert line in message
    assert says in message
    assert "Traceback" not in message


def test_mapping_validate_on_the_cli_lists_every_corpus_mapping_problem_and_exits_1() -> None:
    files = sorted(CORPUS.glob("mailchimp_*.yaml"))
    result = CliRunner().invoke(main, ["mapping", "validate", *map(str, files)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for path in files:
        assert re.search(rf"{re.escape(str(path))}:\d+: ", result.output), path.name


# -- every loader, the same generic breakages --------------------------------------------------------

BREAKAGES: dict[str, tuple[bytes, str]] = {
    # bytes -> a pattern the message must match besides naming the file (mapping problems read
    # "file:line: field: message", the other loaders "file: line N, field: message")
    "not-utf8": (b"version: 1\n# caf\xe9\n", r"line 2\b|:2: "),
    "syntax": (b"version: 1\nitems: [1, 2\nother: 3\n", r"line \d"),
    "key-twice": (b"version: 1\nversion: 2\n", r"(line 2[,:] |:2: )version: written twice"),
    "unknown-top-level-key": (b"no_such_setting_anywhere: 1\n", "no_such_setting_anywhere"),
    "a-list": (b"- 1\n- 2\n", ""),
    "python-tag": (b"version: !!python/object/apply:os.system ['true']\n", r"line 1\b|:1: "),
}


def _named(tmp_path: Path, loader_key: str) -> Path:
    """A file path the loader accepts by name (format files must be named after their format)."""
    if loader_key.startswith("csv_formats/"):
        return tmp_path / "bank_cheque_export.yaml"
    return tmp_path / Path(loader_key.replace("<", "").replace(">", "")).name


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("loader_key", sorted(LOADERS))
def test_every_loader_refuses_a_broken_file_with_a_config_error_naming_it(
    tmp_path: Path, loader_key: str, breakage: str
) -> None:
    data, says = BREAKAGES[breakage]
    path = _named(tmp_path, loader_key)
    path.write_bytes(data)
    with pytest.raises(ConfigError) as raised:
        LOADERS[loader_key](path)
    message = str(raised.value)
    assert str(path) in message
    assert re.search(says, message), message


@pytest.mark.parametrize("loader_key", sorted(LOADERS))
def test_every_loader_names_a_missing_file(tmp_path: Path, loader_key: str) -> None:
    if loader_key == "events.yaml":
        pytest.skip("no events.yaml means no subscribers, by design")
    path = _named(tmp_path, loader_key)
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        LOADERS[loader_key](path)


# -- property: anything in a file --------------------------------------------------------------------

keys = st.sampled_from(["version", "name", "objects", "fields", "tables", "endpoints", "issue_actions", "x"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
names = keys | st.text(max_size=6)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    loader_key=st.sampled_from(sorted(LOADERS)),
    content=st.one_of(
        documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
)
def test_any_file_content_loads_or_raises_a_config_error_naming_the_file(
    tmp_path: Path, loader_key: str, content: bytes
) -> None:
    path = _named(tmp_path, loader_key)
    path.write_bytes(content)
    message = ""
    try:
        LOADERS[loader_key](path)
    except ConfigError as exc:  # anything else fails the test
        message = str(exc)
    assert message == "" or str(path) in message
