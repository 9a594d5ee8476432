"""parse_flags / parse_flag_fields and contact-preference text."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import (
    parse_consent_field,
    parse_consent_text,
    parse_flag_fields,
    parse_flags,
)
from donor_sync.standardize.fields.flags import CHANNELS, PURPOSES, STATUSES

CORE_PURPOSES = {"marketing", "fundraising", "profiling", "sharing"}  # core.consent_purpose
CORE_CHANNELS = {"email", "sms", "phone", "mail", "all"}  # core.consent_channel
CORE_STATUSES = {"opt_in", "soft_opt_in", "opt_out"}  # core.consent_status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *(
            pytest.param(v, True, id=f"true-{v}")
            for v in ("yes", "Y", "TRUE", "t", "1", "x", "X", " on ", "Checked")
        ),
        *(pytest.param(v, False, id=f"false-{v}") for v in ("no", "N", "false", "F", "0", "off")),
        pytest.param("", None, id="blank"),
        pytest.param(None, None, id="missing"),
        pytest.param("maybe", None, id="unknown"),
    ],
)
def test_flags(value: Any, expected: bool | None) -> None:
    got = parse_flags(pd.Series([value], dtype=object)).iloc[0]
    assert (None if pd.isna(got) else bool(got)) == expected


def test_flag_fields_report_unknown_text_only() -> None:
    frame = pd.DataFrame({"do_not_mail": ["Y", "", "maybe"], "deceased": [None, "no", "1"]}, index=[7, 8, 9])
    result = parse_flag_fields(frame)
    assert str(result.values["do_not_mail"].dtype) == "boolean"
    assert result.values.astype(object).where(result.values.notna(), None).values.tolist() == [
        [True, None],
        [None, False],
        [None, True],
    ]
    assert result.issues[["row", "field", "code", "value"]].to_numpy().tolist() == [
        [9, "do_not_mail", "invalid_flag", "maybe"]
    ]


def test_consent_text_maps_to_core_vocabulary() -> None:
    text = pd.Series(
        [
            "email.newsletter=opt_in;sms.fundraising=opt_out",
            " Email.Fundraising = Soft_Opt_In ; ",
            None,
            "email.newsletter=opt_in;email.newsletter=opt_in",
        ]
    )
    assert parse_consent_text(text).tolist() == [
        [
            {"channel": "email", "purpose": "marketing", "status": "opt_in"},
            {"channel": "sms", "purpose": "fundraising", "status": "opt_out"},
        ],
        [{"channel": "email", "purpose": "fundraising", "status": "soft_opt_in"}],
        [],
        [{"channel": "email", "purpose": "marketing", "status": "opt_in"}],
    ]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("email.newsletter", id="no-status"),
        pytest.param("newsletter=opt_in", id="no-channel"),
        pytest.param("fax.newsletter=opt_in", id="unknown-channel"),
        pytest.param("email.lottery=opt_in", id="unknown-purpose"),
        pytest.param("email.newsletter=perhaps", id="unknown-status"),
    ],
)
def test_unreadable_pairs_are_reported_and_good_pairs_kept(text: str) -> None:
    result = parse_consent_field(pd.Series([f"sms.fundraising=opt_in;{text}"], index=["k"]))
    assert result.values["consent_signals"].iloc[0] == [
        {"channel": "sms", "purpose": "fundraising", "status": "opt_in"}
    ]
    assert result.issues[["row", "field", "code"]].to_numpy().tolist() == [
        ["k", "consent_text", "invalid_consent_text"]
    ]


def test_the_vocabulary_only_produces_core_values() -> None:
    assert set(CHANNELS.values()) <= CORE_CHANNELS
    assert set(PURPOSES.values()) <= CORE_PURPOSES
    assert set(STATUSES.values()) <= CORE_STATUSES


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(CHANNELS)),
            st.sampled_from(sorted(PURPOSES)),
            st.sampled_from(sorted(STATUSES)),
        ),
        max_size=5,
    )
)
def test_any_well_formed_text_parses_completely(pairs: list[tuple[str, str, str]]) -> None:
    text = ";".join(f"{c}.{p}={s}" for c, p, s in pairs)
    result = parse_consent_field(pd.Series([text]))
    assert result.issues.empty
    expected: list[dict[str, str]] = []
    for c, p, s in pairs:
        signal = {"channel": CHANNELS[c], "purpose": PURPOSES[p], "status": STATUSES[s]}
        if signal not in expected:
            expected.append(signal)
    assert result.values["consent_signals"].iloc[0] == expected
