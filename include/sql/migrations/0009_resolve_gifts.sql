-- 0009_resolve_gifts: what the gift side of resolve keeps per source object (issues 4 and 5).
--
-- One core gift is merged from every source object that reports it (a Donorbox donation and its
-- Stripe charge). To recompute the merged gift whenever any one of them changes (a refund seen
-- only on Stripe, a designation only on Donorbox), each core.gift_sources row keeps the latest
-- standardized version of its object, like core.donor_sources.attributes does for donors: the
-- staging rows it came from are working storage that retention purges.
-- (donor_sync.resolve.gifts; precedence rules in its module docstring.)

-- The standardized fields of one version of a source gift object, as stored in
-- core.gift_sources.attributes (jsonb) and read back with jsonb_populate_record.
CREATE TYPE core.gift_version AS (
    gift_key            text,
    source_donor_id     text,
    amount              numeric(19, 4),
    currency            text,
    currency_exponent   smallint,
    amount_minor        bigint,
    fee_amount          numeric(19, 4),
    gift_at             timestamptz,
    status              text,
    refunded_amount     numeric(19, 4),
    refunded_at         timestamptz,
    payment_method      text,
    is_test             boolean,
    is_anonymous        boolean,
    is_recurring        boolean,
    recurring_key       text,
    recurring_source_id text,
    recurring_interval  text,
    installment_number  integer,
    designation         text,
    campaign            text,
    utm_source          text,
    utm_medium          text,
    utm_campaign        text,
    utm_term            text,
    utm_content         text,
    utm_extra           jsonb,
    tribute_type        text,
    tribute_name        text,
    tribute_notify      jsonb
);
COMMENT ON TYPE core.gift_version IS 'Standardized fields of one version of a source gift object (core.gift_sources.attributes).';

ALTER TABLE core.gift_sources
    -- Latest version of the object applied: its standardized fields (core.gift_version as jsonb;
    -- tribute_notify is third-party PII), its source time and the raw record it came from.
    -- Versions are ordered by (source_updated_at, last_raw_record_id); an older one arriving late
    -- changes nothing.
    ADD COLUMN attributes         jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    ADD COLUMN source_updated_at  timestamptz,
    ADD COLUMN last_raw_record_id bigint;
COMMENT ON COLUMN core.gift_sources.attributes IS 'Latest standardized version of this source object (core.gift_version as jsonb); the merged core gift is recomputed from these.';
