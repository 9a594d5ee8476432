"""Verify the hash chain of ``sync.audit_log`` and anchor its head (migration 0014).

Each audit row carries ``chain_seq`` (1, 2, 3... without gaps), ``prev_hash`` (its predecessor's
``row_hash``; 32 zero bytes for the first row) and ``row_hash = sha256(prev_hash ||
utf8(canonical text of the row))``, filled by a trigger. :func:`verify_chain` recomputes every hash
here, in Python, from the stored fields, streaming the log through a server-side cursor, and
reports the first row where the chain breaks:

``altered``
    the row's fields no longer hash to its ``row_hash`` (a field was changed);
``broken_link``
    the row's ``prev_hash`` is not its predecessor's ``row_hash`` (the predecessor was rewritten
    together with its own hash, or this row was re-linked);
``gap``
    a ``chain_seq`` is missing before this row: rows were deleted;
``anchor_mismatch``
    the row at an anchored position does not carry the anchored hash (the chain was rewritten
    from there on, hashes and all);
``truncated``
    an anchor names a position beyond the last row: the tail was deleted.

Anchors (``sync.audit_anchors``, :func:`anchor_head`) are only as good as the copies kept outside
the database: a superuser can rewrite the log and the anchors table alike. ``expected_anchors``
lets a caller check copies held elsewhere (a task log, a ticket, another system).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import psycopg

from donor_sync.errors import DonorSyncError

log = logging.getLogger(__name__)

GENESIS_HASH = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FETCH_ROWS = 5000

BreakReason = Literal["altered", "broken_link", "gap", "anchor_mismatch", "truncated"]


class AuditChainError(DonorSyncError):
    """The audit chain cannot be read (not migrated) or an anchor given is malformed."""


@dataclass(frozen=True)
class Anchor:
    """A recorded chain head: the row at ``chain_seq`` had ``row_hash`` (0 = the empty chain)."""

    chain_seq: int
    row_hash: bytes
    anchored_at: datetime | None = None
    anchored_by: str | None = None
    anchor_id: int | None = None

    @property
    def token(self) -> str:
        """Return the form to copy elsewhere and pass back to ``verify --expect``: ``SEQ:HEX``."""
        return f"{self.chain_seq}:{self.row_hash.hex()}"

    @classmethod
    def parse(cls, token: str) -> Anchor:
        """Read a ``SEQ:HEX`` token (as :attr:`token` prints it).

        :raises AuditChainError: it is not a sequence number and a 64-digit hex hash.
        """
        seq_text, _, hex_text = token.strip().partition(":")
        try:
            seq = int(seq_text)
            digest = bytes.fromhex(hex_text)
        except ValueError:
            digest = b""
            seq = -1
        if seq < 0 or len(digest) != 32:
            raise AuditChainError(
                f"anchor {token[:80]!r} is not SEQ:HEX (a sequence number and 64 hex digits)"
            )
        return cls(chain_seq=seq, row_hash=digest)


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold."""

    reason: BreakReason
    chain_seq: int
    audit_id: int | None  # None when the row is missing (truncated tail)
    detail: str

    def describe(self) -> str:
        """Return one line naming the row and what is wrong with it."""
        where = (
            f"audit_id {self.audit_id} (chain_seq {self.chain_seq})"
            if self.audit_id is not None
            else (f"chain_seq {self.chain_seq}")
        )
        return f"{where}: {self.reason}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    """Outcome of :func:`verify_chain`."""

    ok: bool
    rows_checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None  # hex of the last row's row_hash
    anchors_checked: int
    broken: ChainBreak | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (ids, positions and hashes only)."""
        data = asdict(self)
        data["checked_at"] = self.checked_at.isoformat()
        return data

    def summary(self) -> str:
        """Return one line for a terminal or a task log."""
        if self.broken is not None:
            return f"audit chain BROKEN at {self.broken.describe()}"
        if self.rows_checked == 0:
            return f"audit chain ok: no rows to check; {self.anchors_checked} anchor(s) checked"
        return (
            f"audit chain ok: {self.rows_checked} row(s), chain_seq {self.first_seq}..{self.last_seq}, "
            f"head {self.head_hash}; {self.anchors_checked} anchor(s) checked"
        )


def _field(value: str | None) -> str:
    return "-" if value is None else f"{len(value)}:{value}"


