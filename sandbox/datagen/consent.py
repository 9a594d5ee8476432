"""Draw consent choices of every kind (opt-in, soft opt-in, opt-out per channel and purpose)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sandbox.datagen.arrays import STR, IntArray, StrArray, cat
from sandbox.datagen.people import Table

#: (channel, purpose, P(opt_in), P(soft_opt_in), P(opt_out)); the rest of the mass is "no choice recorded"
CHOICES = (
    ("email", "newsletter", 0.45, 0.12, 0.12),
    ("email", "fundraising", 0.30, 0.18, 0.10),
    ("sms", "fundraising", 0.10, 0.0, 0.05),
    ("mail", "fundraising", 0.05, 0.0, 0.08),
    ("phone", "fundraising", 0.02, 0.0, 0.06),
)
STATUSES = np.array(["opt_in", "soft_opt_in", "opt_out"], dtype=STR)


def make_consents(rng: np.random.Generator, gifts: Table, n_persons: int) -> Table:
    """Draw consent events, each captured on one of the person's gifts (its source record)."""
    person = gifts["person_idx"]
    order = np.argsort(person, kind="stable")
    counts = np.bincount(person, minlength=n_persons)
    starts = np.cumsum(counts) - counts
    has_gift = counts > 0
    frames: list[pd.DataFrame] = []
    for channel, purpose, p_in, p_soft, p_out in CHOICES:
        r = rng.random(n_persons)
        status = np.where(
            r < p_in, 0, np.where(r < p_in + p_soft, 1, np.where(r < p_in + p_soft + p_out, 2, -1))
        )
        who = np.flatnonzero((status >= 0) & has_gift)
        carrier = order[starts[who] + (rng.random(len(who)) * counts[who]).astype(np.int64)]
        frames.append(
            pd.DataFrame(
                {
                    "person_idx": who,
                    "gift": carrier,
                    "channel": channel,
                    "purpose": purpose,
                    "status": STATUSES[status[who]].tolist(),
                }
            )
        )
        if channel == "email" and purpose == "newsletter":
            # Some who opted in change their mind later, on their latest gift.
            latest = order[starts[who] + counts[who] - 1]
            change = (
                (status[who] == 0)
                & (gifts["ts"][latest] > gifts["ts"][carrier])
                & (rng.random(len(who)) < 0.1)
            )
            frames.append(
                pd.DataFrame(
                    {
                        "person_idx": who[change],
                        "gift": latest[change],
                        "channel": channel,
                        "purpose": purpose,
                        "status": "opt_out",
                    }
                )
            )
    events = pd.concat(frames, ignore_index=True).sort_values(["gift", "channel", "purpose"], kind="stable")
    status_arr = np.asarray(events["status"].to_numpy(), dtype=STR)
    basis = np.select(
        [status_arr == "opt_in", status_arr == "soft_opt_in"],
        [np.asarray("consent", dtype=STR), np.asarray("legitimate_interest", dtype=STR)],
        default=np.asarray("withdrawn", dtype=STR),
    ).astype(STR)
    gift_idx = events["gift"].to_numpy(dtype=np.int64)
    return {
        "person_idx": events["person_idx"].to_numpy(dtype=np.int64),
        "gift": gift_idx,
        "channel": np.asarray(events["channel"].to_numpy(), dtype=STR),
        "purpose": np.asarray(events["purpose"].to_numpy(), dtype=STR),
        "status": status_arr,
        "basis": basis,
        "ts": gifts["ts"][gift_idx],
    }


def preferences_per_gift(consents: Table, n_gifts: int) -> StrArray:
    """Encode each gift's consent events as ``email.newsletter=opt_in;sms.fundraising=opt_out``."""
    pairs = cat(consents["channel"], ".", consents["purpose"], "=", consents["status"])
    gift = consents["gift"]  # sorted by gift
    out = np.full(n_gifts, "", dtype=STR)
    if not len(gift):
        return out
    starts = np.r_[0, np.flatnonzero(np.diff(gift)) + 1]
    position = np.arange(len(gift)) - np.repeat(starts, np.diff(np.r_[starts, len(gift)]))
    for j in range(int(position.max()) + 1):
        at = position == j
        sep = ";" if j else ""
        out[gift[at]] = cat(out[gift[at]], sep, pairs[at])
    return out


def email_opt_in(consents: Table, n_gifts: int) -> IntArray:
    """Return per gift 1 (newsletter opt-in captured), 0 (opt-out captured) or -1 (nothing captured)."""
    out = np.full(n_gifts, -1, dtype=np.int64)
    mask = (consents["channel"] == "email") & (consents["purpose"] == "newsletter")
    out[consents["gift"][mask]] = np.where(consents["status"][mask] == "opt_out", 0, 1)
    return out
