"""``donor-sync audit`` (verify and anchor the audit log's hash chain) and ``donor-sync compliance``.

``audit verify`` recomputes every hash of sync.audit_log and checks the recorded anchors (and any
given with ``--expect``); exit status 0 when the chain holds, 1 when it is broken (the message
names the first broken row's audit_id), 2 on a usage error. ``audit anchor`` records the current
head and prints it as ``SEQ:HEX``: keep that line somewhere the database's owner cannot rewrite.

``compliance report`` prints the evidence for a period (ids and counts only, never PII).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from donor_sync.cli_support import ROW_ID, cli_actor, connect_staging
from donor_sync.cli_support import friendly_errors as _friendly_errors


@click.group("audit")
def audit_group() -> None:
    """The audit log's hash chain: verify it, anchor its head."""


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--since-seq",
    type=ROW_ID,
    default=None,
    help="Start at this chain position (trusting the row before it); default: the first row.",
)
@click.option(
    "--expect",
    "expected",
    multiple=True,
    metavar="SEQ:HEX",
    help="An anchor kept outside the database (as `audit anchor` printed it); repeatable.",
)
@_friendly_errors
def verify_command(as_json: bool, since_seq: int | None, expected: tuple[str, ...]) -> None:
    """Recompute every hash of the audit log; exit 1 naming the first broken row."""
    from donor_sync.privacy.audit_chain import Anchor, verify_chain

    anchors = [Anchor.parse(token) for token in expected]
    with connect_staging() as conn:
        report = verify_chain(conn, since_seq=since_seq, expected_anchors=anchors)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        click.echo(report.summary(), err=not report.ok)
    if not report.ok:
        raise SystemExit(1)


@audit_group.command("anchor")
@click.option("--json", "as_json", is_flag=True, help="Print the anchor as JSON.")
@_friendly_errors
def anchor_command(as_json: bool) -> None:
    """Record the chain's current head in sync.audit_anchors and print it (SEQ:HEX)."""
    from donor_sync.privacy.audit_chain import anchor_head

    with connect_staging() as conn:
        anchor = anchor_head(conn, cli_actor())
        conn.commit()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "anchor_id": anchor.anchor_id,
                    "chain_seq": anchor.chain_seq,
                    "row_hash": anchor.row_hash.hex(),
                    "anchored_at": anchor.anchored_at.isoformat() if anchor.anchored_at else None,
                    "token": anchor.token,
                }
            )
        )
    else:
        click.echo(f"audit anchor {anchor.anchor_id}: {anchor.token}")


@click.group("compliance")
def compliance_group() -> None:
    """Evidence for a compliance review."""


@compliance_group.command("report")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="First day (UTC).")
@click.option(
    "--until", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="Last day (UTC), included."
)
@click.option("--json", "as_json", is_flag=True, help="Write JSON instead of text.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the report to this file instead of stdout.",
)
@click.option("--skip-audit-verify", is_flag=True, help="Do not recompute the audit chain (faster).")
@_friendly_errors
def report_command(
    since: datetime, until: datetime, as_json: bool, out: Path | None, skip_audit_verify: bool
) -> None:
    """Summarize consent enforcement, suppressions, privacy requests, receipts and purges for a period."""
    from donor_sync.privacy.compliance_report import build_report

    with connect_staging() as conn:
        report = build_report(
            conn, since=since.date(), until=until.date(), verify_audit=not skip_audit_verify
        )
    text = json.dumps(report.as_json(), indent=2) + "\n" if as_json else report.as_text()
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
