-- 0005_sync: pipeline state (issues 4, 6, 8, 9): runs and their metrics, watermarks, the outbox
-- and what each destination last received, push results, dead letters, the dedup review queue,
-- journey enrollments, API quota use, the audit log and circuit breakers.
--
-- Nothing here holds a secret; error texts and audit details carry ids, classes and counts,
-- never PII (the payloads of outbox rows and dead letters are minimized destination payloads).

---------------------------------------------------------------------------------------------------
-- sync.runs, sync.run_metrics
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.runs (
    run_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dag_id         text NOT NULL,                  -- Airflow DAG id, or 'cli:<command>' outside Airflow
    airflow_run_id text,                           -- Airflow's dag run id; NULL outside Airflow
    run_type       text NOT NULL CHECK (run_type IN ('scheduled', 'manual', 'backfill',
                                                     'asset_triggered', 'cli', 'test')),
    logical_date   timestamptz,                    -- NULL for manual runs (Airflow 3)
    dry_run        boolean NOT NULL DEFAULT false,
    params         jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),  -- never secrets
    status         text NOT NULL DEFAULT 'running'
                   CHECK (status IN ('running', 'success', 'failed', 'canceled')),
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE sync.runs IS 'One row per DAG run or command-line run of donor-sync, with its params and outcome.';
-- A retried task of the same Airflow run finds and reuses the run row.
CREATE UNIQUE INDEX runs_airflow_run_key ON sync.runs (dag_id, airflow_run_id);
-- Health endpoint: age of the last successful run per DAG.
CREATE INDEX runs_last_success_idx ON sync.runs (dag_id, finished_at DESC) WHERE status = 'success';
CREATE INDEX runs_started_idx ON sync.runs (started_at);

