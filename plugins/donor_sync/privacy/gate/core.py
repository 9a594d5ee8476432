"""The consent and suppression gate: what of a batch of core rows may reach one destination.

The outbox (:func:`donor_sync.delivery.outbox.pipeline.prepare`) passes every batch it reads
through :meth:`DestinationGate.apply` before rendering, so dry runs and real runs see the same.
A row the gate blocks is not rendered: the outbox treats its record like one that left core
(pending work withdrawn, the mirror action for mirror objects). A gift, plan or household of a
blocked donor is blocked too (a household when none of its live members may go).

Why a donor is blocked, first that applies (each counted as run metric ``gate_blocked_<reason>``):

``tombstoned``   an identifier matches an erasure tombstone (erased people never come back);
``erased``       the donor is erased (read paths already skip them; kept as a safety net);
``residency``    the residency policy keeps the donor's region away from the destination's;
``do_not_share`` CCPA: a ``sharing`` opt-out on channel ``all``, and the destination is sharing;
``<reason>``     an active suppression whose reason the destination's policy lists (deceased,
                 do_not_contact, bounced...); deceased and do_not_contact also from the donor flags;
``no_consent``   a consent the destination requires is missing, expired or opted out.

Then each allowed row is minimized by the destination's profile (:mod:`donor_sync.privacy.profiles`):
fields a consent rule withholds are emptied (counted as ``gate_fields_withheld``), fields the
mapping does not read are removed, and the profile's pseudonymized, generalized and excluded
fields are applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from donor_sync.delivery.contracts import SOURCE_FIELDS
from donor_sync.errors import ConfigError
from donor_sync.privacy.gate.facts import DonorFacts, any_tombstones, household_members, read_facts
from donor_sync.privacy.gate.policy import DestinationPolicy, PrivacyPolicy, Residency, load_policy
from donor_sync.privacy.keys import KeyRing, KeySource, default_key_source, missing_ring_error
from donor_sync.privacy.profiles.minimize import Minimizer
from donor_sync.privacy.profiles.model import Profile, profile_for, profile_path
from donor_sync.privacy.profiles.reads import check_profile, fields_read

log = logging.getLogger(__name__)

#: Metric name prefix of blocked counts (another part sums every ``gate_*`` metric).
BLOCKED_METRIC = "gate_blocked_"
WITHHELD_METRIC = "gate_fields_withheld"


@dataclass
class GateResult:
    """What the gate let through of one batch."""

    kind: str
    rows_allowed: list[dict[str, Any]]
    #: Blocked rows per reason.
    blocked: dict[str, int] = field(default_factory=dict)
    #: Record keys of the blocked rows.
    blocked_keys: list[str] = field(default_factory=list)
    #: Field values withheld by consent rules (a null value withheld is not counted).
    fields_withheld: int = 0


def residency_region(facts: DonorFacts, residency: Residency) -> str | None:
    """Return the donor's residency region (None: unknown), first that is known: the donor's own
    ``residency_region``, its latest consent evidence, its country."""
    if facts.residency_region:
        return facts.residency_region.strip().lower()
    evidence = facts.evidence_residency or {}
    if evidence.get("region"):
        return str(evidence["region"]).strip().lower()
    if evidence.get("country"):
        return residency.region_of_country(str(evidence["country"]).strip())
    return residency.region_of_country(facts.country_code)


def _suppressed(facts: DonorFacts, policy: DestinationPolicy) -> str | None:
    reasons = set(facts.suppressions)
    if facts.is_deceased:
        reasons.add("deceased")
    if facts.do_not_contact:
        reasons.add("do_not_contact")
    return next((r for r in policy.suppressions if r in reasons), None)


def _unconsented(facts: DonorFacts, policy: DestinationPolicy) -> bool:
    return any(facts.status(c.purpose, c.channel) not in c.status_in for c in policy.requires)


def block_reason(facts: DonorFacts | None, policy: DestinationPolicy, residency: Residency) -> str | None:
    """Return why the donor may not reach the destination (None: it may)."""
    if facts is None:
        return "unknown_donor"
    checks: list[tuple[bool, str | None]] = [
        (facts.tombstoned, "tombstoned"),
        (facts.erased, "erased"),
        (not residency.allowed(residency_region(facts, residency), policy.region), "residency"),
        (policy.sharing and facts.status("sharing", "all") == "opt_out", "do_not_share"),
    ]
    reason = next((why for hit, why in checks if hit), None)
    return reason or _suppressed(facts, policy) or ("no_consent" if _unconsented(facts, policy) else None)


def _key_of(kind: str, row: Mapping[str, Any]) -> str:
    return str(
        row[{"donor": "donor_id", "household": "household_id", "gift": "gift_key"}.get(kind, "plan_key")]
    )


class DestinationGate:
    """The gate of one destination: its policy, its profile compiled per kind, its key rings.

    Counts accumulate over the batches it sees (:meth:`metrics`).
    """

    def __init__(
        self,
        destination: str,
        policy: PrivacyPolicy,
        profile: Profile,
        *,
        reads: Mapping[str, frozenset[str]] | None = None,
        keys: KeySource | None = None,
    ) -> None:
        self.destination = destination
        self.policy = policy.for_destination(destination)
        self.residency = policy.residency
        self.profile = profile
        self._keys = keys
        self._tombstones: bool | None = None
        pseudonym = self._ring("pseudonym") if any(r.pseudonymize for r in profile.kinds.values()) else None
        self.minimizers = {
            kind: Minimizer(
                kind, profile.for_kind(kind), pseudonym, reads.get(kind) if reads is not None else None
            )
            for kind in SOURCE_FIELDS
        }
        self.blocked: dict[str, int] = {}
        self.fields_withheld = 0

    def _source(self) -> KeySource:
        if self._keys is None:
            self._keys = default_key_source()
        return self._keys

    def _ring(self, purpose: str) -> KeyRing:
        source = self._source()
        ring = source.ring(purpose)
        if ring is None:
            raise missing_ring_error(purpose, source, needed_by=f" for the {self.destination} privacy gate")
        return ring

    def _tombstone_ring(self, conn: psycopg.Connection) -> KeyRing | None:
        if self._tombstones is None:
            self._tombstones = any_tombstones(conn)
        return self._ring("tombstone") if self._tombstones else None

    def facts(self, conn: psycopg.Connection, donor_ids: Iterable[str]) -> dict[str, DonorFacts]:
        """Return the facts of a set of donors (one query, and one for tombstones when any exist)."""
        return read_facts(conn, self.destination, donor_ids, tombstone_ring=self._tombstone_ring(conn))

    def decide(self, conn: psycopg.Connection, donor_ids: Iterable[str]) -> dict[str, str | None]:
        """Return, per donor id, why it is blocked (None: allowed)."""
        ids = set(donor_ids)
        facts = self.facts(conn, ids)
        return {d: block_reason(facts.get(d), self.policy, self.residency) for d in ids}

    def _verdicts(
        self, conn: psycopg.Connection, kind: str, batch: list[Mapping[str, Any]]
    ) -> tuple[dict[str, str | None], dict[str, DonorFacts]]:
        """Return why each row of the batch is blocked, by record key, and the facts read."""
        if kind == "household":
            members = household_members(conn, (str(r["household_id"]) for r in batch))
            facts = self.facts(conn, {d for ds in members.values() for d in ds})
            out: dict[str, str | None] = {}
            for household_id, donors in members.items():
                reasons = [block_reason(facts.get(d), self.policy, self.residency) for d in donors]
                allowed = any(r is None for r in reasons)
                out[household_id] = None if allowed else (reasons[0] if reasons else "no_member")
            return out, facts
        facts = self.facts(conn, {str(r["donor_id"]) for r in batch if r.get("donor_id")})
        verdicts: dict[str, str | None] = {}
        for row in batch:
            owner = row.get("donor_id")
            found = facts.get(str(owner)) if owner else None
            verdicts[_key_of(kind, row)] = block_reason(found, self.policy, self.residency)
        return verdicts, facts

    def _withhold(self, row: dict[str, Any], facts: DonorFacts | None) -> int:
        """Empty the fields of ``row`` a consent rule withholds; return how many held a value."""
        withheld = 0
        for rule in self.policy.fields_requiring_consent:
            if facts is not None and facts.status(rule.purpose, rule.channel) in rule.status_in:
                continue
            for name in rule.fields:
                if row.get(name) is not None:
                    withheld += 1
                row[name] = None
        return withheld

    def apply(self, conn: psycopg.Connection, kind: str, rows: Iterable[Mapping[str, Any]]) -> GateResult:
        """Return the rows of ``kind`` that may go, minimized, and what was blocked and withheld."""
        batch = list(rows)
        result = GateResult(kind, [])
        verdicts, facts = self._verdicts(conn, kind, batch)
        minimizer = self.minimizers[kind]
        for row in batch:
            key = _key_of(kind, row)
            reason = verdicts.get(key)
            if reason is not None:
                result.blocked[reason] = result.blocked.get(reason, 0) + 1
                result.blocked_keys.append(key)
                continue
            out = dict(row)
            if kind == "donor":
                result.fields_withheld += self._withhold(out, facts.get(key))
            result.rows_allowed.append(minimizer.apply(out))
        for reason, n in result.blocked.items():
            self.blocked[reason] = self.blocked.get(reason, 0) + n
        self.fields_withheld += result.fields_withheld
        return result

    def metrics(self) -> dict[str, int]:
        """Return the run metrics: ``gate_blocked_<reason>`` per reason and ``gate_fields_withheld``."""
        out = {f"{BLOCKED_METRIC}{reason}": n for reason, n in sorted(self.blocked.items())}
        out[WITHHELD_METRIC] = self.fields_withheld
        return out


def load_gate(
    destination: str,
    renderer: object | None = None,
    *,
    policy: PrivacyPolicy | None = None,
    profile: Profile | None = None,
    keys: KeySource | None = None,
) -> DestinationGate:
    """Return ``destination``'s gate from the shipped policy and profile (or those given).

    When ``renderer`` is the mapping engine's, the profile's default keeps exactly the fields the
    mapping reads, and a profile that disagrees with the mapping is refused.

    :raises ConfigError: no policy for the destination, an invalid file, or a profile that
        excludes a field the mapping reads (naming the file and field).
    """
    from donor_sync.delivery.outbox.renderer import MappingRenderer

    policy = policy or load_policy()
    policy.for_destination(destination)
    given = profile is not None
    profile = profile or profile_for(destination)
    reads = None
    mapping = getattr(renderer, "_mapping", None) if isinstance(renderer, MappingRenderer) else None
    if mapping is not None:
        problems = check_profile(profile, mapping)
        if problems:
            where = "profile" if given else str(profile_path(destination))
            raise ConfigError("; ".join(f"{where}: {p}" for p in problems))
        reads = fields_read(mapping)
    return DestinationGate(destination, policy, profile, reads=reads, keys=keys)


def apply(
    conn: psycopg.Connection,
    destination: str,
    kind: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    gate: DestinationGate | None = None,
) -> GateResult:
    """Pass one batch of core rows of ``kind`` through ``destination``'s gate (default: the shipped one)."""
    return (gate or load_gate(destination)).apply(conn, kind, rows)
