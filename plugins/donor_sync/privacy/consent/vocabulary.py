"""The consent vocabulary (``core.consent_purpose``, ``core.consent_channel``, ``core.consent_status``)."""

from __future__ import annotations

from typing import Literal

Purpose = Literal["marketing", "fundraising", "profiling", "sharing"]
Channel = Literal["email", "sms", "phone", "mail", "all"]
Status = Literal["opt_in", "soft_opt_in", "opt_out"]
LawfulBasis = Literal[
    "consent", "legitimate_interests", "contract", "legal_obligation", "vital_interests", "public_task"
]

PURPOSES: tuple[Purpose, ...] = ("marketing", "fundraising", "profiling", "sharing")
#: The channels a choice is made on; ``all`` stands for every one of them.
CONCRETE_CHANNELS: tuple[Channel, ...] = ("email", "sms", "phone", "mail")
CHANNELS: tuple[Channel, ...] = (*CONCRETE_CHANNELS, "all")
STATUSES: tuple[Status, ...] = ("opt_in", "soft_opt_in", "opt_out")

#: How restrictive a status is: across merged donors, and between choices made at the same
#: instant, the higher rank wins (opt_out > soft_opt_in > opt_in).
RESTRICTIVENESS: dict[str, int] = {"opt_in": 1, "soft_opt_in": 2, "opt_out": 3}

#: The lawful basis a status is recorded under when its source does not say.
DEFAULT_BASIS: dict[str, LawfulBasis | None] = {
    "opt_in": "consent",
    "soft_opt_in": "legitimate_interests",
    "opt_out": None,
}
