"""Merge guards against household members, table-driven: each case is two records and the band
their pair must land in.

At one address the surname, the address and the household phone are every member's, and two
members' first names may be equal (namesakes) or close (Chris / Christina): only a personal
identifier (email, birth date, external id) lets such a pair merge automatically, or, for equal
or nickname-equivalent first names, a phone that no household link shares (or an address no
household link touches: no sign of a second member there). Off the address, a
shared phone with first names that are not equal needs an identifier too (a member who moved
out). Generation suffixes
(Jr / Sr) and middle initials that differ keep any pair from merging automatically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from donor_sync.identity import AUTO_MERGE, HOUSEHOLD, REVIEW, dedupe, load_nicknames, load_rules, prepare
from donor_sync.identity.comparisons import PairComparer
from donor_sync.identity.households import ambiguous_at_address, household_pairs, name_part_conflicts

HOME = {"street": "12 Elm Street", "city": "Boston", "state": "MA", "postal_code": "02110", "country": "US"}
AWAY = {"street": "400 Pine St", "city": "Seattle", "state": "WA", "postal_code": "98101", "country": "US"}


def _record(**fields: Any) -> dict[str, Any]:
    return {**HOME, "email": "", "phone": "", "birth_date": "", **fields}


#: other donors, so that term frequencies (a name shared by the two records only) mean something
OTHERS = [
    {
        "record_id": f"o{i}",
        "full_name": f"{first} {last}",
        "street": f"{100 + i} Oak Avenue",
        "city": "Denver",
        "state": "CO",
        "postal_code": f"80{200 + i}",
        "country": "US",
    }
    for i, (first, last) in enumerate(
        (f, s)
        for f in ("Alice", "Brenda", "Carlos", "Dmitri", "Elena", "Farid", "Grace", "Hiro")
        for s in ("Abbott", "Baxter", "Castellano", "Dunmore", "Ekwueme", "Fairweather", "Gallo")
    )
]


def _band(
    left: dict[str, Any], right: dict[str, Any], rules: Any = None, *, also: tuple[dict[str, Any], ...] = ()
) -> tuple[str, Any]:
    """Return the band of the pair of ``left`` and ``right`` (among other donors) and the result."""
    frame = pd.DataFrame(
        [
            {"record_id": "a", **left},
            {"record_id": "b", **right},
            *({"record_id": f"c{i}", **r} for i, r in enumerate(also)),
            *OTHERS,
        ]
    )
    result = dedupe(frame, rules, fit=False)  # the rules' m and u: a few records are too few to fit
    pairs = result.pairs
    at = pairs.index[(pairs["left_id"] == "a") & (pairs["right_id"] == "b")]
    assert len(at) == 1
    return str(pairs.at[at[0], "band"]), (result, int(at[0]))


def _member(last: str, phone: str) -> tuple[dict[str, Any], ...]:
    """Another member of the household at HOME (surname ``last``) sharing ``phone``."""
    return (_record(full_name=f"Theodora {last}", phone=phone, email=f"theodora.{last.lower()}@example.org"),)


# left, right, other records (a household member sharing the phone makes it the household's), band
CASES: list[Any] = [
    pytest.param(
        _record(full_name="John Kilby", phone="407-832-3762"),
        _record(full_name="John Kilby", phone="(407) 832-3762", email="john1953@example.org"),
        (),
        AUTO_MERGE,
        id="same-name-a-personal-phone",
    ),
    pytest.param(
        _record(full_name="John Kilby", phone="407-832-3762"),
        _record(full_name="John Kilby", phone="(407) 832-3762", email="john1953@example.org"),
        _member("Kilby", "4078323762"),
        REVIEW,
        id="namesakes-sharing-the-household-phone",
    ),
    pytest.param(
        _record(full_name="Mary Lindham"),
        _record(full_name="Mary Lindham", phone="214-256-1715", email="marylindham@example.com"),
        _member("Lindham", "2142561715"),
        REVIEW,
        id="same-name-nothing-else-in-a-household",
    ),
    pytest.param(
        _record(full_name="James Green", phone="312-542-8891", email="jamesgreen342@example.com"),
        _record(full_name="James Green", phone="3125428891", email="greenj09@example.org"),
        _member("Green", "312 542 8891"),
        REVIEW,
        id="same-name-household-phone-two-mailboxes",
    ),
    pytest.param(
        _record(full_name="Christian Scott", phone="513-434-1615", email="christianscott@example.com"),
        _record(full_name="CHRIS SCOTT", phone="513.434.1615"),
        _member("Scott", "5134341615"),
        REVIEW,
        id="nickname-household-phone",
    ),
    pytest.param(
        _record(full_name="Christian Scott", phone="513-434-1615", email="christianscott@example.com"),
        _record(full_name="CHRIS SCOTT", phone="513.434.1615"),
        (),
        AUTO_MERGE,
        id="nickname-personal-phone",
    ),
    pytest.param(
        _record(full_name="Sarah Pemdale", phone="912-582-3740", email="sarah.pemdale97@example.com"),
        _record(full_name="Sara Pemdale", phone="9125823740"),
        _member("Pemdale", "9125823740"),
        REVIEW,
        id="fuzzy-first-name-household-phone",
    ),
    pytest.param(
        _record(full_name="Sara Castillo", phone="+17205985356"),
        {**_record(full_name="Sarah Castillo", phone="720-598-5356", email="sarah1961@example.com"), **AWAY},
        _member("Castillo", "7205985356"),
        REVIEW,
        id="moved-member-keeps-the-household-phone",
    ),
    pytest.param(
        _record(full_name="Sara Castillo", phone="+17205985356", email="sara.castillo@example.com"),
        {
            **_record(full_name="Sarah Castillo", phone="720-598-5356", email="sara.castillo@example.com"),
            **AWAY,
        },
        _member("Castillo", "7205985356"),
        AUTO_MERGE,
        id="moved-typo-one-email",
    ),
    pytest.param(
        _record(full_name="Bryan Branford", phone="(305) 820-2346", email="bryan.branford97@example.com"),
        _record(full_name="Brian Branford", phone="305-820-2346"),
        (),
        REVIEW,
        id="names-a-typo-apart-a-phone-alone",
    ),
    pytest.param(
        _record(full_name="Sara Castillo", phone="+17205985356"),
        {**_record(full_name="Sarah Castillo", phone="720-598-5356", email="sarah1961@example.com"), **AWAY},
        (),
        REVIEW,
        id="moved-names-a-typo-apart-a-phone-alone",
    ),
    pytest.param(
        _record(full_name="Robert Smithers", email="rob.smithers@example.org"),
        _record(full_name="Bob Smithers", email="rob.smithers@example.org", phone="617-555-0101"),
        (),
        AUTO_MERGE,
        id="nickname-with-one-email",
    ),
    pytest.param(
        _record(full_name="Mary Lindham", email="mlindham@example.net"),
        _record(full_name="Mary Lindham", email="mlindham@example.net", phone="214-256-1715"),
        (),
        AUTO_MERGE,
        id="same-name-one-email",
    ),
    pytest.param(
        _record(full_name="Mary Lindham", birth_date="1961-04-12"),
        _record(full_name="Mary Lindham", birth_date="04/12/1961", phone="214-256-1715"),
        (),
        AUTO_MERGE,
        id="same-name-one-birth-date",
    ),
    pytest.param(
        _record(full_name="Daniel Okoro", phone="617-555-0110"),
        _record(full_name="Danielle Okoro", phone="617-555-0110"),
        (),
        HOUSEHOLD,
        id="different-names-a-household",
    ),
    pytest.param(
        _record(full_name="John Smith Jr.", email="jsmith@example.org"),
        _record(full_name="John Smith Sr.", email="jsmith@example.org"),
        (),
        REVIEW,
        id="junior-and-senior",
    ),
    pytest.param(
        _record(full_name="John Smith III", email="jsmith@example.org"),
        {**_record(full_name="John Smith II", email="jsmith@example.org"), **AWAY},
        (),
        REVIEW,
        id="generations-differ-anywhere",
    ),
    pytest.param(
        _record(full_name="John Smith", email="jsmith@example.org"),
        _record(full_name="John Smith Jr", email="jsmith@example.org"),
        (),
        REVIEW,
        id="one-junior-at-one-address",
    ),
    pytest.param(
        _record(full_name="John Smith Jr.", email="jsmith@example.org"),
        _record(full_name="JOHN SMITH JUNIOR", email="jsmith@example.org"),
        (),
        AUTO_MERGE,
        id="junior-written-twice",
    ),
    pytest.param(
        _record(full_name="John Smith", email="jsmith@example.org", phone="617-555-0101"),
        {**_record(full_name="John Smith Jr", email="jsmith@example.org", phone="617-555-0101"), **AWAY},
        (),
        AUTO_MERGE,
        id="one-junior-elsewhere",
    ),
    pytest.param(
        _record(full_name="John A. Smith", email="jsmith@example.org"),
        _record(full_name="John B. Smith", email="jsmith@example.org"),
        (),
        REVIEW,
        id="middle-initials-differ",
    ),
    pytest.param(
        _record(full_name="John A. Smith", email="jsmith@example.org"),
        _record(full_name="John Adam Smith", email="jsmith@example.org"),
        (),
        AUTO_MERGE,
        id="middle-initials-agree",
    ),
    pytest.param(
        _record(full_name="John A. Smith", email="jsmith@example.org"),
        _record(full_name="John Smith", email="jsmith@example.org"),
        (),
        AUTO_MERGE,
        id="middle-initial-on-one-side",
    ),
]


@pytest.mark.parametrize(("left", "right", "also", "band"), CASES)
def test_guard(
    left: dict[str, Any], right: dict[str, Any], also: tuple[dict[str, Any], ...], band: str
) -> None:
    found, (result, at) = _band(left, right, also=also)
    assert found == band, result.explain(at, show_values=True)
    cluster = result.records.set_index("record_id")["cluster_id"]
    assert (cluster["a"] == cluster["b"]) == (band == AUTO_MERGE)


#: John Kilby twice at one address, with the household phone: their mother shares it
KILBY = (
    _record(full_name="John Kilby", phone="407-832-3762"),
    _record(full_name="John Kilby", phone="(407) 832-3762", email="john1953@example.org"),
)
MOTHER = _member("Kilby", "4078323762")[0]


def test_a_household_phone_does_not_confirm_namesakes() -> None:
    band, (result, _) = _band(*KILBY, also=(MOTHER,))
    assert band == REVIEW
    pairs = result.pairs
    mother = pairs[(pairs["left_id"] == "a") & (pairs["right_id"] == "c0")]
    assert mother["band"].tolist() == [HOUSEHOLD]
    # the same phone without a household link sharing it is the person's: it confirms
    assert _band(*KILBY)[0] == AUTO_MERGE


def test_the_identifier_checks_are_configurable() -> None:
    rules = load_rules()

    def household(**update: Any) -> Any:
        return rules.model_copy(update={"household": rules.household.model_copy(update=update)})

    assert _band(*KILBY, rules, also=(MOTHER,))[0] == REVIEW
    assert _band(*KILBY, household(merge_needs_identifier=[]), also=(MOTHER,))[0] == AUTO_MERGE
    assert _band(*KILBY, rules)[0] == AUTO_MERGE  # no household link: the phone is John's own
    assert _band(*KILBY, household(personal_phone_confirms=False))[0] == REVIEW
    assert _band(*KILBY, household(personal_address_confirms=False))[0] == AUTO_MERGE  # the phone


def test_guards_skip_records_prepared_without_name_parts() -> None:
    """Records prepared elsewhere (no middle_initial / generation columns) are not checked."""
    frame = pd.DataFrame(
        [
            {"record_id": "a", **_record(full_name="John Smith Jr.", email="j@example.org")},
            {"record_id": "b", **_record(full_name="John Smith Sr.", email="j@example.org")},
        ]
    )
    prepared = prepare(frame)
    rule = load_rules().household
    left, right = np.array([0]), np.array([1])
    comparer = PairComparer(prepared, left, right, load_nicknames())
    assert name_part_conflicts(comparer, rule).tolist() == [True]
    assert ambiguous_at_address(comparer, rule).tolist() == [False]  # one email: confirmed
    prepared.frame = prepared.frame.drop(columns=["generation", "middle_initial"])
    comparer = PairComparer(prepared, left, right, load_nicknames())
    assert name_part_conflicts(comparer, rule).tolist() == [False]


@pytest.mark.parametrize(
    ("second", "others", "ambiguous"),
    [
        pytest.param("Mary Lindham", (), False, id="one-name-an-address-without-a-household"),
        pytest.param("Mary Lindham", ("Theodora Lindham",), True, id="one-name-an-address-with-a-household"),
        pytest.param("Molly Lindham", (), False, id="nickname-an-address-without-a-household"),
        pytest.param("Marie Lindham", (), True, id="names-a-typo-apart-need-an-identifier"),
    ],
)
def test_an_address_no_household_link_touches_confirms_one_name(
    second: str, others: tuple[str, ...], ambiguous: bool
) -> None:
    frame = pd.DataFrame(
        [
            {"record_id": "a", **_record(full_name="Mary Lindham", email="ml@example.net")},
            {"record_id": "b", **_record(full_name=second)},
            *({"record_id": f"c{i}", **_record(full_name=name)} for i, name in enumerate(others)),
        ]
    )
    prepared = prepare(frame)
    n = len(frame)
    left, right = np.triu_indices(n, 1)
    comparer = PairComparer(prepared, left, right, load_nicknames())
    rule = load_rules().household
    household = household_pairs(comparer, rule)
    found = ambiguous_at_address(comparer, rule, household)
    assert bool(found[0]) is ambiguous  # the pair (a, b)
    strict = rule.model_copy(update={"personal_address_confirms": False})
    assert bool(ambiguous_at_address(comparer, strict, household)[0]) is True
