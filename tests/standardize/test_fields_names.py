"""standardize_names: parts, casing, nicknames, organizations, keys and issues."""

from __future__ import annotations

from typing import Any

import nameparser
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.standardize.fields import names as names_module
from donor_sync.standardize.fields import standardize_names

PARTS = ("name_prefix", "first_name", "middle_name", "last_name", "name_suffix", "nickname")


def _full(value: str | None) -> dict[str, Any]:
    result = standardize_names(pd.Series([value], dtype=object), None, None)
    row = result.values.iloc[0]
    out = {k: (None if pd.isna(row[k]) else row[k]) for k in (*PARTS, "organization_name")}
    out["is_organization"] = bool(row["is_organization"])
    out["codes"] = set(result.issues["code"])
    return out


def _parts(**expected: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys((*PARTS, "organization_name"))
    base.update(is_organization=False, codes=set())
    base.update(expected)
    return base


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        pytest.param("Jane Doe", _parts(first_name="Jane", last_name="Doe"), id="first-last"),
        pytest.param("BARBARA corell", _parts(first_name="Barbara", last_name="Corell"), id="one-case-words"),
        pytest.param(
            "CROMMAN, BARBARA", _parts(first_name="Barbara", last_name="Cromman"), id="last-comma-first"
        ),
        pytest.param("pemow, john", _parts(first_name="John", last_name="Pemow"), id="lower-last-first"),
        pytest.param(
            "VAN DER BERG, JOHN", _parts(first_name="John", last_name="Van der Berg"), id="particles-comma"
        ),
        pytest.param(
            "Dr. Jane Q. Doe-Smith, PhD",
            _parts(
                name_prefix="Dr.",
                first_name="Jane",
                middle_name="Q.",
                last_name="Doe-Smith",
                name_suffix="PhD",
            ),
            id="title-middle-suffix",
        ),
        pytest.param(
            "john smith jr", _parts(first_name="John", last_name="Smith", name_suffix="Jr."), id="suffix"
        ),
        pytest.param(
            'Robert "Bob" Smith',
            _parts(first_name="Robert", last_name="Smith", nickname="Bob"),
            id="nick-quotes",
        ),
        pytest.param(
            "Robert (Bob) Smith",
            _parts(first_name="Robert", last_name="Smith", nickname="Bob"),
            id="nick-parens",
        ),
        pytest.param(
            "LUDWIG VAN BEETHOVEN", _parts(first_name="Ludwig", last_name="Van Beethoven"), id="van"
        ),
        pytest.param("JUAN DE LA CRUZ", _parts(first_name="Juan", last_name="De la Cruz"), id="de-la"),
        pytest.param("mary st. john", _parts(first_name="Mary", last_name="St. John"), id="saint"),
        pytest.param("john mcdonald", _parts(first_name="John", last_name="McDonald"), id="mc"),
        pytest.param("PAT MACLEOD", _parts(first_name="Pat", last_name="MacLeod"), id="mac"),
        pytest.param("ana MACHADO", _parts(first_name="Ana", last_name="Machado"), id="mac-exception"),
        pytest.param("TOM MACK", _parts(first_name="Tom", last_name="Mack"), id="short-mack"),
        pytest.param("SEAN O'BRIEN", _parts(first_name="Sean", last_name="O'Brien"), id="o-apostrophe"),
        pytest.param("anne smith-jones", _parts(first_name="Anne", last_name="Smith-Jones"), id="hyphen"),
        pytest.param("DeShawn McKenzie", _parts(first_name="DeShawn", last_name="McKenzie"), id="mixed-kept"),
        pytest.param("ROY ÖZTÜRK", _parts(first_name="Roy", last_name="Öztürk"), id="non-ascii"),
        pytest.param("J.R. SMITH", _parts(first_name="J.R.", last_name="Smith"), id="initials"),
        pytest.param(
            "Mr. and Mrs. John Smith",
            _parts(name_prefix="Mr. and Mrs.", first_name="John", last_name="Smith"),
            id="couple-title",
        ),
        pytest.param(
            "Acme Foundation",
            _parts(is_organization=True, organization_name="Acme Foundation"),
            id="foundation",
        ),
        pytest.param("Globex Inc.", _parts(is_organization=True, organization_name="Globex Inc."), id="inc"),
        pytest.param(
            "Johnson & Co", _parts(is_organization=True, organization_name="Johnson & Co"), id="and-co"
        ),
        pytest.param(
            "Smith Family Trust",
            _parts(is_organization=True, organization_name="Smith Family Trust"),
            id="trust",
        ),
        pytest.param(
            "First Baptist Church",
            _parts(is_organization=True, organization_name="First Baptist Church"),
            id="church-long",
        ),
        pytest.param(
            "Charlotte Church", _parts(first_name="Charlotte", last_name="Church"), id="church-surname"
        ),
        pytest.param(
            "Church of the Redeemer",
            _parts(is_organization=True, organization_name="Church of the Redeemer"),
            id="church-first",
        ),
        pytest.param(None, _parts(codes={"missing_name"}), id="missing"),
        pytest.param("   ", _parts(codes={"missing_name"}), id="blank"),
    ],
)
def test_full_names(full: str | None, expected: dict[str, Any]) -> None:
    assert _full(full) == expected