CREATE TABLE sync.run_metrics (
    run_metric_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        uuid NOT NULL REFERENCES sync.runs (run_id) ON DELETE CASCADE,
    stage         text NOT NULL CHECK (stage ~ '^[a-z][a-z0-9_]*$'),   -- extract, standardize, resolve, gate, push, journeys, quality...
    scope         text NOT NULL DEFAULT '' CHECK (scope = '' OR scope ~ '^[a-z][a-z0-9_]{0,62}$'),  -- source or destination; '' = whole stage
    -- Slice of a fanned-out task (map index, batch id) so parallel mapped tasks of one stage and
    -- scope each keep their own row; '' when not fanned out. Totals sum over parts.
    part          text NOT NULL DEFAULT '',
    metric        text NOT NULL CHECK (metric ~ '^[a-z][a-z0-9_]*$'),  -- records_read, staged, pushed, latency_p95...
    value         numeric NOT NULL,
    unit          text NOT NULL CHECK (unit IN ('records', 'calls', 'seconds', 'bytes', 'ratio', 'count')),
    task_id       text,                            -- Airflow task id that recorded it, informational
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sync.run_metrics IS 'Numbers each run records per stage and source or destination (counts, latencies, quality scores), upserted so a retried task overwrites its own.';
CREATE UNIQUE INDEX run_metrics_key ON sync.run_metrics (run_id, stage, scope, part, metric);
-- Dashboard trends: one metric over time.
CREATE INDEX run_metrics_trend_idx ON sync.run_metrics (stage, scope, metric, recorded_at);

-- Every extraction batch belongs to a run when one exists (tables created in 0002).
ALTER TABLE raw.batches
    ADD CONSTRAINT batches_run_fkey FOREIGN KEY (run_id) REFERENCES sync.runs (run_id) ON DELETE SET NULL;

---------------------------------------------------------------------------------------------------
-- sync.watermarks
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.watermarks (
    source     core.system_name NOT NULL,          -- also a CRM pulled back by reconciliation
    stream     text NOT NULL CHECK (stream ~ '^[a-z][a-z0-9_]*$'),
    -- Position: everything at or before (cursor_ts, cursor_id), ordered by timestamp then id, has
    -- been read. The next window starts at cursor_ts - overlap and skips rows <= the position
    -- only after the overlap has been re-read, so tied and late rows are never lost.
    cursor_ts  timestamptz,
    cursor_id  text,
    overlap    interval NOT NULL DEFAULT interval '10 minutes' CHECK (overlap >= interval '0'),
    state      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(state) = 'object'),  -- source-specific extras
    run_id     uuid REFERENCES sync.runs (run_id) ON DELETE SET NULL,  -- the run that last advanced it
    batch_id   bigint REFERENCES raw.batches (batch_id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, stream),
    CHECK (cursor_id IS NULL OR cursor_ts IS NOT NULL)
);
COMMENT ON TABLE sync.watermarks IS 'How far each source stream has been read: a (timestamp, id) cursor and an overlap window, advanced only when a run succeeds.';
CREATE TRIGGER watermarks_touch_updated_at BEFORE UPDATE ON sync.watermarks
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- sync.outbox
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.outbox (
    outbox_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination     core.system_name NOT NULL,
    -- Destination object: contact, household_account, opportunity, recurring_donation, deal,
    -- association, member, user, journey_trigger, event...
    entity          text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    -- Stable key of the record in donor-sync (donor_id, gift_key, plan_key, household_id, ...),
    -- also the external id the destination upserts on where it supports one.
    record_key      text NOT NULL CHECK (record_key <> ''),
    donor_id        uuid REFERENCES core.donors (donor_id),  -- for erasure, merges, gate re-checks
    operation       text NOT NULL CHECK (operation IN ('upsert', 'update', 'create', 'delete', 'archive',
                                                       'merge', 'unsubscribe', 'erase', 'trigger')),
    payload         jsonb NOT NULL,                -- minimized by the destination's PII profile
    -- Hash of the payload, computed the same way as sync.destination_state.last_payload_sha256
    -- (core.jsonb_sha256(payload) keeps both sides in agreement).
    payload_sha256  core.hash256 NOT NULL,
    priority        smallint NOT NULL DEFAULT 100, -- lower goes first; below the quota reserve only high priority goes
    state           sync.outbox_state NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- pending: when it is due (now, or the next rung of the retry ladder 1m, 5m, 15m, 1h, 4h, 24h);
    -- in_flight: when the worker's lease expires and another run may reclaim it.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,                          -- run / task instance holding the lease
    error_class     sync.failure_class,            -- of the last failed attempt
    error_code      text,
    error_message   text,                          -- vendor message without PII
    run_id          uuid,                          -- sync.runs that queued it (plain id: purging runs scans no outbox)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (state <> 'in_flight' OR claimed_by IS NOT NULL)
);
COMMENT ON TABLE sync.outbox IS 'Destination writes waiting, in flight or done: one row per changed destination record with its minimized payload, retry state and last error.';
-- At most one waiting row per destination record: a newer change replaces its payload
-- (INSERT ... ON CONFLICT (destination, entity, record_key) WHERE state = 'pending' DO UPDATE).
CREATE UNIQUE INDEX outbox_pending_key ON sync.outbox (destination, entity, record_key) WHERE state = 'pending';
-- At most one in flight per destination record: a second worker, or a second run of the DAG,
-- cannot claim it twice, and an older payload can never land after a newer one.
CREATE UNIQUE INDEX outbox_in_flight_key ON sync.outbox (destination, entity, record_key) WHERE state = 'in_flight';
-- The push queue: due pending rows, and in-flight rows whose lease expired.
CREATE INDEX outbox_queue_idx ON sync.outbox (destination, state, next_attempt_at)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX outbox_donor_idx ON sync.outbox (donor_id) WHERE donor_id IS NOT NULL;
CREATE INDEX outbox_created_brin ON sync.outbox USING brin (created_at);
CREATE TRIGGER outbox_touch_updated_at BEFORE UPDATE ON sync.outbox
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- sync.destination_state
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.destination_state (
    destination         core.system_name NOT NULL,
    entity              text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    record_key          text NOT NULL CHECK (record_key <> ''),
    donor_id            uuid REFERENCES core.donors (donor_id),
    remote_id           text,                      -- the destination's id of the record
    last_payload_sha256 core.hash256,              -- of the last payload that landed
    last_pushed_at      timestamptz,
    last_outbox_id      bigint,                    -- sync.outbox (plain id: the outbox is purged sooner)
    remote_deleted_at   timestamptz,               -- archived or deleted there (mirror mode, erasure)
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, entity, record_key)
);
COMMENT ON TABLE sync.destination_state IS 'What each destination record last received (payload hash, time) and its remote id, so only changed records are queued.';
-- Reconciliation and push results map a remote id back to the record.
CREATE INDEX destination_state_remote_idx ON sync.destination_state (destination, entity, remote_id)
    WHERE remote_id IS NOT NULL;
