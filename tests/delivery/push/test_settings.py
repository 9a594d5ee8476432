"""Push settings: defaults, the push and circuit_breaker keys of delivery.yaml, errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.delivery.push.settings import PushSettings, load_push_settings
from donor_sync.errors import ConfigError


def test_the_shipped_file_loads() -> None:
    assert isinstance(load_push_settings(), PushSettings)


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    loaded = load_push_settings(tmp_path / "absent.yaml")
    assert loaded == PushSettings()
    assert loaded.push.quota_reserve_share == 0.10
    assert loaded.circuit_breaker.consecutive_failures == 5


def test_only_the_push_keys_are_read(tmp_path: Path) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text(
        "blast_radius:\n  max_destructive_share: 0.05\n"  # the outbox's key: ignored here
        "push:\n  lease_seconds: 1200\n  quota_reserve_share: 0.2\n"
        "circuit_breaker:\n  consecutive_failures: 3\n  open_seconds: 30\n"
    )
    loaded = load_push_settings(path)
    assert loaded.push.lease_seconds == 1200
    assert loaded.push.quota_reserve_share == 0.2
    assert loaded.push.jitter == 0.1  # untouched keys keep their defaults
    assert loaded.circuit_breaker.consecutive_failures == 3
    assert loaded.circuit_breaker.open_seconds == 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("push:\n  jitter: 1.5\n", r"line 2, push\.jitter"),
        ("circuit_breaker:\n  consecutive_failures: 0\n", r"line 2, circuit_breaker\.consecutive_failures"),
        (
            "circuit_breaker:\n  open_seconds: 600\n  max_open_seconds: 60\n",
            "max_open_seconds must be at least",
        ),
        ("push:\n  lease_secs: 10\n", r"line 2, push\.lease_secs"),
    ],
    ids=["jitter-too-big", "zero-failures", "waits-out-of-order", "misspelt-key"],
)
def test_invalid_values_name_the_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "delivery.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_push_settings(path)
    assert str(path) in str(caught.value)
