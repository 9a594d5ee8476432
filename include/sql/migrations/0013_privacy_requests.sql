-- 0013_privacy_requests: donors' rights requests and the receipts of each system (issue 7).
--
-- A request arrives from the CLI (`donor-sync privacy erase|export`), the privacy API endpoint,
-- the preference centre, or a row inserted here by another tool; the `privacy_requests` DAG
-- carries it out. The subject is named by donor id, or by keyed hashes of an identifier when the
-- request was made before (or without) a matching donor: no donor PII is ever stored here.
CREATE TABLE sync.privacy_requests (
    request_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- erasure: GDPR Art. 17 / CCPA deletion; export: access and portability (Art. 15 and 20);
    -- consent_change: a change of choices (details: purpose, channel, status).
    kind            text NOT NULL CHECK (kind IN ('erasure', 'export', 'consent_change')),
    donor_id        uuid REFERENCES core.donors (donor_id),
    -- Identifiers given with the request, as HMAC-SHA256 under the tombstone key ring:
    -- [{"kind": "email" | "phone" | "source_id", "key_id": ..., "hash": "<hex>"}]. Erasure tombstones
    -- them even when no donor matches, so a later import of that person is refused.
    subject_hashes  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(subject_hashes) = 'array'),
    details         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),  -- never PII
    channel         text NOT NULL CHECK (channel IN ('cli', 'api', 'table', 'preference_centre', 'staff')),
    requested_by    text NOT NULL,                 -- user, api client or tool
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- GDPR: one month from receipt; tracked and alerted by the privacy_requests DAG.
    due_at          timestamptz NOT NULL DEFAULT now() + interval '30 days',
    -- received: waiting; in_progress: being carried out (some receipts may exist); completed:
    -- every system's receipt is done and verified; failed: a system refused (error says which and
    -- the DAG retries it); rejected: not carried out (no such donor for an export; error says why).
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'in_progress', 'completed', 'failed', 'rejected')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    started_at      timestamptz,
    completed_at    timestamptz,
    error           text,                          -- what went wrong, ids only
    -- Where an export was written (a path or object key), never its content.
    result_ref      text,
    alerted_at      timestamptz,                   -- last deadline alert sent
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (donor_id IS NOT NULL OR jsonb_array_length(subject_hashes) > 0),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
COMMENT ON TABLE sync.privacy_requests IS 'Donors'' erasure, export and consent-change requests, with their 30-day deadline and state; subjects by donor id or keyed hash only.';
CREATE INDEX privacy_requests_due_idx ON sync.privacy_requests (due_at) WHERE status NOT IN ('completed', 'rejected');
CREATE INDEX privacy_requests_donor_idx ON sync.privacy_requests (donor_id);
CREATE TRIGGER privacy_requests_touch_updated_at BEFORE UPDATE ON sync.privacy_requests
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

-- One receipt per request and system: what was done there, and the read-back that proves it.
CREATE TABLE sync.privacy_receipts (
    receipt_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   uuid NOT NULL REFERENCES sync.privacy_requests (request_id),
    -- salesforce, hubspot, mailchimp, braze, outbound_webhooks, staging (raw, staging, core, sync)
    system       core.system_name NOT NULL,
    -- deleted, anonymized, gdpr_deleted, permanently_deleted, user_deleted, notified, purged,
    -- exported, not_held (the system never had the donor)
    action       text NOT NULL CHECK (action ~ '^[a-z][a-z_]*$'),
    status       text NOT NULL CHECK (status IN ('done', 'failed')),
    -- Remote ids acted on ([{"entity": ..., "id": ...}]); vendor ids, never emails.
    remote_refs  jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(remote_refs) = 'array'),
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(counts) = 'object'),
    -- The read-back check: after the action, the system was asked again and no longer holds
    -- the donor (verification says what was asked and what came back, ids only).
    verified     boolean NOT NULL DEFAULT false,
    verification text,
    error        text,
    attempts     integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    done_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request_id, system)
);
COMMENT ON TABLE sync.privacy_receipts IS 'What each system did for a privacy request and the read-back check proving it, ids only.';