CREATE INDEX destination_state_donor_idx ON sync.destination_state (donor_id) WHERE donor_id IS NOT NULL;
CREATE TRIGGER destination_state_touch_updated_at BEFORE UPDATE ON sync.destination_state
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- sync.push_log
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.push_log (
    push_log_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id         bigint,                      -- sync.outbox (plain id: the outbox is purged sooner)
    run_id            uuid,                        -- sync.runs (plain id: kept as long as the log)
    destination       core.system_name NOT NULL,
    entity            text NOT NULL,
    record_key        text NOT NULL,
    operation         text NOT NULL,
    attempt           integer NOT NULL CHECK (attempt > 0),
    outcome           text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'skipped')),
    http_status       smallint,
    remote_id         text,
    error_class       sync.failure_class,
    error_code        text,                        -- vendor code: REQUEST_LIMIT_EXCEEDED, DUPLICATES_DETECTED...
    message           text,                        -- vendor message without PII
    vendor_request_id text,                        -- request id or Bulk API job id, for vendor support
    duration_ms       integer CHECK (duration_ms >= 0),
    pushed_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (outcome <> 'failed' OR error_class IS NOT NULL)
);
COMMENT ON TABLE sync.push_log IS 'Result of every push attempt of every record to a destination: outcome, remote id, error class and code.';
CREATE INDEX push_log_destination_idx ON sync.push_log (destination, pushed_at);
CREATE INDEX push_log_record_idx ON sync.push_log (destination, entity, record_key, pushed_at);