def canonical_text(
    *,
    audit_id: int,
    chain_seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details_text: str,
    run_id: UUID | str | None,
) -> str:
    """Return the canonical text of an audit row, as ``sync.audit_canonical`` builds it.

    :param details_text: the jsonb's own text form (``details::text``), not a re-serialized dict:
        Postgres decides key order and number spelling.
    """
    micros = (at - _EPOCH) // _MICROSECOND
    fields = [
        str(audit_id),
        str(chain_seq),
        str(micros),
        actor,
        action,
        object_type,
        object_id,
        details_text,
        None if run_id is None else str(run_id),
    ]
    return "v1|" + "|".join(_field(f) for f in fields)


def row_hash(prev_hash: bytes, canonical: str) -> bytes:
    """Return ``sha256(prev_hash || utf8(canonical))``."""
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()


def _load_anchors(conn: psycopg.Connection, since_seq: int) -> list[Anchor]:
    rows = conn.execute(
        "SELECT anchor_id, chain_seq, row_hash, anchored_at, anchored_by FROM sync.audit_anchors"
        " WHERE chain_seq >= %s ORDER BY chain_seq, anchor_id",
        (since_seq,),
    ).fetchall()
    return [Anchor(r[1], bytes(r[2]), r[3], r[4], r[0]) for r in rows]


def _check_table(conn: psycopg.Connection) -> None:
    found = conn.execute(
        "SELECT 1 FROM information_schema.columns"
        " WHERE table_schema = 'sync' AND table_name = 'audit_log' AND column_name = 'row_hash'"
    ).fetchone()
    if found is None:
        raise AuditChainError(
            "sync.audit_log has no hash chain: migration 0014_audit_chain is not applied"
            " (run `donor-sync db upgrade`)"
        )


def verify_chain(
    conn: psycopg.Connection,
    *,
    since_seq: int | None = None,
    expected_anchors: Iterable[Anchor] = (),
    use_stored_anchors: bool = True,
) -> ChainReport:
    """Recompute every hash of the audit chain and report the first break.

    Rows stream through a server-side cursor (constant memory whatever the log's size), in a
    transaction of its own on ``conn`` (a savepoint when the caller has one open). Writes nothing.

    :param since_seq: start at this ``chain_seq`` (its predecessor's stored hash is taken as the
        starting point); ``None`` checks from the first row, whose predecessor is the genesis hash.
    :param expected_anchors: heads recorded elsewhere (``SEQ:HEX``), checked like stored anchors.
    :param use_stored_anchors: also check the anchors in ``sync.audit_anchors``.
    :raises AuditChainError: the chain columns do not exist (migration 0014 not applied).
    """
    start = 1 if since_seq is None else max(1, since_seq)
    # A transaction of its own (a savepoint inside the caller's): the server-side cursor needs one.
    with conn.transaction():
        _check_table(conn)
        # Anchors first: any row they name was committed before the rows are read below.
        anchors = list(expected_anchors)
        if use_stored_anchors:
            anchors += _load_anchors(conn, start)
        anchors = [a for a in anchors if a.chain_seq >= start or (a.chain_seq == 0 and start == 1)]
        by_seq: dict[int, list[Anchor]] = {}
        for anchor in anchors:
            by_seq.setdefault(anchor.chain_seq, []).append(anchor)
        report = _walk(conn, start, by_seq, anchors_checked=len(anchors))
    if report.broken is not None:
        log.warning("audit chain broken: %s", report.broken.describe())
    return report


def _anchor_source(anchor: Anchor) -> str:
    return f"anchor {anchor.anchor_id}" if anchor.anchor_id is not None else "the expected anchor"


def _check_row(
    row: tuple[Any, ...], expected_seq: int, prev_hash: bytes, anchors: list[Anchor]
) -> ChainBreak | None:
    """Return how one streamed row breaks the chain, or None when it holds."""
    audit_id, seq, at, actor, action, object_type, object_id, details_text, run_id, prev_raw, stored_raw = row
    prev, stored = bytes(prev_raw), bytes(stored_raw)
    if seq != expected_seq:
        missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
        return ChainBreak("gap", seq, audit_id, f"chain_seq {missing} missing before it (rows deleted)")
    if prev != prev_hash:
        return ChainBreak(
            "broken_link",
            seq,
            audit_id,
            "prev_hash is not the row_hash of the row before it (that row or this one was rewritten)",
        )
    canonical = canonical_text(
        audit_id=audit_id,
        chain_seq=seq,
        at=at,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details_text=details_text,
        run_id=run_id,
    )
    if row_hash(prev, canonical) != stored:
        return ChainBreak("altered", seq, audit_id, "its fields no longer match its row_hash (row altered)")
    for anchor in anchors:
        if anchor.row_hash != stored:
            return ChainBreak(
                "anchor_mismatch",
                seq,
                audit_id,
                f"row_hash differs from {_anchor_source(anchor)} ({anchor.row_hash.hex()[:16]}…):"
                " chain rewritten",
            )
    return None


