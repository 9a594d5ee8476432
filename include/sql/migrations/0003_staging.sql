-- 0003_staging: standardized, validated donors and gifts (issue 4), the quarantine for records
-- that failed validation, and the disposition ledger that accounts for every raw record.
--
-- Rows here are keyed by the raw record they came from, so re-standardizing a batch is an upsert
-- (ON CONFLICT (raw_record_id)). Staging is working storage for recent batches: the resolve step
-- moves what matters into core, and retention may purge older staging rows. raw_record_id and
-- batch_id are plain ids, not foreign keys, because retention purges raw on its own schedule.
-- The CHECK constraints restate what the validation rules guarantee; a row that breaks them is a
-- bug in standardization, not bad input (bad input goes to staging.quarantine).

---------------------------------------------------------------------------------------------------
-- staging.donors
---------------------------------------------------------------------------------------------------
CREATE TABLE staging.donors (
    staging_donor_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raw_record_id     bigint NOT NULL,             -- raw.records
    batch_id          bigint NOT NULL,             -- raw.batches
    source            core.system_name NOT NULL,
    -- The source's id of the donor (Stripe customer, Donorbox donor, Classy supporter, CSV id
    -- column); for sources without donor ids a key derived by the extractor (documented there).
    -- (source, source_id) is the source record that core.donor_sources and core.cluster_map track.
    source_id         text NOT NULL CHECK (source_id <> ''),
    source_updated_at timestamptz,                 -- orders versions of one source record
    -- Name parts (nameparser): title, first, middle, last, suffix, nickname; organizations apart.
    name_prefix       text,
    first_name        text,
    middle_name       text,
    last_name         text,
    name_suffix       text,
    nickname          text,
    is_organization   boolean NOT NULL DEFAULT false,
    organization_name text,
    -- Phonetic key of last_name (computed by standardize, e.g. Double Metaphone) for blocking.
    last_name_key     text,
    email             text CHECK (email LIKE '_%@_%'),  -- normalized (email-validator), NULL if none
    phone             core.phone_e164,             -- E.164 (phonenumbers)
    address_line1     text,
    address_line2     text,
    city              text,
    region            text,                        -- state / province / county code or name
    postal_code       text,                        -- normalized to the country's format
    country_code      core.country_code,
    address_validated boolean NOT NULL DEFAULT false,  -- parsed and normalized without doubt
    birth_date        date,
    -- Choices captured by the source's form (e.g. "keep me informed" ticked at checkout), turned
    -- into core.consent_events by resolve: [{purpose, channel, status, occurred_at, evidence}].
    consent_signals   jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(consent_signals) = 'array'),
    -- Suspicious data for review, not failures: [{code, field, message}] (e.g. email_shared).
    review_flags      jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(review_flags) = 'array'),
    standardized_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,                 -- set by resolve
    donor_id          uuid                         -- core.donors the record resolved to
);
COMMENT ON TABLE staging.donors IS 'Standardized donor records of recent batches, one per raw record, waiting for or done with identity resolution.';
CREATE UNIQUE INDEX donors_raw_record_key ON staging.donors (raw_record_id);
-- Resolve's work queue: it costs what arrived, not what is staged.
CREATE INDEX donors_unresolved_idx ON staging.donors (batch_id) WHERE resolved_at IS NULL;
CREATE INDEX donors_source_idx ON staging.donors (source, source_id);