---------------------------------------------------------------------------------------------------
-- sync.dead_letters
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.dead_letters (
    dead_letter_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        bigint,                       -- sync.outbox row that died (plain id)
    destination      core.system_name NOT NULL,
    entity           text NOT NULL,
    record_key       text NOT NULL,
    donor_id         uuid REFERENCES core.donors (donor_id),
    operation        text NOT NULL,
    payload          jsonb NOT NULL,               -- as last attempted
    payload_sha256   core.hash256 NOT NULL,
    edited_payload   jsonb,                        -- operator's correction (dlq edit), replayed instead
    error_class      sync.failure_class NOT NULL,
    error_code       text,
    message          text,                         -- vendor message without PII
    remediation      text NOT NULL,                -- what a person should do, per error class
    attempts         integer NOT NULL CHECK (attempts >= 0),
    first_failed_at  timestamptz NOT NULL,
    last_failed_at   timestamptz NOT NULL,
    -- open: waiting for a person; replayed: re-queued as it was; edited: re-queued with
    -- edited_payload; discarded: dropped on purpose.
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'replayed', 'discarded', 'edited')),
    replay_outbox_id bigint,                       -- sync.outbox row a replay created
    resolved_by      text,
    resolved_at      timestamptz,
    note             text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (last_failed_at >= first_failed_at),
    CHECK ((status = 'open') = (resolved_at IS NULL)),
    CHECK (status = 'open' OR resolved_by IS NOT NULL),
    CHECK (status <> 'edited' OR edited_payload IS NOT NULL)
);
COMMENT ON TABLE sync.dead_letters IS 'Records a destination would not take after the retry ladder, with payload, error, class and remediation, until replayed, edited or discarded.';
CREATE UNIQUE INDEX dead_letters_open_key ON sync.dead_letters (destination, entity, record_key) WHERE status = 'open';
-- dlq list / dlq_replay params (destination, error class), depth and age on the dashboard.
CREATE INDEX dead_letters_open_idx ON sync.dead_letters (destination, error_class, first_failed_at) WHERE status = 'open';
CREATE INDEX dead_letters_donor_idx ON sync.dead_letters (donor_id) WHERE donor_id IS NOT NULL;
CREATE TRIGGER dead_letters_touch_updated_at BEFORE UPDATE ON sync.dead_letters
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- sync.review_queue
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.review_queue (
    review_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The pair in canonical order, so each pair has one row whatever order it was found in.
    left_donor_id  uuid NOT NULL REFERENCES core.donors (donor_id),
    right_donor_id uuid NOT NULL REFERENCES core.donors (donor_id),
    score          numeric NOT NULL,
    -- Per-field contributions: {field: {level, weight}}; field names and numbers, no values.
    contributions  jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(contributions) = 'object'),
    band           text NOT NULL CHECK (band IN ('auto_merge', 'review', 'keep_apart')),
    rules_version  text,                           -- dedup rules that scored it (file hash)
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'deferred', 'decided', 'superseded')),
    decision       text CHECK (decision IN ('approve', 'reject')),
    decided_by     text,
    decided_at     timestamptz,
    note           text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (left_donor_id < right_donor_id),
    CHECK ((status = 'decided') = (decision IS NOT NULL)),
    CHECK (decision IS NULL OR (decided_by IS NOT NULL AND decided_at IS NOT NULL))
);
COMMENT ON TABLE sync.review_queue IS 'Candidate duplicate donor pairs with score and per-field explanation, and the reviewer''s decision; a rejected pair is never proposed again.';
-- One row per pair, ever: proposing a pair again is ON CONFLICT DO NOTHING, so a rejection sticks
-- and decisions accumulate as labelled pairs for fitting weights.
CREATE UNIQUE INDEX review_queue_pair_key ON sync.review_queue (left_donor_id, right_donor_id);
CREATE INDEX review_queue_right_idx ON sync.review_queue (right_donor_id);
CREATE INDEX review_queue_open_idx ON sync.review_queue (status, score DESC) WHERE status IN ('pending', 'deferred');
CREATE TRIGGER review_queue_touch_updated_at BEFORE UPDATE ON sync.review_queue
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

-- Merges approved in the queue point at their review (table created in 0004).
ALTER TABLE core.cluster_map
    ADD CONSTRAINT cluster_map_review_fkey FOREIGN KEY (review_id) REFERENCES sync.review_queue (review_id);

---------------------------------------------------------------------------------------------------
-- sync.journey_enrollments
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.journey_enrollments (
    enrollment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gift_key      text NOT NULL REFERENCES core.gifts (gift_key) ON UPDATE CASCADE,
    journey_id    text NOT NULL CHECK (journey_id ~ '^[a-z][a-z0-9_]*$'),  -- from include/mappings
    donor_id      uuid NOT NULL REFERENCES core.donors (donor_id),
    destination   core.system_name NOT NULL,
    -- pending: entered, trigger waiting (quiet hours, outbox); triggered: the destination accepted
    -- the trigger; suppressed: the gate refused (reason_code); holdout: experiment control, no
    -- trigger; capped: frequency cap reached; failed: the trigger dead-lettered.
    status        text NOT NULL CHECK (status IN ('pending', 'triggered', 'suppressed', 'holdout', 'capped', 'failed')),
    -- Why suppressed or capped: deceased, do_not_contact, do_not_solicit, no_consent, bounced,
    -- cleaned, erased, in_memoriam_only, minor, frequency_cap...
    reason_code   text CHECK (reason_code ~ '^[a-z][a-z0-9_]*$'),
    experiment_id text,                            -- A/B test or holdout, assigned by keyed hash
    variant       text,
    outbox_id     bigint,                          -- sync.outbox row carrying the trigger (plain id)
    decided_at    timestamptz NOT NULL DEFAULT now(),
    triggered_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (status NOT IN ('suppressed', 'capped') OR reason_code IS NOT NULL),
    CHECK ((status = 'triggered') = (triggered_at IS NOT NULL)),
    CHECK ((experiment_id IS NULL) = (variant IS NULL))
);
COMMENT ON TABLE sync.journey_enrollments IS 'Which gift entered which stewardship journey, or why it did not, so no gift ever triggers a journey twice.';
-- Once only: whatever re-runs or replays happen, a gift has one row per journey (insert with
-- ON CONFLICT DO NOTHING before queueing the trigger).
CREATE UNIQUE INDEX journey_enrollments_gift_journey_key ON sync.journey_enrollments (gift_key, journey_id);
-- Frequency cap: a donor's entries within a window.
CREATE INDEX journey_enrollments_donor_idx ON sync.journey_enrollments (donor_id, decided_at);
CREATE TRIGGER journey_enrollments_touch_updated_at BEFORE UPDATE ON sync.journey_enrollments
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

