-- 0002_raw: landing zone. Everything a source sends is kept here as received, before any
-- interpretation, so that every later stage can be re-run from it and every record reconciled.
--
-- One raw.records table for every source and entity, not one table per entity, because:
--   * sources deliver heterogeneous objects (Stripe charges, payment intents, refunds, customers,
--     events; Donorbox donations with the donor embedded; Classy transactions and supporters;
--     CSV rows that carry a donor and a gift at once) and that list grows with every source;
--   * one COPY path, one idempotency key, one retention purge and one reconciliation query
--     (raw vs staging.dispositions) then serve them all;
--   * the (source, entity, ...) key prefix and the batch index give each reader its slice.
-- Not partitioned: a unique key on a partitioned table must include the partition key, which
-- would break the idempotency key below; retention deletes by received_at through a BRIN index.
--
-- Foreign keys inside raw are kept: measured on PostgreSQL 15 (2 cores), COPY of 1,000,000
-- records of about 750 bytes took the same time with and without the batch foreign key (about
-- 26 s either way, of which about 4 s is the generated payload hash and 3.5 s the idempotency
-- index). Lineage links to the webhook inbox and CSV files are ON DELETE SET NULL, so those can
-- be purged sooner than the records.

---------------------------------------------------------------------------------------------------
-- raw.batches
---------------------------------------------------------------------------------------------------
CREATE TABLE raw.batches (
    batch_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id              uuid,                      -- sync.runs; foreign key added in 0005
    source              core.system_name NOT NULL,
    stream              text NOT NULL CHECK (stream ~ '^[a-z][a-z0-9_]*$'),
    channel             text NOT NULL CHECK (channel IN ('api', 'csv', 'webhook')),
    -- Time window asked of the source (watermark minus overlap .. now); NULL for CSV files and
    -- webhook inbox drains, which are not windowed.
    window_start        timestamptz,
    window_end          timestamptz,
    -- Highest (timestamp, id) read in this batch: becomes sync.watermarks' cursor when the run
    -- succeeds, and is left unused when it fails.
    cursor_ts           timestamptz,
    cursor_id           text,
    -- Reconciliation. read: records received from the source; loaded: new rows in raw.records
    -- (read minus versions already held); reported: the total the source says the window holds,
    -- where its API can tell; staged + quarantined + skipped must equal loaded once standardized.
    records_read        bigint NOT NULL DEFAULT 0 CHECK (records_read >= 0),
    records_loaded      bigint NOT NULL DEFAULT 0 CHECK (records_loaded >= 0),
    records_reported    bigint CHECK (records_reported >= 0),
    records_staged      bigint NOT NULL DEFAULT 0 CHECK (records_staged >= 0),
    records_quarantined bigint NOT NULL DEFAULT 0 CHECK (records_quarantined >= 0),
    records_skipped     bigint NOT NULL DEFAULT 0 CHECK (records_skipped >= 0),
    status              text NOT NULL DEFAULT 'extracting'
                        CHECK (status IN ('extracting', 'loaded', 'standardized', 'failed')),
    error               text,                      -- class and ids only, never PII or secrets
    started_at          timestamptz NOT NULL DEFAULT now(),
    loaded_at           timestamptz,
    finished_at         timestamptz,
    CHECK (window_end IS NULL OR window_start IS NULL OR window_end >= window_start),
    CHECK (records_loaded <= records_read)
);
COMMENT ON TABLE raw.batches IS 'One extraction of one source stream (an API window, a CSV file or a webhook drain), with its counts read, loaded and reported for reconciliation.';
CREATE INDEX batches_source_stream_started_idx ON raw.batches (source, stream, started_at DESC);
CREATE INDEX batches_run_idx ON raw.batches (run_id);
CREATE INDEX batches_unfinished_idx ON raw.batches (started_at) WHERE status IN ('extracting', 'loaded');

---------------------------------------------------------------------------------------------------
-- raw.records
---------------------------------------------------------------------------------------------------
CREATE TABLE raw.records (
    raw_record_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id          bigint NOT NULL REFERENCES raw.batches (batch_id),
    source            core.system_name NOT NULL,
    -- The source's own object type: charge, payment_intent, refund, customer, donation,
    -- transaction, supporter, recurring_plan, csv_row, ...
    entity            text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    -- The source's id of the object (for CSV rows: the mapped id column, else file hash + line).
    source_id         text NOT NULL CHECK (source_id <> ''),
    channel           text NOT NULL CHECK (channel IN ('api', 'csv', 'webhook')),
    -- The source's own modification (else creation) time of this version, when it carries one:
    -- orders versions of one object and drives the watermark.
    source_updated_at timestamptz,
    fetched_at        timestamptz NOT NULL,        -- when the extractor read it from the source
    received_at       timestamptz NOT NULL DEFAULT now(),  -- when it landed in this table
    payload           jsonb NOT NULL,              -- exactly as received
    -- Canonical hash of the payload: equal content hashes equal whatever the key order or spacing.
    payload_sha256    bytea NOT NULL GENERATED ALWAYS AS (core.jsonb_sha256(payload)) STORED,
    webhook_event_id  bigint,                      -- raw.webhook_inbox, for channel 'webhook' (FK below)
    csv_file_id       bigint,                      -- raw.csv_files, for channel 'csv' (FK below)
    csv_line          bigint CHECK (csv_line > 0), -- physical line in the file, for error messages
    CHECK (channel = 'csv' OR csv_file_id IS NULL),
    CHECK (channel = 'webhook' OR webhook_event_id IS NULL)
);
COMMENT ON TABLE raw.records IS 'Every version of every object received from any source, with its jsonb payload exactly as received.';
COMMENT ON COLUMN raw.records.payload_sha256 IS 'core.jsonb_sha256(payload); part of the idempotency key.';
-- Idempotency: loading the same window again (or the same object by API and by webhook) adds
-- nothing; a changed object adds one new version. Loaders COPY into a temporary table and
-- INSERT ... ON CONFLICT DO NOTHING. Versions are told apart by content, so an object that
-- returns to an earlier identical content keeps its later version as latest: order versions by
-- source_updated_at first, which real changes carry.
-- The key's (source, entity, source_id) prefix also serves lookups by source id (versions of one
-- object, erasure purges).
CREATE UNIQUE INDEX records_version_key ON raw.records (source, entity, source_id, payload_sha256);
CREATE INDEX records_batch_idx ON raw.records (batch_id);
-- Retention purges by age; rows arrive in time order, so BRIN is tiny and enough.
CREATE INDEX records_received_brin ON raw.records USING brin (received_at);

