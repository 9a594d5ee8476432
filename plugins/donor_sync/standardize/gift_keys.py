"""The cross-platform gift key: one gift seen through two platforms gets one key on both sides.

A Donorbox or Classy gift paid by card is also a Stripe charge; both land in raw, and core must
count the gift once. Each side computes the key from its own record alone (no lookup of the other
side, which may arrive in another run or never), so the rule uses only links each side carries:

- Donorbox writes the charge id on its donation (``stripe_charge_id``), and Stripe knows its own
  charge id: both sides can name the **processor's payment**, ``stripe:ch_...``.
- Classy does not give the processor's payment id in a transaction; the Stripe charge names the
  Classy transaction in its metadata (``classy_transaction_id``): both sides can name the
  **platform's gift**, ``classy:7000...``.

Rule, first match wins (``key_by_platform_id`` in standardize.yaml lists the platforms like Classy):

1. a record naming a linked gift of a platform in ``key_by_platform_id`` → ``<platform>:<that id>``
   (a Stripe charge made by Classy);
2. a record of a platform in ``key_by_platform_id`` → ``<platform>:<its gift id>`` (the Classy
   transaction itself);
3. a record that names the processor's payment id → ``<processor>:<payment id>`` (a Stripe charge:
   ``stripe:ch_...``; a Donorbox card donation: ``stripe:<its stripe_charge_id>``; a Donorbox PayPal
   donation: ``paypal:<transaction id>``, unique since PayPal is not a source);
4. otherwise → ``<source>:<gift id>`` (CSV rows, records without a processor id).

Every linked pair therefore shares a key, and unlinked gifts never do (keys embed the issuer's
own unique id). Checked on generated data against ``truth/gift_links.csv``
(tests/standardize/test_pipeline_gift_keys.py). A key is stable across versions of one gift as
long as its links do not change; a Donorbox donation whose charge id appeared only later would
change key (not seen with Donorbox, which sets it when the card is charged).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from donor_sync.standardize.fields.result import STRING


def _system(values: pd.Series) -> pd.Series:
    """Return a text as a key prefix: lower case, anything but a-z, 0-9 and _ as _."""
    return values.str.strip().str.lower().str.replace(r"[^a-z0-9_]+", "_", regex=True)


def _present(values: pd.Series) -> np.ndarray:
    out: np.ndarray = (values.notna() & values.str.strip().ne("")).fillna(False).to_numpy(dtype=bool)
    return out


def gift_keys(frame: pd.DataFrame, *, key_by_platform_id: Collection[str]) -> pd.Series:
    """Return the gift key of each row of a projection frame (see the module docstring).

    Uses the columns source, gift_source_id, processor, processor_transaction_id, linked_source
    and linked_gift_id. Rows without a gift id get NA (they are quarantined for it).
    """
    platforms = list(key_by_platform_id)
    source = frame["source"].astype(STRING)
    own_id = frame["gift_source_id"].astype(STRING).str.strip()
    processor = _system(frame["processor"].astype(STRING))
    payment_id = frame["processor_transaction_id"].astype(STRING).str.strip()
    linked_source = _system(frame["linked_source"].astype(STRING))
    linked_id = frame["linked_gift_id"].astype(STRING).str.strip()

    by_link = _present(linked_id) & linked_source.isin(platforms).fillna(False).to_numpy(dtype=bool)
    by_platform = source.isin(platforms).fillna(False).to_numpy(dtype=bool)
    by_processor = _present(payment_id) & processor.str.match(r"^[a-z][a-z0-9_]*$").fillna(False).to_numpy(
        dtype=bool
    )
    own = source + ":" + own_id
    key = own.copy()
    key[by_processor] = (processor + ":" + payment_id)[by_processor]
    key[by_platform] = own[by_platform]
    key[by_link] = (linked_source + ":" + linked_id)[by_link]
    return key.where(_present(own_id) | by_link).astype(STRING)


def recurring_keys(frame: pd.DataFrame, is_recurring: pd.Series) -> pd.Series:
    """Return ``<source>:<plan id>`` for recurring gifts that name their plan, else NA."""
    plan = frame["recurring_source_id"].astype(STRING).str.strip()
    key = frame["source"].astype(STRING) + ":" + plan
    return key.where(_present(plan) & is_recurring.to_numpy(dtype=bool)).astype(STRING)