---------------------------------------------------------------------------------------------------
-- sync.api_usage
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.api_usage (
    api_usage_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor          core.system_name NOT NULL,
    connection_id   text NOT NULL DEFAULT '',      -- Airflow connection, when a vendor has several
    -- The vendor's quota window ("window" is a reserved word): per_10s, daily, rolling_24h, ...
    quota_window    text NOT NULL CHECK (quota_window ~ '^[a-z0-9_]+$'),
    window_start    timestamptz NOT NULL,          -- start of that window (or of our sampling bucket)
    calls           bigint NOT NULL DEFAULT 0 CHECK (calls >= 0),  -- calls we made in it
    quota_limit     bigint,                        -- as the vendor reports it
    quota_remaining bigint,                        -- last value the vendor reported
    observed_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sync.api_usage IS 'API calls made and quota remaining per vendor and quota window, as the vendors report them.';
-- One row per vendor window; hooks add their calls and store the latest remaining quota.
CREATE UNIQUE INDEX api_usage_window_key ON sync.api_usage (vendor, connection_id, quota_window, window_start);
CREATE INDEX api_usage_observed_idx ON sync.api_usage (vendor, observed_at DESC);

---------------------------------------------------------------------------------------------------
-- sync.audit_log (append-only)
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,                     -- user, cli:<user>, dag:<dag_id>.<task_id>, api:<client>
    -- object.verb: donor.merged, donor.unmerged, consent.changed, donor.erased, donor.exported,
    -- pii.accessed, review.decided, dlq.replayed, dlq.edited, dlq.discarded, config.changed...
    action      text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    object_type text,                              -- donor, review, dead_letter, privacy_request...
    object_id   text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),  -- ids, counts, reasons; never PII
    run_id      uuid                               -- sync.runs (plain id: the log outlives runs)
);
COMMENT ON TABLE sync.audit_log IS 'Append-only record of who did what to which object (merges, consent changes, erasures, exports, replays, PII access), without PII.';
CREATE INDEX audit_log_object_idx ON sync.audit_log (object_type, object_id, at);
CREATE INDEX audit_log_action_idx ON sync.audit_log (action, at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON sync.audit_log
    FOR EACH ROW EXECUTE FUNCTION core.forbid_update_delete();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON sync.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION core.forbid_update_delete();

---------------------------------------------------------------------------------------------------
-- sync.circuit_breakers
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.circuit_breakers (
    destination          core.system_name PRIMARY KEY,
    state                text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    -- Failure-rate window: calls and failures since window_started_at.
    window_started_at    timestamptz NOT NULL DEFAULT now(),
    window_calls         integer NOT NULL DEFAULT 0 CHECK (window_calls >= 0),
    window_failures      integer NOT NULL DEFAULT 0 CHECK (window_failures >= 0),
    opened_at            timestamptz,
    next_probe_at        timestamptz,              -- when an open breaker lets one probe through
    last_failure_at      timestamptz,
    last_error_class     sync.failure_class,
    last_success_at      timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (window_failures <= window_calls),
    CHECK (state = 'closed' OR opened_at IS NOT NULL),
    CHECK (state <> 'open' OR next_probe_at IS NOT NULL)
);
COMMENT ON TABLE sync.circuit_breakers IS 'Circuit breaker per destination: closed, open (pushes stopped until the next probe) or half-open, with the failure counts that drive it.';
CREATE TRIGGER circuit_breakers_touch_updated_at BEFORE UPDATE ON sync.circuit_breakers
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();
