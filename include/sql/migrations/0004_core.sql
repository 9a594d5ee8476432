-- 0004_core: golden donor records and everything attached to them (issues 5, 7, 8).
--
-- Identity model:
--   core.donor_sources   one row per id a donor has anywhere: each source record (a Stripe
--                        customer, a Donorbox donor...) and each destination record (a Salesforce
--                        Contact, a HubSpot contact...). The current lookup: which donor is this id?
--   core.cluster_map     history of which donor each of those ids belonged to, with the score,
--                        explanation and decision behind it; unmerge closes a decision's rows and
--                        reopens the ones it closed.
--   core.donors          the golden record computed from the member source records by
--                        survivorship. A merged-away donor keeps its row with merged_into set, so
--                        ids held elsewhere (consent events, gifts, destinations) stay valid and an
--                        unmerge can revive it.
-- Erasure keeps the donor row (gifts are financial records that must stay), blanks its PII, sets
-- erased_at, deletes its source rows, consent rows and suppressions, and writes keyed-hash
-- tombstones so that no later import brings the person back.

---------------------------------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------------------------------

-- Name used for fuzzy name matching: "first last" for people, the organization name otherwise,
-- lower-cased with whitespace collapsed. Queries must call it the same way the index does.
CREATE FUNCTION core.match_name(first_name text, last_name text, organization_name text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT nullif(lower(btrim(regexp_replace(
        CASE WHEN first_name IS NULL AND last_name IS NULL THEN coalesce(organization_name, '')
             ELSE coalesce(first_name, '') || ' ' || coalesce(last_name, '')
        END, '\s+', ' ', 'g'))), '')
$$;
COMMENT ON FUNCTION core.match_name(text, text, text) IS 'Normalized name for trigram matching of donors; the expression of the donors name index.';

---------------------------------------------------------------------------------------------------
-- core.donors
---------------------------------------------------------------------------------------------------
CREATE TABLE core.donors (
    -- Random uuid: the stable external id sent to destinations (Salesforce external id field,
    -- Braze external_id, HubSpot unique property); reveals neither counts nor order.
    donor_id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Surviving fields (survivorship rules in include/mappings): each from one source record.
    name_prefix           text,
    first_name            text,
    middle_name           text,
    last_name             text,
    name_suffix           text,
    aliases               text[] NOT NULL DEFAULT '{}',  -- nicknames and other names seen
    is_organization       boolean NOT NULL DEFAULT false,
    organization_name     text,
    last_name_key         text,                    -- phonetic key of last_name, for blocking
    email                 text CHECK (email LIKE '_%@_%'),
    email_verified        boolean NOT NULL DEFAULT false,
    phone                 core.phone_e164,
    address_line1         text,                    -- address parts all from the same source record
    address_line2         text,
    city                  text,
    region                text,
    postal_code           text,
    country_code          core.country_code,
    address_validated     boolean NOT NULL DEFAULT false,
    birth_date            date,
    time_zone             text,                    -- IANA name, for quiet hours
    residency_region      text,                    -- data-residency region (policy in config)
    -- Flags owned by staff in the CRM and by stewardship; suppressions hold the reason codes.
    is_deceased           boolean NOT NULL DEFAULT false,
    deceased_date         date,
    do_not_contact        boolean NOT NULL DEFAULT false,
    -- Giving aggregates, kept current by resolve, in the organization's reporting currency,
    -- counting succeeded non-test gifts net of refunds; used by mappings and journey rules.
    giving_currency       core.currency_code,
    gift_count            integer NOT NULL DEFAULT 0 CHECK (gift_count >= 0),
    lifetime_giving       numeric(19, 4) NOT NULL DEFAULT 0,
    fiscal_year_giving    numeric(19, 4) NOT NULL DEFAULT 0,   -- current fiscal year
    largest_gift          numeric(19, 4),
    first_gift_date       date,
    last_gift_date        date,
    recurring_status      text NOT NULL DEFAULT 'none'
                          CHECK (recurring_status IN ('none', 'active', 'lapsed', 'canceled')),
    rfm_segment           text,
    aggregates_updated_at timestamptz,
    merged_into           uuid REFERENCES core.donors (donor_id),
    merged_at             timestamptz,
    erased_at             timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (merged_into IS DISTINCT FROM donor_id),
    CHECK ((merged_into IS NULL) = (merged_at IS NULL)),
    CHECK (first_gift_date IS NULL OR last_gift_date IS NULL OR first_gift_date <= last_gift_date),
    CHECK (is_deceased OR deceased_date IS NULL)
);
COMMENT ON TABLE core.donors IS 'Golden donor records: surviving fields, giving aggregates and flags of each deduplicated donor.';
COMMENT ON COLUMN core.donors.merged_into IS 'Survivor this donor was merged into; NULL for a live donor. Never chained: point at the final survivor.';
-- Blocking indexes for matching a new record against live golden records (issue 5, < 50 ms).
-- Partial: merged-away and erased donors are never match candidates.
CREATE INDEX donors_email_idx ON core.donors (lower(email))
    WHERE email IS NOT NULL AND merged_into IS NULL AND erased_at IS NULL;
CREATE INDEX donors_phone_idx ON core.donors (phone)
    WHERE phone IS NOT NULL AND merged_into IS NULL AND erased_at IS NULL;
CREATE INDEX donors_postcode_surname_idx ON core.donors (postal_code, last_name_key)
    WHERE postal_code IS NOT NULL AND merged_into IS NULL AND erased_at IS NULL;
-- Trigram index on names: a 1M-row GIN builds in about 3 s and answers `%` probes in about
-- 5 ms (../shared/reference/dedup.md); use with core.match_name(first_name, last_name, organization_name).
CREATE INDEX donors_name_trgm_idx ON core.donors
    USING gin (core.match_name(first_name, last_name, organization_name) gin_trgm_ops)
    WHERE merged_into IS NULL AND erased_at IS NULL;
CREATE INDEX donors_merged_into_idx ON core.donors (merged_into) WHERE merged_into IS NOT NULL;
-- "Changed since" scans that compute the outbox.
CREATE INDEX donors_updated_idx ON core.donors (updated_at);
CREATE TRIGGER donors_touch_updated_at BEFORE UPDATE ON core.donors
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- core.households, core.household_members
---------------------------------------------------------------------------------------------------
CREATE TABLE core.households (
    household_id  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text,                            -- e.g. "Smith Household", for NPSP accounts
    address_line1 text,
    address_line2 text,
    city          text,
    region        text,
    postal_code   text,
    country_code  core.country_code,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.households IS 'Households: donors linked by shared surname and address who are different people, never merged.';
CREATE TRIGGER households_touch_updated_at BEFORE UPDATE ON core.households
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

CREATE TABLE core.household_members (
    donor_id     uuid PRIMARY KEY REFERENCES core.donors (donor_id),  -- at most one household each
    household_id uuid NOT NULL REFERENCES core.households (household_id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'member' CHECK (role IN ('primary', 'member')),
    link_reason  jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(link_reason) = 'object'),  -- rule and evidence
    linked_by    text NOT NULL,                    -- rule id or user
    linked_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.household_members IS 'Which donors belong to which household, with the rule or person that linked them.';
CREATE INDEX household_members_household_idx ON core.household_members (household_id);
CREATE UNIQUE INDEX household_members_one_primary ON core.household_members (household_id) WHERE role = 'primary';

---------------------------------------------------------------------------------------------------
-- core.donor_sources
---------------------------------------------------------------------------------------------------
CREATE TABLE core.donor_sources (
    donor_source_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    donor_id           uuid NOT NULL REFERENCES core.donors (donor_id),
    system             core.system_name NOT NULL,
    external_id        text NOT NULL CHECK (external_id <> ''),
    role               text NOT NULL CHECK (role IN ('source', 'destination')),
    -- What the id names in that system: customer, donor, supporter, contact, subscriber_hash,
    -- external_id, csv_id...
    id_kind            text NOT NULL CHECK (id_kind ~ '^[a-z][a-z0-9_]*$'),
    -- Latest standardized attributes of this record (for a source: the staging.donors fields of
    -- its latest version; for a destination: the values last pulled back by reconciliation).
    -- Survivorship reads them, and unmerge recomputes golden records from them. PII.
    attributes         jsonb CHECK (jsonb_typeof(attributes) = 'object'),
    attributes_at      timestamptz,                -- source_updated_at of that version
    last_raw_record_id bigint,                     -- raw.records of that version (plain id)
    first_seen_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at       timestamptz NOT NULL DEFAULT now(),
    retired_at         timestamptz,                -- no longer exists there (merged away, deleted)
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.donor_sources IS 'Cross-reference of every source id and every destination id of each donor.';
CREATE UNIQUE INDEX donor_sources_system_external_key ON core.donor_sources (system, external_id);
CREATE INDEX donor_sources_donor_idx ON core.donor_sources (donor_id);
CREATE TRIGGER donor_sources_touch_updated_at BEFORE UPDATE ON core.donor_sources
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- core.cluster_map
---------------------------------------------------------------------------------------------------
CREATE TABLE core.cluster_map (
    cluster_map_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    donor_source_id   bigint NOT NULL REFERENCES core.donor_sources (donor_source_id) ON DELETE CASCADE,
    donor_id          uuid NOT NULL REFERENCES core.donors (donor_id),
    -- What put the record with this donor:
    --   new_donor        no match; a new golden record
    --   deterministic    same source id, external id or normalized email (rule in explanation)
    --   auto_merge       probabilistic score in the automatic band
    --   review_approved  approved in the review queue (review_id)
    --   manual_merge     merged by an operator outside the queue
    --   unmerge          restored by undoing a decision
    --   reassign         moved by reconciliation (a CRM merge pulled back)
    decision          text NOT NULL CHECK (decision IN ('new_donor', 'deterministic', 'auto_merge',
                                                        'review_approved', 'manual_merge', 'unmerge', 'reassign')),
    -- All rows written by one decision share it, so an unmerge undoes exactly one decision.
    decision_id       uuid NOT NULL,
    match_score       numeric,
    -- Why: rule or band, blocking key, per-field contributions ({field: weight}). Field names and
    -- numbers only, no compared values.
    match_explanation jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(match_explanation) = 'object'),
    review_id         bigint,                      -- sync.review_queue; foreign key added in 0005
    decided_by        text NOT NULL,               -- rule set version or user
    valid_from        timestamptz NOT NULL DEFAULT now(),
    valid_to          timestamptz,                 -- NULL while current
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    CHECK (decision <> 'review_approved' OR review_id IS NOT NULL)
);
COMMENT ON TABLE core.cluster_map IS 'Reversible history of which donor each source or destination record belonged to, with the score, explanation and decision behind each mapping.';
-- One current mapping per record.
CREATE UNIQUE INDEX cluster_map_current_key ON core.cluster_map (donor_source_id) WHERE valid_to IS NULL;
CREATE INDEX cluster_map_donor_current_idx ON core.cluster_map (donor_id) WHERE valid_to IS NULL;
CREATE INDEX cluster_map_decision_idx ON core.cluster_map (decision_id);
CREATE INDEX cluster_map_review_idx ON core.cluster_map (review_id) WHERE review_id IS NOT NULL;

---------------------------------------------------------------------------------------------------
-- core.recurring_plans
---------------------------------------------------------------------------------------------------
CREATE TABLE core.recurring_plans (
    recurring_plan_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Cross-platform key of the plan (staging.gifts.recurring_key), e.g. 'stripe:sub_...'.
    plan_key             text NOT NULL CHECK (plan_key ~ '^[a-z][a-z0-9_]*:.+$'),
    donor_id             uuid NOT NULL REFERENCES core.donors (donor_id),
    source               core.system_name NOT NULL,
    source_id            text NOT NULL,
    amount               numeric(19, 4) NOT NULL CHECK (amount >= 0),
    currency             core.currency_code NOT NULL,
    currency_exponent    smallint NOT NULL CHECK (currency_exponent BETWEEN 0 AND 4),
    amount_minor         bigint NOT NULL,
    interval_unit        text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'quarter', 'year')),
    interval_count       smallint NOT NULL DEFAULT 1 CHECK (interval_count > 0),
    status               text NOT NULL CHECK (status IN ('active', 'paused', 'past_due', 'lapsed',
                                                         'canceled', 'completed')),
    started_at           timestamptz NOT NULL,
    next_payment_at      timestamptz,
    last_payment_at      timestamptz,
    ended_at             timestamptz,
    failed_payment_count integer NOT NULL DEFAULT 0 CHECK (failed_payment_count >= 0),
    designation          text,
    campaign             text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_minor = amount * (10::numeric ^ currency_exponent))
);
COMMENT ON TABLE core.recurring_plans IS 'Recurring donation plans (NPSP Recurring Donations), whose installments are rows of core.gifts.';
CREATE UNIQUE INDEX recurring_plans_plan_key ON core.recurring_plans (plan_key);
CREATE INDEX recurring_plans_donor_idx ON core.recurring_plans (donor_id);
CREATE INDEX recurring_plans_updated_idx ON core.recurring_plans (updated_at);
CREATE TRIGGER recurring_plans_touch_updated_at BEFORE UPDATE ON core.recurring_plans
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- core.gifts
---------------------------------------------------------------------------------------------------
CREATE TABLE core.gifts (
    gift_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Cross-platform gift key (see staging.gifts.gift_key): the idempotency key of every gift
    -- write to a destination and of journey enrollment.
    gift_key           text NOT NULL CHECK (gift_key ~ '^[a-z][a-z0-9_]*:.+$'),
    donor_id           uuid NOT NULL REFERENCES core.donors (donor_id),
    source             core.system_name NOT NULL,  -- platform the gift was first seen on
    amount             numeric(19, 4) NOT NULL CHECK (amount >= 0),
    currency           core.currency_code NOT NULL,
    currency_exponent  smallint NOT NULL CHECK (currency_exponent BETWEEN 0 AND 4),
    amount_minor       bigint NOT NULL,
    amount_base        numeric(19, 4),             -- in the reporting currency at the gift date
    fee_amount         numeric(19, 4) CHECK (fee_amount >= 0),
    gift_at            timestamptz NOT NULL,       -- instant the gift was made
    gift_date          date NOT NULL,              -- its date in the organization's time zone (CRM close date, fiscal year)
    status             text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded',
                                                       'partially_refunded', 'disputed', 'canceled')),
    refunded_amount    numeric(19, 4) NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    refunded_at        timestamptz,
    payment_method     text,
    is_test            boolean NOT NULL DEFAULT false,
    is_anonymous       boolean NOT NULL DEFAULT false,
    recurring_plan_id  uuid REFERENCES core.recurring_plans (recurring_plan_id),
    installment_number integer CHECK (installment_number > 0),
    designation        text,
    campaign           text,
    utm_source         text,
    utm_medium         text,
    utm_campaign       text,
    utm_term           text,
    utm_content        text,
    utm_extra          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(utm_extra) = 'object'),
    tribute_type       text CHECK (tribute_type IN ('in_honor', 'in_memory')),
    tribute_name       text,
    tribute_notify     jsonb CHECK (jsonb_typeof(tribute_notify) = 'object'),  -- third-party PII
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_minor = amount * (10::numeric ^ currency_exponent)),
    CHECK (refunded_amount <= amount),
    CHECK (recurring_plan_id IS NOT NULL OR installment_number IS NULL),
    CHECK (tribute_type IS NOT NULL OR (tribute_name IS NULL AND tribute_notify IS NULL))
);
COMMENT ON TABLE core.gifts IS 'Every gift exactly once, keyed by its cross-platform gift key, with amount, status (refunds included), recurring plan, designation, campaign and tribute.';
CREATE UNIQUE INDEX gifts_gift_key ON core.gifts (gift_key);
CREATE INDEX gifts_donor_idx ON core.gifts (donor_id, gift_at);
CREATE INDEX gifts_recurring_plan_idx ON core.gifts (recurring_plan_id) WHERE recurring_plan_id IS NOT NULL;
CREATE INDEX gifts_updated_idx ON core.gifts (updated_at);
CREATE TRIGGER gifts_touch_updated_at BEFORE UPDATE ON core.gifts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- core.gift_sources
---------------------------------------------------------------------------------------------------
CREATE TABLE core.gift_sources (
    gift_source_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gift_id        uuid NOT NULL REFERENCES core.gifts (gift_id) ON DELETE CASCADE,
    source         core.system_name NOT NULL,
    entity         text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),  -- charge, payment_intent, donation...
    source_id      text NOT NULL CHECK (source_id <> ''),
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.gift_sources IS 'Every source object that reports a gift (Donorbox donation, Stripe charge and payment intent, CSV row), so one gift seen on two platforms counts once and refunds find their gift.';
CREATE UNIQUE INDEX gift_sources_source_key ON core.gift_sources (source, entity, source_id);
CREATE INDEX gift_sources_gift_idx ON core.gift_sources (gift_id);