def _start_hash(conn: psycopg.Connection, start: int) -> bytes | None:
    """Return the hash the row at ``start`` must link to (None: its predecessor is missing)."""
    if start == 1:
        return GENESIS_HASH
    row = conn.execute("SELECT row_hash FROM sync.audit_log WHERE chain_seq = %s", (start - 1,)).fetchone()
    return None if row is None else bytes(row[0])


def _walk(
    conn: psycopg.Connection, start: int, by_seq: dict[int, list[Anchor]], *, anchors_checked: int
) -> ChainReport:
    checked = 0
    first_seq: int | None = None
    last_hash: bytes | None = None
    end = start - 1  # chain_seq of the last row that held

    def report(brk: ChainBreak | None) -> ChainReport:
        head = None if last_hash is None else last_hash.hex()
        last = None if first_seq is None else end
        return ChainReport(brk is None, checked, first_seq, last, head, anchors_checked, brk)

    prev_hash = _start_hash(conn, start)
    if prev_hash is None:
        return report(
            ChainBreak("gap", start - 1, None, f"chain_seq {start - 1}, before the start, is missing")
        )
    if any(a.row_hash != GENESIS_HASH for a in by_seq.get(0, [])):
        return report(
            ChainBreak("anchor_mismatch", 0, None, "an anchor of the empty chain has a non-genesis hash")
        )
    with conn.cursor(name="donor_sync_audit_verify") as cur:
        cur.itersize = _FETCH_ROWS
        cur.execute(
            "SELECT audit_id, chain_seq, at, actor, action, object_type, object_id, details::text,"
            " run_id, prev_hash, row_hash FROM sync.audit_log WHERE chain_seq >= %s ORDER BY chain_seq",
            (start,),
        )
        for row in cur:
            brk = _check_row(row, end + 1, prev_hash, by_seq.get(row[1], []))
            if brk is not None:
                return report(brk)
            first_seq = row[1] if first_seq is None else first_seq
            checked += 1
            end = row[1]
            prev_hash = last_hash = bytes(row[10])
    beyond = [a for group in by_seq.values() for a in group if a.chain_seq > end]
    if beyond:
        furthest = max(beyond, key=lambda a: a.chain_seq)
        detail = (
            f"{_anchor_source(furthest)} recorded chain_seq {furthest.chain_seq} but the chain ends at {end}"
        )
        return report(ChainBreak("truncated", furthest.chain_seq, None, detail + ": tail deleted"))
    return report(None)


def anchor_head(conn: psycopg.Connection, actor: str) -> Anchor:
    """Record the current chain head in ``sync.audit_anchors`` and audit it; return the anchor.

    The head is read under the chain's lock, so it is the head of committed rows at that moment.
    Copy :attr:`Anchor.token` somewhere outside the database (the nightly task log prints it).
    Not committed.
    """
    from donor_sync.observability.audit import record

    _check_table(conn)
    conn.execute("SELECT pg_advisory_xact_lock(7404127650913)")  # same key as the chain trigger
    head = conn.execute(
        "SELECT chain_seq, row_hash FROM sync.audit_log ORDER BY chain_seq DESC LIMIT 1"
    ).fetchone()
    seq, digest = (0, GENESIS_HASH) if head is None else (int(head[0]), bytes(head[1]))
    row = conn.execute(
        "INSERT INTO sync.audit_anchors (chain_seq, row_hash, anchored_by) VALUES (%s, %s, %s)"
        " RETURNING anchor_id, anchored_at",
        (seq, digest, actor),
    ).fetchone()
    assert row is not None
    anchor = Anchor(seq, digest, row[1], actor, int(row[0]))
    record(
        conn,
        actor=actor,
        action="audit.anchored",
        object_type="audit_anchor",
        object_id=str(anchor.anchor_id),
        details={"chain_seq": seq, "row_hash": digest.hex()},
    )
    log.info("audit chain anchored at %s", anchor.token)
    return anchor
