"""The gift side of resolve: one core gift per gift key, merged sources, versions, pending gifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import psycopg

from donor_sync.resolve.aggregates import refresh_aggregates
from donor_sync.resolve.gifts import resolve_gifts
from tests.resolve.test_gifts_support import NOW, add_donor, donor, gift, settings, snapshot, stage_gift

T0 = datetime(2025, 3, 1, 15, tzinfo=UTC)


def _donorbox_and_charge(db: psycopg.Connection, *, batch_charge: int = 1, batch_donation: int = 1) -> None:
    """Stage one Donorbox card gift and its Stripe charge (same key), each with its own donor record."""
    key = "stripe:ch_1"
    stage_gift(
        db,
        source="donorbox",
        source_id="4001",
        donor="2001",
        gift_key=key,
        amount="100.00",
        batch_id=batch_donation,
        updated_at=T0 + timedelta(seconds=2),
        designation="Food Program",
        campaign="Spring Appeal",
        tribute_type="in_memory",
        tribute_name="Ada",
        utm_source="facebook",
        utm_medium="social",
        fee_amount=Decimal("3.20"),
        status="succeeded",
        payment_method="card",
    )
    stage_gift(
        db,
        source="stripe",
        source_id="ch_1",
        donor="cus_1",
        amount="100.00",
        batch_id=batch_charge,
        updated_at=T0 + timedelta(days=3),
        designation="General Fund",
        campaign="General Giving",
        status="partially_refunded",
        refunded_amount=Decimal("20.00"),
        refunded_at=T0 + timedelta(days=3),
        payment_method="card",
    )


def test_a_platform_gift_paid_through_stripe_is_one_gift_with_details_and_payment_merged(
    db: psycopg.Connection,
) -> None:
    platform_donor = add_donor(db, ("donorbox", "2001"))
    stripe_donor = add_donor(db, ("stripe", "cus_1"))
    _donorbox_and_charge(db)
    counts = resolve_gifts(db, [1], now=NOW, settings=settings())
    assert (counts.staged_rows, counts.resolved_rows, counts.gifts_created, counts.sources_linked) == (
        2,
        2,
        1,
        2,
    )
    g = gift(db, "stripe:ch_1")
    assert g["donor_id"] == platform_donor  # the platform's donor record
    assert g["source"] == "donorbox"
    # details from the platform
    assert (g["designation"], g["campaign"]) == ("Food Program", "Spring Appeal")
    assert (g["tribute_type"], g["tribute_name"]) == ("in_memory", "Ada")
    assert (g["utm_source"], g["utm_medium"]) == ("facebook", "social")
    # payment from the processor; the fee only the platform reported
    assert (g["status"], g["refunded_amount"], g["amount"]) == (
        "partially_refunded",
        Decimal(20),
        Decimal(100),
    )
    assert g["fee_amount"] == Decimal("3.2")
    assert counts.donor_ids == {platform_donor}
    sources = db.execute(
        "SELECT source, entity, source_id FROM core.gift_sources WHERE gift_id = %s ORDER BY source",
        (g["gift_id"],),
    ).fetchall()
    assert sources == [("donorbox", "donation", "4001"), ("stripe", "charge", "ch_1")]
    staged = db.execute("SELECT DISTINCT gift_id FROM staging.gifts WHERE resolved_at IS NOT NULL").fetchall()
    assert staged == [(g["gift_id"],)]
    refresh_aggregates(db, counts.donor_ids | {stripe_donor}, today=NOW.date(), settings=settings())
    assert donor(db, platform_donor)["lifetime_giving"] == Decimal(80)  # counted once, net of the refund
    assert donor(db, stripe_donor)["gift_count"] == 0


def test_the_merge_does_not_depend_on_which_side_arrives_first(db: psycopg.Connection) -> None:
    platform_donor = add_donor(db, ("donorbox", "2001"))
    stripe_donor = add_donor(db, ("stripe", "cus_1"))
    _donorbox_and_charge(db, batch_charge=1, batch_donation=2)
    first = resolve_gifts(db, [1], now=NOW, settings=settings())
    g1 = gift(db, "stripe:ch_1")
    assert (g1["donor_id"], g1["designation"], g1["source"]) == (stripe_donor, "General Fund", "stripe")
    assert first.donor_ids == {stripe_donor}
    second = resolve_gifts(db, [2], now=NOW, settings=settings())
    g2 = gift(db, "stripe:ch_1")
    assert g2["gift_id"] == g1["gift_id"]
    assert (second.gifts_created, second.gifts_updated) == (0, 1)
    assert (g2["donor_id"], g2["designation"], g2["status"]) == (
        platform_donor,
        "Food Program",
        "partially_refunded",
    )
    assert g2["source"] == "stripe"  # where it was first seen
    assert second.donor_ids == {platform_donor, stripe_donor}  # both donors' aggregates change


def test_cross_platform_gifts_of_the_sample_data_are_counted_once(db: psycopg.Connection) -> None:
    from tests.standardize.test_pipeline_support import OBJECTS, land_and_standardize, sample, truth_rows

    data = sample(donors=400, seed=3)
    land_and_standardize(db, data)
    # Stand-in for the donor side: one golden donor per true person, owning every source donor
    # record that a gift of that person names.
    person_of = {
        (*OBJECTS[r["source"]], r["source_record_id"]): r["person_id"]
        for r in truth_rows(data, "records")
        if r["source"] in OBJECTS
    }
    persons = {p["person_id"] for p in truth_rows(data, "persons")}
    donor_of = {p: add_donor(db) for p in sorted(persons)}
    staged = db.execute(
        "SELECT source, entity, source_id, source_donor_id, gift_key FROM staging.gifts"
    ).fetchall()
    owners: dict[tuple[str, str], str] = {}
    for source, entity, source_id, donor_ref, _ in staged:
        person = person_of.get((source, entity, source_id))
        if person and donor_ref:
            owners.setdefault((source, donor_ref), person)
    for (system, external_id), person in owners.items():
        db.execute(
            "INSERT INTO core.donor_sources (donor_id, system, external_id, role, id_kind)"
            " VALUES (%s, %s, %s, 'source', 'donor')",
            (donor_of[person], system, external_id),
        )
    batches = [r[0] for r in db.execute("SELECT DISTINCT batch_id FROM staging.gifts").fetchall()]

    counts = resolve_gifts(db, batches, now=NOW, settings=settings())

    keys = {key for *_, key in staged}
    assert counts.pending_rows == 0
    assert counts.gifts_created == len(keys) == db.execute("SELECT count(*) FROM core.gifts").fetchone()[0]  # type: ignore[index]
    assert len(staged) > len(keys)  # there are linked gifts
    gift_of: dict[str, UUID] = dict(
        db.execute(
            "SELECT source || '|' || entity || '|' || source_id, gift_id FROM core.gift_sources"
        ).fetchall()
    )
    checked = 0
    for link in truth_rows(data, "gift_links"):
        charge = f"stripe|charge|{link['stripe_charge_id']}"
        other = "|".join((*OBJECTS[link["other_source"]], link["other_record_id"]))
        if charge in gift_of and other in gift_of:
            assert gift_of[charge] == gift_of[other]
            owner = db.execute(
                "SELECT donor_id FROM core.gifts WHERE gift_id = %s", (gift_of[other],)
            ).fetchone()
            assert owner == (donor_of[link["person_id"]],)
            checked += 1
    assert checked > 50

    refresh_aggregates(db, None, today=NOW.date(), settings=settings())
    # Giving summed over donors equals giving summed over distinct gifts (each merged once).
    total = db.execute("SELECT sum(lifetime_giving), sum(gift_count) FROM core.donors").fetchone()
    expected = db.execute(
        "SELECT sum(amount - refunded_amount), count(*) FROM core.gifts WHERE NOT is_test"
        " AND status IN ('succeeded', 'partially_refunded', 'refunded') AND amount > refunded_amount"
        " AND currency = 'USD'"
    ).fetchone()
    assert total is not None
    assert expected is not None
    assert total[0] == expected[0]
    naive = db.execute(
        "SELECT sum(amount - refunded_amount) FROM staging.gifts WHERE currency = 'USD'"
        " AND status IN ('succeeded', 'partially_refunded') AND NOT is_test"
    ).fetchone()
    assert naive is not None
    assert total[0] < naive[0]  # summing every source row would count linked gifts twice


def test_a_refund_updates_the_same_gift_and_a_late_older_version_changes_nothing(
    db: psycopg.Connection,
) -> None:
    owner = add_donor(db, ("stripe", "cus_9"))
    rules = settings()
    stage_gift(
        db, source="stripe", source_id="ch_9", donor="cus_9", amount="60.00", batch_id=1, raw_record_id=1
    )
    resolve_gifts(db, [1], now=NOW, settings=rules)
    refresh_aggregates(db, [owner], today=NOW.date(), settings=rules)
    first = gift(db, "stripe:ch_9")
    assert donor(db, owner)["lifetime_giving"] == Decimal(60)

    # The charge.refunded event: a newer version of the same charge.
    stage_gift(
        db,
        source="stripe",
        source_id="ch_9",
        donor="cus_9",
        amount="60.00",
        batch_id=2,
        raw_record_id=2,
        updated_at=T0 + timedelta(days=5),
        status="refunded",
        refunded_amount=Decimal(60),
        refunded_at=T0 + timedelta(days=5),
    )
    counts = resolve_gifts(db, [2], now=NOW, settings=rules)
    assert (counts.gifts_created, counts.gifts_updated) == (0, 1)
    refunded = gift(db, "stripe:ch_9")
    assert refunded["gift_id"] == first["gift_id"]
    assert (refunded["status"], refunded["refunded_amount"]) == ("refunded", Decimal(60))
    refresh_aggregates(db, counts.donor_ids, today=NOW.date(), settings=rules)
    assert donor(db, owner)["lifetime_giving"] == Decimal(0)
    assert donor(db, owner)["gift_count"] == 0

    # The listing taken before the refund, arriving late: older by source time.
    stage_gift(
        db,
        source="stripe",
        source_id="ch_9",
        donor="cus_9",
        amount="60.00",
        batch_id=3,
        raw_record_id=3,
        updated_at=T0 + timedelta(days=1),
    )
    late = resolve_gifts(db, [3], now=NOW, settings=rules)
    assert (late.stale_versions, late.gifts_updated, late.resolved_rows) == (1, 0, 1)
    assert gift(db, "stripe:ch_9")["status"] == "refunded"


def test_a_partial_refund_reduces_lifetime_giving_and_the_largest_gift(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("donorbox", "d1"))
    stage_gift(
        db,
        source="donorbox",
        source_id="1",
        donor="d1",
        amount="100.00",
        status="partially_refunded",
        refunded_amount=Decimal(30),
    )
    stage_gift(
        db, source="donorbox", source_id="2", donor="d1", amount="50.00", gift_at=T0 + timedelta(days=40)
    )
    counts = resolve_gifts(db, [1], now=NOW, settings=settings())
    refresh_aggregates(db, counts.donor_ids, today=NOW.date(), settings=settings())
    got = donor(db, owner)
    assert (got["lifetime_giving"], got["largest_gift"], got["gift_count"]) == (Decimal(120), Decimal(70), 2)


def test_a_gift_whose_donor_is_not_resolved_stays_pending_until_it_is(db: psycopg.Connection) -> None:
    rules = settings()
    stage_gift(db, source="stripe", source_id="ch_p", donor="cus_p", batch_id=1)
    stage_gift(db, source="stripe", source_id="ch_guest", donor=None, batch_id=1)
    first = resolve_gifts(db, [1], now=NOW, settings=rules)
    assert (
        first.staged_rows,
        first.pending_rows,
        first.pending_gifts,
        first.pending_without_donor_record,
    ) == (
        2,
        2,
        2,
        1,
    )
    assert first.resolved_rows == 0
    assert db.execute("SELECT count(*) FROM core.gifts").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM staging.gifts WHERE resolved_at IS NULL").fetchone() == (2,)

    owner = add_donor(db, ("stripe", "cus_p"))  # the donor side resolves the record later
    stage_gift(db, source="stripe", source_id="ch_other", donor="cus_p", batch_id=2)
    second = resolve_gifts(db, [2], now=NOW, settings=rules)  # a later run, its own batch only
    assert (second.staged_rows, second.resolved_rows, second.pending_rows) == (3, 2, 1)
    assert gift(db, "stripe:ch_p")["donor_id"] == owner
    assert owner in second.donor_ids


def test_a_linked_object_without_a_donor_joins_its_gift(db: psycopg.Connection) -> None:
    owner = add_donor(db, ("classy", "s1"))
    stage_gift(db, source="classy", source_id="700", donor="s1", batch_id=1)
    stage_gift(
        db,
        source="stripe",
        source_id="ch_c",
        donor=None,
        gift_key="classy:700",
        batch_id=1,
        status="refunded",
        refunded_amount=Decimal(50),
    )
    counts = resolve_gifts(db, [1], now=NOW, settings=settings())
    assert (counts.pending_rows, counts.resolved_rows, counts.gifts_created) == (0, 2, 1)
    g = gift(db, "classy:700")
    assert (g["donor_id"], g["status"]) == (owner, "refunded")


def test_a_re_run_changes_nothing(db: psycopg.Connection) -> None:
    rules = settings()
    add_donor(db, ("donorbox", "2001"))
    add_donor(db, ("stripe", "cus_1"))
    _donorbox_and_charge(db)
    add_donor(db, ("classy", "s2"))
    for n in range(3):
        stage_gift(
            db,
            source="classy",
            source_id=f"80{n}",
            donor="s2",
            recurring_key="classy:900",
            recurring_source_id="900",
            recurring_interval="month",
            installment_number=n + 1,
            gift_at=T0 + timedelta(days=30 * n),
        )
    resolve_gifts(db, [1], now=NOW, settings=rules)
    refresh_aggregates(db, None, today=NOW.date(), settings=rules)
    db.commit()
    before = snapshot(db)

    again = resolve_gifts(db, [1], now=NOW + timedelta(hours=1), settings=rules)
    refresh_aggregates(db, None, today=NOW.date(), settings=rules)
    db.commit()
    assert again.staged_rows == 0
    assert snapshot(db) == before

    # A retried task that finds the rows unresolved again (say, resolved_at reset) still writes
    # nothing in core.
    db.execute("UPDATE staging.gifts SET resolved_at = NULL, gift_id = NULL")
    db.commit()
    core_before = {k: v for k, v in snapshot(db).items() if k != "staging"}
    retried = resolve_gifts(db, [1], now=NOW + timedelta(hours=2), settings=rules)
    refresh_aggregates(db, retried.donor_ids, today=NOW.date(), settings=rules)
    db.commit()
    assert (retried.gifts_created, retried.gifts_updated, retried.sources_linked, retried.plans_updated) == (
        0,
        0,
        0,
        0,
    )
    assert retried.resolved_rows == 5
    assert {k: v for k, v in snapshot(db).items() if k != "staging"} == core_before


def test_a_re_standardized_record_replaces_its_version(db: psycopg.Connection) -> None:
    add_donor(db, ("donorbox", "d5"))
    stage_gift(db, source="donorbox", source_id="55", donor="d5", raw_record_id=55, designation="Typo Fund")
    resolve_gifts(db, [1], now=NOW, settings=settings())
    # A quarantine fix re-standardizes the same raw record: the writer resets resolved_at.
    stage_gift(
        db, source="donorbox", source_id="55", donor="d5", raw_record_id=55, designation="Food Program"
    )
    counts = resolve_gifts(db, [1], now=NOW, settings=settings())
    assert (counts.gifts_updated, counts.stale_versions) == (1, 0)
    assert gift(db, "donorbox:55")["designation"] == "Food Program"