---------------------------------------------------------------------------------------------------
-- core.consent_events (append-only)
---------------------------------------------------------------------------------------------------
CREATE TABLE core.consent_events (
    consent_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The donor the choice was recorded against. Never re-pointed on merge: the survivor's state
    -- is derived from the events of every donor merged into it, so an unmerge needs no rewrite.
    donor_id         uuid NOT NULL REFERENCES core.donors (donor_id),
    purpose          core.consent_purpose NOT NULL,
    channel          core.consent_channel NOT NULL,
    status           core.consent_status NOT NULL,
    lawful_basis     text CHECK (lawful_basis IN ('consent', 'legitimate_interests', 'contract',
                                                  'legal_obligation', 'vital_interests', 'public_task')),
    -- Where the choice was made or reported: a donation form, preference_centre, mailchimp,
    -- salesforce (staff edit), hubspot, braze, csv, ...
    source           core.system_name NOT NULL,
    source_ref       text,                         -- id of the choice there (event, submission)
    occurred_at      timestamptz NOT NULL,         -- when the donor made the choice
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz,
    -- Proof: form text and version, page URL, list or subscription group, etc.
    evidence         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(evidence) = 'object'),
    recorded_by      text NOT NULL,                -- run, user or endpoint that wrote it
    CHECK (expires_at IS NULL OR expires_at > occurred_at)
);
COMMENT ON TABLE core.consent_events IS 'Append-only history of every consent choice of every donor, per purpose and channel, with lawful basis, source and evidence.';
-- A choice pulled back from a destination or received twice is recorded once.
CREATE UNIQUE INDEX consent_events_source_ref_key ON core.consent_events (source, source_ref)
    WHERE source_ref IS NOT NULL;
