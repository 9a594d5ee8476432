-- 0022_health_metrics: indexes the run-health figures read (issue 9, donor_sync.observability.metrics).
--
-- Each run ends by recording its health figures (latency, dead letters, journeys, consent
-- events...) over its own window, sync.runs.started_at .. finished_at. These indexes let each of
-- those lookups read the rows of the window instead of the whole table; the other lookups use
-- indexes that already exist (push_log by destination and time and by record, the open dead
-- letters, the webhook inbox's BRIN on received_at, staging.dispositions by batch).

-- Gifts that first landed at a destination in the window (latency from gift to destination).
CREATE INDEX gift_destinations_first_pushed_idx ON core.gift_destinations (first_pushed_at);

-- Dead letters created in the window ("new" per destination).
CREATE INDEX dead_letters_created_idx ON sync.dead_letters (created_at);

-- Journey enrollments decided in the window (entered / suppressed per journey).
CREATE INDEX journey_enrollments_decided_idx ON sync.journey_enrollments (decided_at);

-- Consent events recorded in the window. The table is append-only and recorded_at follows
-- insertion order, so a BRIN index is enough and stays tiny.
CREATE INDEX consent_events_recorded_brin ON core.consent_events USING brin (recorded_at);
