-- 0001_schemas: the four stage schemas, extensions, and the vocabularies and
-- helper functions that later migrations share.
--
-- Conventions for every donor-sync migration:
--   * one file = one transaction (the runner wraps it); no BEGIN/COMMIT here;
--   * timestamps are timestamptz; hashes are raw 32-byte bytea (hex only for display);
--   * closed vocabularies that will grow are text DOMAINs with a CHECK, not ENUMs:
--     a later migration widens them with ALTER DOMAIN ... DROP/ADD CONSTRAINT
--     (ENUM values can be added or renamed but never removed);
--   * no secrets anywhere; PII only in raw payloads, staging, core, and the minimized destination
--     payloads of sync.outbox and sync.dead_letters; never in logs, errors, metrics or audit details.

CREATE SCHEMA IF NOT EXISTS raw;
COMMENT ON SCHEMA raw IS 'Records exactly as received from donation platforms, CSV drops and webhooks.';
CREATE SCHEMA IF NOT EXISTS staging;
COMMENT ON SCHEMA staging IS 'Standardized and validated donors and gifts of recent batches, and the quarantine.';
CREATE SCHEMA IF NOT EXISTS core;
COMMENT ON SCHEMA core IS 'Golden donor records, gifts, households, consent, suppressions and erasure tombstones.';
CREATE SCHEMA IF NOT EXISTS sync;
COMMENT ON SCHEMA sync IS 'Pipeline state: watermarks, runs and metrics, outbox, destination state, dead letters, review queue, audit.';

-- Trigram matching of donor names for incremental dedup (core.donors name index).
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
-- gen_random_uuid() and sha256() are built in since PostgreSQL 13 and 11, so pgcrypto is not needed.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

---------------------------------------------------------------------------------------------------
-- Shared domains
---------------------------------------------------------------------------------------------------

-- Name of a source or destination system as configured ('stripe', 'donorbox', 'classy',
-- 'salesforce', 'hubspot', 'mailchimp', 'braze', 'webhook_acme', a CSV export format...).
-- Lower snake case, so 'Stripe' and 'stripe' can never become two systems in a unique key.
CREATE DOMAIN core.system_name AS text
    CHECK (VALUE ~ '^[a-z][a-z0-9_]{0,62}$');
COMMENT ON DOMAIN core.system_name IS 'Configured name of a source or destination system, lower snake case.';

-- A SHA-256 digest or HMAC-SHA256 keyed hash, as 32 raw bytes.
CREATE DOMAIN core.hash256 AS bytea
    CHECK (octet_length(VALUE) = 32);
COMMENT ON DOMAIN core.hash256 IS 'SHA-256 digest or HMAC-SHA256 keyed hash, 32 raw bytes.';

-- ISO 4217 alphabetic currency code.
CREATE DOMAIN core.currency_code AS text
    CHECK (VALUE ~ '^[A-Z]{3}$');
COMMENT ON DOMAIN core.currency_code IS 'ISO 4217 alphabetic currency code, upper case (USD, EUR, JPY).';

-- ISO 3166-1 alpha-2 country code.
CREATE DOMAIN core.country_code AS text
    CHECK (VALUE ~ '^[A-Z]{2}$');
COMMENT ON DOMAIN core.country_code IS 'ISO 3166-1 alpha-2 country code, upper case (US, GB, DE).';

-- Phone number in E.164 form.
CREATE DOMAIN core.phone_e164 AS text
    CHECK (VALUE ~ '^\+[1-9][0-9]{4,14}$');
COMMENT ON DOMAIN core.phone_e164 IS 'Phone number in E.164 form: +, country code, subscriber number, at most 15 digits.';

-- Consent vocabulary (issue 7). 'all' as a channel means the choice applies to every channel
-- (for example CCPA "do not sell or share", which has no channel).
CREATE DOMAIN core.consent_purpose AS text
    CHECK (VALUE IN ('marketing', 'fundraising', 'profiling', 'sharing'));
COMMENT ON DOMAIN core.consent_purpose IS 'Purpose a consent choice covers.';