CREATE INDEX consent_events_donor_idx ON core.consent_events (donor_id, purpose, channel, occurred_at DESC);
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON core.consent_events
    FOR EACH ROW EXECUTE FUNCTION core.forbid_update_delete();
CREATE TRIGGER consent_events_no_truncate BEFORE TRUNCATE ON core.consent_events
    FOR EACH STATEMENT EXECUTE FUNCTION core.forbid_update_delete();

---------------------------------------------------------------------------------------------------
-- core.consent_state
---------------------------------------------------------------------------------------------------
CREATE TABLE core.consent_state (
    donor_id         uuid NOT NULL REFERENCES core.donors (donor_id) ON DELETE CASCADE,
    purpose          core.consent_purpose NOT NULL,
    channel          core.consent_channel NOT NULL,
    status           core.consent_status NOT NULL,
    lawful_basis     text,
    consent_event_id bigint NOT NULL REFERENCES core.consent_events (consent_event_id),  -- the deciding event
    effective_at     timestamptz NOT NULL,         -- occurred_at of the deciding event
    expires_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (donor_id, purpose, channel)
);
COMMENT ON TABLE core.consent_state IS 'Current consent per live donor, purpose and channel, derived from consent events (latest explicit choice wins, opt-out outranks older opt-in, merged donors take the most restrictive, expiry honoured); no row means no consent.';
CREATE INDEX consent_state_event_idx ON core.consent_state (consent_event_id);
CREATE TRIGGER consent_state_touch_updated_at BEFORE UPDATE ON core.consent_state
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- core.suppressions
---------------------------------------------------------------------------------------------------
CREATE TABLE core.suppressions (
    suppression_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    donor_id       uuid NOT NULL REFERENCES core.donors (donor_id),
    reason_code    text NOT NULL CHECK (reason_code IN ('deceased', 'do_not_contact', 'do_not_solicit',
                                                        'bounced', 'cleaned', 'complained',
                                                        'in_memoriam_only', 'minor', 'manual')),
    -- Scope: a channel ('all' = every channel) and a destination ('*' = every destination).
    channel        core.consent_channel NOT NULL DEFAULT 'all',
    destination    text NOT NULL DEFAULT '*' CHECK (destination = '*' OR destination ~ '^[a-z][a-z0-9_]{0,62}$'),
    source         core.system_name NOT NULL,      -- where it came from: salesforce, mailchimp, staff...
    source_ref     text,
    note           text,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    lifted_at      timestamptz,
    lifted_by      text,
    lift_reason    text,
    CHECK ((lifted_at IS NULL) = (lifted_by IS NULL))
);
COMMENT ON TABLE core.suppressions IS 'Reasons a donor must not be contacted or sent somewhere (deceased, do-not-contact, bounced, ...), with scope, source, and when lifted.';
-- One active suppression per donor, reason and scope; re-reporting it is an upsert.
CREATE UNIQUE INDEX suppressions_active_key ON core.suppressions (donor_id, reason_code, channel, destination)
    WHERE lifted_at IS NULL;