---------------------------------------------------------------------------------------------------
-- staging.gifts
---------------------------------------------------------------------------------------------------
CREATE TABLE staging.gifts (
    staging_gift_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raw_record_id       bigint NOT NULL,           -- raw.records
    batch_id            bigint NOT NULL,           -- raw.batches
    source              core.system_name NOT NULL,
    entity              text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),  -- charge, donation, csv_row...
    source_id           text NOT NULL CHECK (source_id <> ''),
    source_donor_id     text,                      -- staging.donors.source_id of the same source
    source_updated_at   timestamptz,
    -- Cross-platform gift key: one gift seen through two platforms (a Donorbox or Classy gift paid
    -- through Stripe) gets the same key, derived from the payment processor's transaction id when
    -- known (e.g. 'stripe:ch_...'), else from the platform's id (e.g. 'donorbox:123').
    gift_key            text NOT NULL CHECK (gift_key ~ '^[a-z][a-z0-9_]*:.+$'),
    -- Exact amount, its ISO 4217 currency and exponent, and the same amount in minor units.
    amount              numeric(19, 4) NOT NULL CHECK (amount >= 0),
    currency            core.currency_code NOT NULL,
    currency_exponent   smallint NOT NULL CHECK (currency_exponent BETWEEN 0 AND 4),
    amount_minor        bigint NOT NULL,
    fee_amount          numeric(19, 4) CHECK (fee_amount >= 0),   -- processor fee, same currency
    gift_at             timestamptz NOT NULL,      -- when the gift was made (UTC instant)
    status              text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded',
                                                        'partially_refunded', 'disputed', 'canceled')),
    refunded_amount     numeric(19, 4) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    refunded_at         timestamptz,
    payment_method      text,                      -- card, ach, sepa_debit, paypal, check, cash, stock...
    is_test             boolean NOT NULL DEFAULT false,  -- test mode or test card
    is_anonymous        boolean NOT NULL DEFAULT false,  -- donor asked not to be named publicly
    -- Recurring: the cross-platform key of the plan (e.g. 'stripe:sub_...') and its source id.
    is_recurring        boolean NOT NULL DEFAULT false,
    recurring_key       text CHECK (recurring_key ~ '^[a-z][a-z0-9_]*:.+$'),
    recurring_source_id text,
    recurring_interval  text CHECK (recurring_interval IN ('day', 'week', 'month', 'quarter', 'year')),
    installment_number  integer CHECK (installment_number > 0),
    designation         text,                      -- fund the donor chose
    campaign            text,                      -- source campaign or page
    -- UTM attribution, normalized (case, whitespace, aliases); custom parameters in utm_extra.
    utm_source          text,
    utm_medium          text,
    utm_campaign        text,
    utm_term            text,
    utm_content         text,
    utm_extra           jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(utm_extra) = 'object'),
    landing_url         text,
    referrer_url        text,
    -- Tribute and in-memoriam gifts; tribute_notify is the person to notify (third-party PII).
    tribute_type        text CHECK (tribute_type IN ('in_honor', 'in_memory')),
    tribute_name        text,
    tribute_notify      jsonb CHECK (jsonb_typeof(tribute_notify) = 'object'),
    review_flags        jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(review_flags) = 'array'),
    standardized_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    gift_id             uuid,                      -- core.gifts the record resolved to
    CHECK (amount_minor = amount * (10::numeric ^ currency_exponent)),
    CHECK (refunded_amount <= amount),
    CHECK (is_recurring OR (recurring_key IS NULL AND installment_number IS NULL)),
    CHECK (tribute_type IS NOT NULL OR (tribute_name IS NULL AND tribute_notify IS NULL))
);
COMMENT ON TABLE staging.gifts IS 'Standardized gifts of recent batches, one per raw record, with the cross-platform gift key that makes a gift count once.';
COMMENT ON COLUMN staging.gifts.amount_minor IS 'amount in minor units (cents): amount * 10^currency_exponent, checked.';
CREATE UNIQUE INDEX gifts_raw_record_key ON staging.gifts (raw_record_id);
CREATE INDEX gifts_unresolved_idx ON staging.gifts (batch_id) WHERE resolved_at IS NULL;
CREATE INDEX gifts_gift_key_idx ON staging.gifts (gift_key);
CREATE INDEX gifts_source_donor_idx ON staging.gifts (source, source_donor_id);

---------------------------------------------------------------------------------------------------
-- staging.quarantine
---------------------------------------------------------------------------------------------------
CREATE TABLE staging.quarantine (
    quarantine_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raw_record_id  bigint NOT NULL,                -- raw.records
    batch_id       bigint NOT NULL,                -- raw.batches
    source         core.system_name NOT NULL,
    entity         text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    source_id      text NOT NULL,
    -- Every reason, not just the first: [{rule, field, code, message, value}] where rule names the
    -- YAML validation rule and value is the offending value as received (PII stays in staging).
    reasons        jsonb NOT NULL CHECK (jsonb_typeof(reasons) = 'array' AND jsonb_array_length(reasons) > 0),
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    -- Closing a quarantine row: fixed (re-standardized with the overrides in fix), released_as_is
    -- (an operator accepted it), discarded (an operator dropped it), superseded (a newer version of
    -- the same object arrived). released_at is set for every resolution.
    released_at    timestamptz,
    released_by    text,
    resolution     text CHECK (resolution IN ('fixed', 'released_as_is', 'discarded', 'superseded')),
    fix            jsonb CHECK (jsonb_typeof(fix) = 'object'),  -- {field: corrected value}
    note           text,
    CHECK ((released_at IS NULL) = (resolution IS NULL)),
    CHECK (resolution IS DISTINCT FROM 'fixed' OR fix IS NOT NULL)
);
COMMENT ON TABLE staging.quarantine IS 'Raw records that failed validation, with every reason, until they are fixed and released, released as they are, or discarded.';
-- At most one open quarantine row per raw record; a re-run upserts it.
CREATE UNIQUE INDEX quarantine_open_key ON staging.quarantine (raw_record_id) WHERE released_at IS NULL;
CREATE INDEX quarantine_batch_idx ON staging.quarantine (batch_id);
CREATE INDEX quarantine_open_idx ON staging.quarantine (source, quarantined_at) WHERE released_at IS NULL;

---------------------------------------------------------------------------------------------------
-- staging.dispositions
---------------------------------------------------------------------------------------------------
-- Why a separate ledger rather than a status column on raw.records: the ledger is narrow and
-- insert-mostly, while updating a million wide raw rows per run would rewrite their payloads;
-- and it outlives the staging rows, which are working storage. Reconciliation per batch:
--     count(raw.records) = count(dispositions) and no raw record without a disposition.
CREATE TABLE staging.dispositions (
    raw_record_id bigint PRIMARY KEY,              -- raw.records
    batch_id      bigint NOT NULL,                 -- raw.batches
    disposition   text NOT NULL CHECK (disposition IN ('staged', 'quarantined', 'skipped')),
    -- Why, for skipped (superseded_version, test_mode, not_a_donation, erased, ...): required.
    reason        text,
    decided_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (disposition <> 'skipped' OR reason IS NOT NULL)
);
COMMENT ON TABLE staging.dispositions IS 'What standardization did with each raw record (staged, quarantined, or skipped with a reason), so counts reconcile per batch.';
CREATE INDEX dispositions_batch_idx ON staging.dispositions (batch_id, disposition);