---------------------------------------------------------------------------------------------------
-- raw.webhook_inbox
---------------------------------------------------------------------------------------------------
CREATE TABLE raw.webhook_inbox (
    webhook_event_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source             core.system_name NOT NULL,
    event_id           text NOT NULL CHECK (event_id <> ''),  -- the platform's event id
    event_type         text,                       -- e.g. charge.refunded, donation.created
    event_created_at   timestamptz,                -- the platform's event time, when it sends one
    -- Request headers with lower-case names, minus credentials: the receiver drops
    -- Authorization, Cookie and API-key headers before writing (enforced below).
    headers            jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(headers) = 'object'),
    content_type       text,
    body               jsonb NOT NULL,             -- parsed JSON body
    body_sha256        core.hash256 NOT NULL,      -- SHA-256 of the exact bytes received
    body_bytes         integer NOT NULL CHECK (body_bytes >= 0),
    -- stripe_v1 (Stripe-Signature), hmac_sha256 (our scheme for platforms without one), none.
    signature_scheme   text NOT NULL CHECK (signature_scheme IN ('stripe_v1', 'hmac_sha256', 'none')),
    signature_verified boolean NOT NULL,
    remote_addr        inet,                       -- platform server address, for the allow-list
    received_at        timestamptz NOT NULL DEFAULT now(),
    -- Set when the drain has turned the event into raw.records (or decided to ignore it).
    processed_at       timestamptz,
    process_attempts   integer NOT NULL DEFAULT 0 CHECK (process_attempts >= 0),
    process_error      text,                       -- class and ids only, never PII or secrets
    CHECK (NOT (headers ?| ARRAY['authorization', 'proxy-authorization', 'cookie', 'set-cookie',
                                 'x-api-key', 'api-key'])),
    CHECK (signature_scheme <> 'none' OR NOT signature_verified)
);
COMMENT ON TABLE raw.webhook_inbox IS 'Webhook events durably written by the receiver before it answers 2xx, one per platform event id.';
-- Replays and duplicate deliveries: the receiver inserts ON CONFLICT DO NOTHING on this key.
CREATE UNIQUE INDEX webhook_inbox_event_key ON raw.webhook_inbox (source, event_id);
-- The drain's queue.
CREATE INDEX webhook_inbox_unprocessed_idx ON raw.webhook_inbox (received_at) WHERE processed_at IS NULL;
CREATE INDEX webhook_inbox_received_brin ON raw.webhook_inbox USING brin (received_at);

---------------------------------------------------------------------------------------------------
-- raw.csv_files
---------------------------------------------------------------------------------------------------
CREATE TABLE raw.csv_files (
    csv_file_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           core.system_name NOT NULL,    -- system the export came from (raw.records.source)
    format           text NOT NULL CHECK (format ~ '^[a-z][a-z0-9_]*$'),  -- export format in the config
    path             text NOT NULL,                -- where the file was found in the drop folder
    sha256           core.hash256 NOT NULL,        -- of the file's bytes
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    encoding         text NOT NULL,                -- detected or declared (utf-8, cp1252, ...)
    file_modified_at timestamptz,
    rows             bigint NOT NULL CHECK (rows >= 0),  -- data rows read (header excluded)
    batch_id         bigint NOT NULL REFERENCES raw.batches (batch_id),
    loaded_at        timestamptz NOT NULL DEFAULT now(),
    archived_to      text,                         -- where the file was moved after loading
    archived_at      timestamptz,
    CHECK ((archived_to IS NULL) = (archived_at IS NULL))
);
COMMENT ON TABLE raw.csv_files IS 'CSV files loaded from the drop folder, each loaded once (by content hash) and then archived.';
-- Each file is loaded once: the row is inserted in the same transaction as its records, so a
-- failed load leaves no row and the file is retried; the same bytes under another name are skipped.
CREATE UNIQUE INDEX csv_files_sha256_key ON raw.csv_files (sha256);
CREATE INDEX csv_files_batch_idx ON raw.csv_files (batch_id);

---------------------------------------------------------------------------------------------------
-- Lineage from records to the inbox event or file they came from (tables above created first).
---------------------------------------------------------------------------------------------------
ALTER TABLE raw.records
    ADD CONSTRAINT records_webhook_event_fkey FOREIGN KEY (webhook_event_id)
        REFERENCES raw.webhook_inbox (webhook_event_id) ON DELETE SET NULL,
    ADD CONSTRAINT records_csv_file_fkey FOREIGN KEY (csv_file_id)
        REFERENCES raw.csv_files (csv_file_id) ON DELETE SET NULL;
-- Partial indexes so purging an inbox event or a file finds its records without a scan.
CREATE INDEX records_webhook_event_idx ON raw.records (webhook_event_id) WHERE webhook_event_id IS NOT NULL;
CREATE INDEX records_csv_file_idx ON raw.records (csv_file_id) WHERE csv_file_id IS NOT NULL;