def test_sql_injection_in_a_name_is_kept_and_flagged() -> None:
    out = _full("Robert'); DROP TABLE donors;--")
    assert out["codes"] == {"unusual_name_characters"}
    joined = " ".join(v for k, v in out.items() if k in PARTS and v)
    assert "DROP" in joined.upper()
    assert "donors" in joined.lower()


def test_fields_win_over_full_name_and_are_cleaned() -> None:
    result = standardize_names(
        pd.Series(["Someone Else", "Jane Doe", None, "x"]),
        pd.Series(["  joyce ", None, 'Robert "Bob"', None]),
        pd.Series(["BROWN", None, "smith jr.", "Acme Foundation"]),
        name_suffix=pd.Series([None, None, None, None]),
    )
    values = result.values
    assert values[["first_name", "last_name"]].astype(object).where(values.notna(), None).values.tolist() == [
        ["Joyce", "Brown"],
        ["Jane", "Doe"],
        ["Robert", "Smith"],
        [None, None],
    ]
    assert values["nickname"].iloc[2] == "Bob"
    assert values["name_suffix"].iloc[2] == "Jr."
    assert values["is_organization"].tolist() == [False, False, False, True]
    assert values["organization_name"].iloc[3] == "Acme Foundation"


def test_an_organization_gift_keeps_its_contact_person() -> None:
    result = standardize_names(
        None, pd.Series(["Anne"]), pd.Series(["VAN DER BERG"]), organization_name=pd.Series(["Globex"])
    )
    row = result.values.iloc[0]
    assert (row["first_name"], row["last_name"], row["organization_name"], row["is_organization"]) == (
        "Anne",
        "Van der Berg",
        "Globex",
        True,
    )


def test_name_suffix_and_prefix_fields_are_used() -> None:
    result = standardize_names(
        None,
        pd.Series(["jane"]),
        pd.Series(["doe"]),
        middle_name=pd.Series(["q"]),
        name_prefix=pd.Series(["DR"]),
        name_suffix=pd.Series(["iii"]),
    )
    row = result.values.iloc[0]
    assert [row[p] for p in PARTS[:-1]] == ["Dr", "Jane", "Q", "Doe", "III"]
    assert pd.isna(row["nickname"])


def test_phonetic_keys_group_spellings_and_survive_accents() -> None:
    result = standardize_names(pd.Series(["Jon Smith", "John Smyth", "Roy Öztürk", "Roy Ozturk"]), None, None)
    keys = result.values["last_name_key"].tolist()
    assert keys[0] == keys[1]
    assert keys[2] == keys[3]
    assert result.values["first_name_key"].iloc[0] == result.values["first_name_key"].iloc[1]


def test_nameparser_runs_once_per_unique_name_and_never_on_first_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    original = nameparser.parse

    def spy(value: str) -> Any:
        seen.append(value)
        return original(value)

    monkeypatch.setattr(names_module, "parse", spy)
    full = pd.Series(
        ["Jane Doe", "Dr. Jane Doe", "Jane Doe", "Dr. Jane Doe", "DOE, JANE", "Mary St. John"] * 50
    )
    standardize_names(full, None, None)
    assert sorted(seen) == ["Dr. Jane Doe", "Mary St. John"]


WORD = st.text(alphabet=st.characters(categories=("Lu", "Ll")), min_size=1, max_size=10)


@settings(max_examples=150, deadline=None)
@given(st.lists(WORD, min_size=1, max_size=4))
def test_a_non_empty_name_is_never_lost(words: list[str]) -> None:
    full = " ".join(words)
    out = _full(full)
    kept = " ".join(v for k, v in out.items() if k in (*PARTS, "organization_name") and v)
    assert kept, full
    assert "missing_name" not in out["codes"]
    # Every word typed is still there, in some case. Compared through upper() first because case
    # mappings are not one-to-one (proper-casing the dotless i (U+0131) gives "I", whose lower case is "i").
    for word in words:
        assert word.upper().casefold() in kept.upper().casefold()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz'-", min_size=2, max_size=8), min_size=2, max_size=2)
)
def test_casing_is_idempotent_and_case_blind(words: list[str]) -> None:
    lower = " ".join(words)
    upper = lower.upper()
    a, b = _full(lower), _full(upper)
    assert (a["first_name"], a["last_name"]) == (b["first_name"], b["last_name"])
    again = _full(f"{a['first_name']} {a['last_name']}") if a["first_name"] and a["last_name"] else a
    assert (again["first_name"], again["last_name"]) == (a["first_name"], a["last_name"])