---------------------------------------------------------------------------------------------------
-- core.erasure_tombstones
---------------------------------------------------------------------------------------------------
CREATE TABLE core.erasure_tombstones (
    -- What was hashed (normalized): email, phone, source_id ('system:external_id'), name_postcode...
    hash_kind  text NOT NULL CHECK (hash_kind ~ '^[a-z][a-z0-9_]*$'),
    hash_value core.hash256 NOT NULL,              -- HMAC-SHA256 under the key key_id names
    -- Which tombstone key made it. The key itself lives in a secrets backend, never here; old keys
    -- stay available for lookups, since a tombstone cannot be re-hashed without the erased value.
    key_id     text NOT NULL,
    request_id uuid NOT NULL,                      -- the privacy request that erased the donor
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hash_kind, hash_value)
);
COMMENT ON TABLE core.erasure_tombstones IS 'Keyed hashes of erased donors'' identifiers, checked on every import so an erased donor never comes back.';
-- Tombstones are the no-resurrection guarantee: append-only like the ledgers.
CREATE TRIGGER erasure_tombstones_append_only BEFORE UPDATE OR DELETE ON core.erasure_tombstones
    FOR EACH ROW EXECUTE FUNCTION core.forbid_update_delete();
CREATE TRIGGER erasure_tombstones_no_truncate BEFORE TRUNCATE ON core.erasure_tombstones
    FOR EACH STATEMENT EXECUTE FUNCTION core.forbid_update_delete();
