"""The household rule: same surname and address, clearly different first name -> a household.

Two people at one address with one surname and different first names are most often a couple, a
parent and child, or siblings: different donors who share a mailbox. Fellegi-Sunter scoring counts
the surname, address and (often shared) phone agreements as independent evidence and would happily
merge them, so this rule overrides the score: such a pair is a household link, never a merge.

"Clearly different" first names: both present, at least ``first_name_min_edits``
Damerau-Levenshtein edits apart (a typo is one edit) or one edit apart but both known given names
of the nickname table (Mark and Mary), neither an initial of the other, and not
nickname-equivalent (Robert and Bob are one person; Robert and Mary are two). A pair that shares a
birth date or an external id (``unless_equal``) is not a household: it is one person whose first
name was garbled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from donor_sync.identity.comparisons import PairComparer
from donor_sync.identity.nicknames import Nicknames
from donor_sync.identity.rules import Household


def _different(a: str, b: str, nicknames: Nicknames, min_edits: int) -> bool:
    """Return whether two first names are clearly two people's (see the module docstring)."""
    if a == b or nicknames.equivalent(a, b):
        return False
    if (len(a) <= 2 and b.startswith(a)) or (len(b) <= 2 and a.startswith(b)):
        return False  # an initial
    if DamerauLevenshtein.distance(a, b) >= min_edits:
        return True
    # one edit apart: a typo, unless both are real given names (mark / mary, joan / john)
    return a in nicknames.groups and b in nicknames.groups


def same_address(comparer: PairComparer, rule: Household) -> np.ndarray:
    """Return which pairs share an address: house number, similar street line, postcode or city."""
    number = comparer.column("street_number")
    street = comparer.column("street")
    postcode, city = comparer.column("zip5"), comparer.column("city")
    return np.asarray(
        number.valid
        & (number.left == number.right)
        & street.valid
        & (street.metric("jaro_winkler") >= rule.street_min_similarity)
        & ((postcode.valid & (postcode.left == postcode.right)) | (city.valid & (city.left == city.right))),
        dtype=bool,
    )


def _equal(comparer: PairComparer, columns: list[str]) -> np.ndarray:
    """Return which pairs are present and equal on at least one of ``columns``."""
    out = np.zeros(len(comparer.left), dtype=bool)
    for name in columns:
        col = comparer.column(name)
        out |= col.valid & (col.left == col.right)
    return out


def ambiguous_at_address(
    comparer: PairComparer, rule: Household, household: np.ndarray | None = None
) -> np.ndarray:
    """Return pairs that could as well be two members of one household (mostly at one address).

    Those are never merged automatically; the review queue decides. At one address (see
    :func:`same_address`), that is a pair where:

    - no personal identifier of ``merge_needs_identifier`` (email, birth date, external id; or a
      phone or address that is the person's own, see ``household`` below) is present and equal
      on both sides. The surname, the address and the household phone are shared by every
      member, and two members' first names may be equal (two Mary Smiths: a mother and
      daughter, namesakes) or close (Chris / Christina, Jon / Joan, Sara / Sandra), so nothing
      else there tells one person from two;
    - one first name is only an initial of the other (M. and Mary, or M. and Matthew?);
    - (with ``review_contact_conflicts``) both have an email address, or a phone, and they differ
      while the other contact does not confirm the pair (John Smith Sr and Jr).

    And, at any address, a pair that shares a phone and whose first names are not equal, without
    a shared identifier of ``merge_needs_identifier``: a member who moved out keeps the household
    phone (Sara and Sarah Castillo).

    :param household: the pairs' household links (:func:`household_pairs`). With
        ``personal_phone_confirms``, a shared phone counts as an identifier for equal or
        nickname-equivalent first names unless a household link among these pairs shares that
        phone too (then it is the household's phone, which members share); with
        ``personal_address_confirms`` so does an address that no household link touches.
    """
    n = len(comparer.left)
    if not rule.enabled or n == 0:
        return np.zeros(n, dtype=bool)
    at_address = same_address(comparer, rule)
    email, phone, first = comparer.column("email"), comparer.column("phone"), comparer.column("first_name")
    same_phone = phone.valid & (phone.left == phone.right)
    same_email = email.valid & (email.left == email.right)
    inexact = first.valid & (first.left != first.right)
    identified = np.ones(n, dtype=bool)
    if rule.merge_needs_identifier:
        identified = _equal(comparer, rule.merge_needs_identifier)
        if rule.personal_phone_confirms and household is not None:
            # a phone no household link shares is the person's own, and confirms like an email --
            # for one first name or nicknames of it, not for two names a typo apart (Sara / Sarah,
            # Bryan / Brian, Sean / Jean: two members of a two-person household, no link between)
            shared = np.zeros(len(phone.uniques) + 1, dtype=bool)
            shared[phone.left[household & same_phone]] = True
            fuzzy = inexact & ~first.on_pairs(comparer.nicknames.equivalent_many).astype(bool)
            identified |= same_phone & ~shared[phone.left] & ~fuzzy
            if rule.personal_address_confirms:
                # likewise an address no household link touches: no sign of a second member there
                address = comparer.column("address")
                linked = np.zeros(len(address.uniques) + 1, dtype=bool)
                linked[address.left[household]] = True
                linked[address.right[household]] = True
                linked[-1] = True  # no address: nothing known
                identified |= ~linked[address.left] & ~linked[address.right] & ~fuzzy
    # a member who moved out keeps the household phone: off the address, a shared phone with first
    # names that are not equal (Sara / Sarah) needs an identifier as much as a shared address does
    household_phone = same_phone & inexact & ~identified
    conflict = np.zeros(n, dtype=bool)
    if rule.review_contact_conflicts:
        conflict = (email.valid & ~same_email & ~same_phone) | (phone.valid & ~same_phone & ~same_email)
    initial = first.valid & (first.left != first.right)
    initial &= first.on_pairs(
        lambda a, b: [
            (len(x) <= 2 and y.startswith(x)) or (len(y) <= 2 and x.startswith(y))
            for x, y in zip(a, b, strict=True)
        ]
    ).astype(bool)
    unconfirmed = ~identified
    return np.asarray((at_address & (conflict | initial | unconfirmed)) | household_phone, dtype=bool)


