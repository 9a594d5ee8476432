-- Stripe charges as listed by /v1/charges: each row a gift (and its billing donor).
-- The scope placeholder is filled by the pipeline: the batches, the chunk's raw_record_id range, and "not a
-- superseded version" (donor_sync.standardize.scope).
WITH charges AS (
    SELECT r.raw_record_id, r.batch_id, r.source, r.entity, r.source_id, r.source_updated_at,
           r.entity AS object_entity, r.source_id AS object_id,
           staging.as_object(r.payload) AS charge,
           NULL::text AS skip_reason,
           NULL::text AS event_type,
           NULL::text AS event_created
    FROM raw.records r
    WHERE r.source = 'stripe' AND r.entity = 'charge' AND {scope}
)
-- @include _stripe_charge_intake.sql
