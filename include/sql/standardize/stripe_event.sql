-- Stripe events: a charge.* event carries the charge as it was when the event fired, a later
-- version of that charge (its refunds, disputes and failures); source_updated_at is the event's
-- created time, and the object it is a version of is that charge. Other events (customer.*,
-- payment_intent.*, charge.dispute.* whose object is a dispute...) are skipped: the objects they
-- describe arrive through their own streams. The same test of "a charge event" names the object
-- in donor_sync.standardize.projections (SQL_PROJECTIONS), which finds superseded versions.
WITH charges AS (
    SELECT r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id, r.source_updated_at,
           CASE WHEN e.is_charge THEN 'charge' ELSE r.entity END AS object_entity,
           CASE WHEN e.is_charge THEN coalesce(ev.data -> 'object' ->> 'id', r.source_id) ELSE r.source_id END
               AS object_id,
           CASE WHEN e.is_charge THEN ev.data -> 'object' END AS charge,
           CASE WHEN e.is_charge THEN NULL ELSE 'not_a_charge_event' END AS skip_reason,
           ev.type AS event_type,
           ev.created AS event_created
    FROM raw.records r
    LEFT JOIN LATERAL jsonb_to_record(staging.as_object(r.payload)) AS ev (type text, created text, data jsonb) ON true
    CROSS JOIN LATERAL (
        SELECT coalesce(ev.type LIKE 'charge.%%' AND staging.as_object(ev.data -> 'object') ->> 'object' = 'charge',
                        false) AS is_charge
    ) e
    WHERE r.source = 'stripe' AND r.entity = 'event' AND {scope}
)
-- @include _stripe_charge_intake.sql
