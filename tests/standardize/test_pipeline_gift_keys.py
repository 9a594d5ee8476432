"""Cross-platform gift keys on generated data: a gift paid through Stripe for Donorbox or Classy
gets one key on both sides (truth/gift_links.csv); no two unlinked gifts share a key.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import psycopg

from donor_sync.standardize.gift_keys import gift_keys
from tests.standardize.test_pipeline_support import OBJECTS, land_and_standardize, sample, truth_rows


def test_linked_gifts_share_a_key_and_unlinked_gifts_never_do(db: psycopg.Connection) -> None:
    data = sample(donors=400, seed=3)
    land_and_standardize(db, data)
    keys = {
        (source, entity, source_id): key
        for source, entity, source_id, key in db.execute(
            "SELECT source, entity, source_id, gift_key FROM staging.gifts"
        ).fetchall()
    }
    links = truth_rows(data, "gift_links")
    assert len(links) > 50
    checked = 0
    pairs: set[frozenset[tuple[str, str, str]]] = set()
    for link in links:
        charge = ("stripe", "charge", link["stripe_charge_id"])
        other = (*OBJECTS[link["other_source"]], link["other_record_id"])
        pairs.add(frozenset({charge, other}))
        if charge in keys and other in keys:  # both staged (a bad record may be quarantined)
            assert keys[charge] == keys[other], f"{charge} and {other} differ: {keys[charge]} {keys[other]}"
            checked += 1
    assert checked >= 0.9 * len(links)
    holders: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for gift, key in keys.items():
        holders[key].append(gift)
    shared = [frozenset(gifts) for gifts in holders.values() if len(gifts) > 1]
    assert shared, "no key is shared: the linked pairs were not found"
    for gifts in shared:
        assert gifts in pairs, f"unlinked gifts share a key: {sorted(gifts)}"
    # Classy-linked pairs are keyed by the Classy transaction, Donorbox ones by the Stripe charge.
    prefixes = {key.split(":")[0] for key, gifts in holders.items() if len(gifts) > 1}
    assert prefixes == {"classy", "stripe"}


def test_the_rule_on_its_own() -> None:
    frame = pd.DataFrame(
        {
            "source": ["stripe", "stripe", "classy", "donorbox", "donorbox", "bank_cheque", "stripe"],
            "gift_source_id": ["ch_1", "ch_2", "700", "400", "401", "CHQ-1", None],
            "processor": ["stripe", "stripe", "stripe", "stripe", "paypal", None, "stripe"],
            "processor_transaction_id": ["ch_1", "ch_2", None, "ch_1", "PP9", None, None],
            "linked_source": [None, "classy", None, None, None, None, None],
            "linked_gift_id": [None, "700", None, None, None, None, None],
        },
        dtype="string[pyarrow]",
    )
    keys = gift_keys(frame, key_by_platform_id=["classy"]).tolist()
    assert keys[:6] == [
        "stripe:ch_1",  # a Stripe charge: the processor's id
        "classy:700",  # a charge Classy made: Classy's id, which its transaction also has
        "classy:700",
        "stripe:ch_1",  # a Donorbox card gift names the charge: the same key as the charge
        "paypal:PP9",
        "bank_cheque:CHQ-1",
    ]
    assert pd.isna(keys[6])  # no gift id: no key (the record is quarantined for it)