CREATE DOMAIN core.consent_channel AS text
    CHECK (VALUE IN ('email', 'sms', 'phone', 'mail', 'all'));
COMMENT ON DOMAIN core.consent_channel IS 'Channel a consent choice or suppression covers; all = every channel.';

CREATE DOMAIN core.consent_status AS text
    CHECK (VALUE IN ('opt_in', 'soft_opt_in', 'opt_out'));
COMMENT ON DOMAIN core.consent_status IS 'A donor''s choice: explicit opt-in, soft opt-in (existing supporter), or opt-out.';

-- Failure taxonomy of the delivery engine (DESIGN.md "Failures are data", issue 6).
CREATE DOMAIN sync.failure_class AS text
    CHECK (VALUE IN ('transient', 'rate_limited', 'auth', 'validation',
                     'duplicate_rule', 'consent_blocked', 'permanent'));
COMMENT ON DOMAIN sync.failure_class IS 'Class of a delivery failure; decides retry on the ladder or dead letter, and the remediation text.';

-- Life cycle of an outbox row:
--   pending    waiting to be pushed (first try, or a retry once next_attempt_at has passed)
--   in_flight  claimed by a worker; next_attempt_at is the lease expiry after which it may be reclaimed
--   succeeded  landed at the destination
--   dead       gave up; a row in sync.dead_letters holds it
--   canceled   withdrawn before landing (superseded, gate now blocks it, discarded by an operator)
CREATE DOMAIN sync.outbox_state AS text
    CHECK (VALUE IN ('pending', 'in_flight', 'succeeded', 'dead', 'canceled'));
COMMENT ON DOMAIN sync.outbox_state IS 'Life cycle state of a sync.outbox row.';

---------------------------------------------------------------------------------------------------
-- Shared functions
---------------------------------------------------------------------------------------------------

-- Canonical hash of a jsonb value: SHA-256 of its jsonb text form, which PostgreSQL renders the
-- same way for equal values (keys sorted, whitespace normalized), so a record re-fetched with a
-- different key order or spacing hashes the same. Used for raw payloads and outbox payloads.
-- Declared IMMUTABLE so it can back generated columns: convert_to() is only STABLE because it
-- depends on the database encoding, which cannot change for the life of a database.
CREATE OR REPLACE FUNCTION core.jsonb_sha256(doc jsonb)
    RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.sha256(pg_catalog.convert_to(doc::text, 'UTF8')) $$;
COMMENT ON FUNCTION core.jsonb_sha256(jsonb) IS 'SHA-256 of the canonical jsonb text of a document; equal documents hash equal.';

-- BEFORE UPDATE trigger: stamp updated_at, only when the row really changed (attach it with
-- WHEN (OLD.* IS DISTINCT FROM NEW.*)), so "changed since" scans that feed the outbox are exact
-- even when a writer forgets to set updated_at, and no-op upserts do not look like changes.
CREATE OR REPLACE FUNCTION core.touch_updated_at()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION core.touch_updated_at() IS 'Trigger: set updated_at to now() on a row that changed.';

-- Append-only guard for ledgers (core.consent_events, sync.audit_log). UPDATE is always refused.
-- DELETE and TRUNCATE are refused unless the transaction opted in with
--     SET LOCAL donor_sync.allow_purge = 'on';
-- which only the erasure and retention code paths do (and audit). This guards against accidents
-- and bugs, not against a database superuser; tamper evidence is the audit log's job.
CREATE OR REPLACE FUNCTION core.forbid_update_delete()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE')
       AND coalesce(current_setting('donor_sync.allow_purge', true), '') = 'on' THEN
        RETURN OLD;  -- NULL for the statement-level TRUNCATE trigger
    END IF;
    RAISE EXCEPTION '%.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = CASE WHEN TG_OP = 'UPDATE'
                          THEN 'Append a new row instead.'
                          ELSE 'Only erasure and retention purges may delete, after SET LOCAL donor_sync.allow_purge = ''on''.'
                     END;
END
$$;
COMMENT ON FUNCTION core.forbid_update_delete() IS 'Trigger: make a table append-only (UPDATE never; DELETE/TRUNCATE only under donor_sync.allow_purge).';
