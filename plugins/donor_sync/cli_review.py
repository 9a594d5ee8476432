"""``donor-sync review``: the dedup review queue -- list, show, approve, reject, defer; unmerge; refit.

The staging database is ``$DONOR_SYNC_DB_URL`` or the embedded server (as for every command).
``show`` prints both donors' fields so a person can judge the pair (an operator command: PII on
stdout, never in logs), and audits the view as ``pii.accessed``. Every decision is audited in
sync.audit_log as ``cli:<user>``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from donor_sync.cli_support import COUNT, ROW_ID, UUID_TEXT, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors

if TYPE_CHECKING:
    from donor_sync.resolve.review import Review


def _summary(review: Review) -> str:
    when = review.created_at.strftime("%Y-%m-%d %H:%M")
    decided = f" {review.decision} by {review.decided_by}" if review.decision else ""
    return (
        f"{review.review_id:>8}  {when}  score {review.score:.4f}  {review.status}{decided}  "
        f"{review.left_donor_id} ~ {review.right_donor_id}"
    )


@click.group("review")
def review_group() -> None:
    """Candidate duplicate donors: list, show both records, approve (merge), reject, defer."""


@review_group.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["pending", "deferred", "decided", "superseded"]),
    help="Statuses to list (default: pending and deferred).",
)
@click.option("--limit", type=COUNT, default=50, show_default=True)
@_friendly_errors
def list_command(statuses: tuple[str, ...], limit: int) -> None:
    """List reviews, highest score first (ids and scores; no names)."""
    from donor_sync.resolve.review import OPEN_STATUSES, count_reviews, list_reviews

    wanted = statuses or OPEN_STATUSES
    with connect_staging() as conn:
        reviews = list_reviews(conn, statuses=wanted, limit=limit)
        total = count_reviews(conn, statuses=wanted)
    for review in reviews:
        click.echo(_summary(review))
    click.echo(f"{len(reviews)} of {total} review(s) shown" if reviews else "nothing to review")


def _value(value: Any) -> str:
    if value is None or value == []:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@review_group.command("show")
@click.argument("review_id", type=ROW_ID)
@_friendly_errors
def show_command(review_id: int) -> None:
    """Show a pair side by side: both golden records, their source records, score and explanation."""
    from donor_sync.observability.audit import record_pii_access
    from donor_sync.resolve.review import SHOWN_FIELDS, get_review

    with connect_staging() as conn:
        detail = get_review(conn, review_id)
        review = detail.review
        record_pii_access(
            conn,
            actor=cli_actor(),
            object_type="review",
            object_id=str(review_id),
            details={
                "via": "cli",
                "view": "review",
                "donor_ids": [review.left_donor_id, review.right_donor_id],
                "records": len(detail.left_records) + len(detail.right_records),
            },
        )
        conn.commit()
    click.echo(_summary(review))
    click.echo("")
    click.echo(f"{'field':<20} {'left':<36} {'right':<36}")
    click.echo(f"{'donor_id':<20} {review.left_donor_id:<36} {review.right_donor_id:<36}")
    for name in SHOWN_FIELDS:
        left, right = _value(detail.left.get(name)), _value(detail.right.get(name))
        mark = "" if left == right else "  *"
        click.echo(f"{name:<20} {left:<36} {right:<36}{mark}")
    click.echo("")
    click.echo(f"score {review.score:.6f} (band {review.band}); per-field contributions (log2):")
    for name, part in sorted(review.contributions.items()):
        click.echo(f"  {name:<16} level {part.get('level')!s:<3} {float(part.get('weight', 0.0)):+8.2f}")
    for side, records in (("left", detail.left_records), ("right", detail.right_records)):
        click.echo("")
        click.echo(f"{side} records:")
        for record in records:
            when = record["attributes_at"].strftime("%Y-%m-%d") if record["attributes_at"] else "-"
            click.echo(f"  {record['system']}:{record['external_id']} ({record['role']}, {when})")
            click.echo(
                f"    {json.dumps(record['attributes'], ensure_ascii=False, sort_keys=True, default=str)}"
            )


def _decide(review_id: int, decision: str, note: str | None) -> None:
    from donor_sync.resolve import decide, load_resolve_rules

    rules = load_resolve_rules()
    with connect_staging() as conn:
        result = decide(conn, review_id, decision, actor=cli_actor(), rules=rules, note=note)  # type: ignore[arg-type]
        conn.commit()
    if result.status == "superseded":
        click.echo(f"review {review_id}: a donor of the pair was merged or erased since; marked superseded")
    elif decision == "approve":
        click.echo(
            f"review {review_id} approved: donor {result.merged_donor_id} merged into {result.survivor_id}"
            f" (decision {result.decision_id}; undo with `donor-sync review unmerge {result.decision_id}`)"
        )
    else:
        click.echo(f"review {review_id}: {result.status}")


_NOTE = click.option("--note", default=None, help="Why (kept with the review; no personal data please).")


@review_group.command("approve")
@click.argument("review_id", type=ROW_ID)
@_NOTE
@_friendly_errors
def approve_command(review_id: int, note: str | None) -> None:
    """Approve: the two donors are one person; merge them (reversible with unmerge)."""
    _decide(review_id, "approve", note)


@review_group.command("reject")
@click.argument("review_id", type=ROW_ID)
@_NOTE
@_friendly_errors
def reject_command(review_id: int, note: str | None) -> None:
    """Reject: two different people; the pair is never proposed again."""
    _decide(review_id, "reject", note)


@review_group.command("defer")
@click.argument("review_id", type=ROW_ID)
@_NOTE
@_friendly_errors
def defer_command(review_id: int, note: str | None) -> None:
    """Defer: keep the pair in the queue for later."""
    _decide(review_id, "defer", note)


@review_group.command("unmerge")
@click.argument("target", type=UUID_TEXT)
@_friendly_errors
def unmerge_command(target: str) -> None:
    """Undo a merge: TARGET is its decision id, or the id of the donor it merged away."""
    from donor_sync.resolve import load_resolve_rules, unmerge

    with connect_staging() as conn:
        result = unmerge(conn, target, actor=cli_actor(), rules=load_resolve_rules())
        conn.commit()
    revived = f"; donor {result.revived_donor_id} revived" if result.revived_donor_id else ""
    new = f"; records moved to new donor {result.new_donor_id}" if result.new_donor_id else ""
    click.echo(
        f"decision {result.decision_id} undone: {result.records_restored} record(s) restored{revived}{new}"
    )


@review_group.command("refit")
@click.option(
    "--min-labels",
    type=click.IntRange(min=1),
    default=None,
    help="Skip the refit with fewer decided reviews than this (default 20).",
)
@click.option("--dry-run", is_flag=True, help="Show the new weights and their agreement; store nothing.")
@_friendly_errors
def refit_command(min_labels: int | None, dry_run: bool) -> None:
    """Refit the match weights from the queue's decisions (approved: same donor, rejected: not).

    The fitted model becomes active for the current dedup rules; resolve scores with it from the
    next run. Prints how many labels it used, how well the old and the new weights agree with them,
    and each level whose weight moved.
    """
    from donor_sync.resolve import load_resolve_rules
    from donor_sync.resolve.match_models import DEFAULT_MIN_LABELS, refit_from_reviews

    with connect_staging() as conn:
        report = refit_from_reviews(
            conn,
            load_resolve_rules(),
            actor=cli_actor(),
            min_labels=min_labels or DEFAULT_MIN_LABELS,
            dry_run=dry_run,
        )
        conn.commit()
    click.echo(
        f"{report.labels} labelled pairs ({report.label_matches} approved, "
        f"{report.label_non_matches} rejected) for rules {report.rules_version}"
    )
    if report.skipped_reason:
        click.echo(f"not refitted: {report.skipped_reason}")
        return

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    click.echo(
        f"agreement with the decisions: {pct(report.agreement_before)} -> {pct(report.agreement_after)}"
    )
    for change in report.changes:
        click.echo(f"  {change.comparison} level {change.level}: {change.before:+.2f} -> {change.after:+.2f}")
    if report.model_id is None:
        click.echo("dry run: nothing stored")
    else:
        click.echo(f"model {report.model_id} stored and active")