def name_part_conflicts(comparer: PairComparer, rule: Household) -> np.ndarray:
    """Return pairs whose names disagree on a generation suffix or a middle initial.

    John Smith Jr and John Smith Sr (or III) are two people, as are John A. Smith and John B.
    Smith: both present and different keeps the pair from merging automatically. At one address
    (:func:`same_address`) a generation suffix on one side only does too: John Smith and John Smith
    Jr at one address are father and son as often as one man. Records prepared without the name
    parts (``middle_initial``, ``generation``: see
    :data:`~donor_sync.identity.columns.NAME_PART_COLUMNS`) are not checked.
    """
    n = len(comparer.left)
    out = np.zeros(n, dtype=bool)
    if not rule.review_name_part_conflicts or n == 0:
        return out
    columns = comparer.prepared.frame.columns
    if "generation" in columns:
        generation = comparer.column("generation")
        out |= generation.valid & (generation.left != generation.right)
        one_sided = (generation.left >= 0) != (generation.right >= 0)
        if one_sided.any() and rule.enabled:
            out |= one_sided & same_address(comparer, rule)
    if "middle_initial" in columns:
        middle = comparer.column("middle_initial")
        out |= middle.valid & (middle.left != middle.right)
    return out


def distinct_given_names(comparer: PairComparer) -> np.ndarray:
    """Return pairs whose first names are two different known given names (Charles / Charlotte,
    Jose / Joseph): close in spelling, so a fuzzy level scores them, but not a typo of one another
    nor nicknames. Such a pair is never merged automatically."""
    first = comparer.column("first_name")
    nicknames = comparer.nicknames
    known = nicknames.groups
    differ = first.valid & (first.left != first.right)
    if not differ.any():
        return np.asarray(differ, dtype=bool)
    both_known = first.on_pairs(
        lambda a, b: [
            x in known and y in known and not nicknames.equivalent(x, y) for x, y in zip(a, b, strict=True)
        ]
    ).astype(bool)
    return np.asarray(differ & both_known, dtype=bool)


def household_pairs(comparer: PairComparer, rule: Household) -> np.ndarray:
    """Return which pairs of ``comparer`` are household links (bool per pair).

    The shared surname may sit in either name field of either record (a record with first and
    last name swapped still shows its household).
    """
    n = len(comparer.left)
    if not rule.enabled or n == 0:
        return np.zeros(n, dtype=bool)
    at_address = same_address(comparer, rule) & ~_equal(comparer, rule.unless_equal)
    rows = np.flatnonzero(at_address)
    out = np.zeros(n, dtype=bool)
    if len(rows) == 0:
        return out
    frame = comparer.prepared.frame
    first = frame["first_name"].to_numpy(dtype=object, na_value=None)
    last = frame["last_name"].to_numpy(dtype=object, na_value=None)
    left, right = comparer.left[rows], comparer.right[rows]
    names = zip(first[left], last[left], first[right], last[right], strict=True)
    nicknames, edits, similar = comparer.nicknames, rule.first_name_min_edits, rule.last_name_min_similarity
    verdict = []
    for fl, ll, fr, lr in names:
        found = False
        # (shared surname on each side, the other names): straight, then either side swapped
        orientations = ((ll, lr, fl, fr), (ll, fr, fl, lr), (fl, lr, ll, fr), (fl, fr, ll, lr))
        for turn, (shared_l, shared_r, other_l, other_r) in enumerate(orientations):
            if shared_l is None or shared_r is None or other_l is None or other_r is None:
                continue
            if turn == 3 and shared_l in nicknames.groups:
                continue  # both swapped only when the shared name is no given name (else: a new surname)
            if JaroWinkler.normalized_similarity(shared_l, shared_r) >= similar and _different(
                other_l, other_r, nicknames, edits
            ):
                found = True
                break
        verdict.append(found)
    out[rows] = np.asarray(verdict, dtype=bool)
    return out


def household_ids(
    clusters: np.ndarray, left: np.ndarray, right: np.ndarray, household: np.ndarray
) -> np.ndarray:
    """Return a household number per record (-1: none) from household links between clusters.

    Households are the connected components of the household links over clusters; a household
    has at least two clusters (two donors).
    """
    from donor_sync.identity.clustering import connected_components

    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0
    a, b = clusters[left[household]], clusters[right[household]]
    keep = a != b
    labels = connected_components(n_clusters, a[keep], b[keep])
    sizes = np.bincount(labels, minlength=n_clusters)
    in_household = sizes[labels] >= 2
    per_cluster = np.full(n_clusters, -1, dtype=np.int64)
    per_cluster[in_household] = pd.factorize(labels[in_household])[0]
    return np.asarray(per_cluster[clusters], dtype=np.int64)
