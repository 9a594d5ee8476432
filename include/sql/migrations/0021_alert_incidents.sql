-- 0021_alert_incidents: Slack alerts as incidents (issue 9).
--
-- One row per incident: a condition (a threshold breached, a task failed, a run missed its
-- deadline, an erasure deadline near) about one thing, from the evaluation that first saw it to
-- the one that saw it clear. The key names both (kind:scope, e.g. failed_share:hubspot,
-- task_failed:donations_hourly.push_hubspot, erasure_deadline:<request id>), and a key has at most
-- one open incident, so concurrent evaluations meet on the same row (INSERT ... ON CONFLICT) and
-- one Slack message goes out when it opens, one when it is resolved, and none while it continues.
-- A message that could not be delivered leaves its timestamp NULL: the next evaluation sends it.
-- Summaries hold names, ids, counts and classes only, never PII or an exception's message
-- (docs/alerts.md).
CREATE TABLE sync.alert_incidents (
    incident_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_key           text NOT NULL CHECK (incident_key = kind || ':' || scope),
    -- failed_share, dead_letter_growth, quota_reserve, circuit_open, scorecard_drop,
    -- erasure_deadline (threshold rules, include/mappings/alerts.yaml); task_failed,
    -- deadline_missed (Airflow's notifiers).
    kind                   text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    scope                  text NOT NULL CHECK (scope ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'),
    severity               text NOT NULL DEFAULT 'warning' CHECK (severity IN ('warning', 'critical')),
    summary                text NOT NULL CHECK (summary <> ''),  -- latest account: names, ids, counts
    resolution_summary     text,                   -- the account that cleared it
    runbook                text NOT NULL CHECK (runbook ~ '^[a-z0-9][a-z0-9-]*\.md$'),  -- docs/runbooks/<file>
    value                  numeric,                -- latest measured value (share, count, days...)
    threshold              numeric,                -- the threshold it was measured against
    dag_id                 text,                   -- the latest run that saw it, for the run link
    airflow_run_id         text,
    first_run_id           uuid,                   -- sync.runs (plain ids: runs are purged sooner)
    last_run_id            uuid,
    times_seen             integer NOT NULL DEFAULT 1 CHECK (times_seen > 0),
    clear_streak           integer NOT NULL DEFAULT 0 CHECK (clear_streak >= 0),  -- evaluations seen clear in a row
    last_clear_run_id      uuid,
    opened_at              timestamptz NOT NULL DEFAULT now(),
    last_seen_at           timestamptz NOT NULL DEFAULT now(),
    resolved_at            timestamptz,
    notified_at            timestamptz,            -- the opening message was delivered
    notified_severity      text CHECK (notified_severity IN ('warning', 'critical')),
    resolution_notified_at timestamptz,            -- the resolution message was delivered
    notify_failures        integer NOT NULL DEFAULT 0 CHECK (notify_failures >= 0),
    last_notify_error      text,                   -- exception class of the last failed delivery
    CHECK (resolved_at IS NULL OR resolved_at >= opened_at),
    CHECK ((notified_at IS NULL) = (notified_severity IS NULL)),
    CHECK (resolution_notified_at IS NULL OR (resolved_at IS NOT NULL AND notified_at IS NOT NULL))
);
COMMENT ON TABLE sync.alert_incidents IS 'Alert incidents (threshold breaches, task failures, missed deadlines, erasure deadlines): one Slack message when opened, one when resolved, silence in between.';
-- At most one open incident per key: the evaluation that inserts it sends its message; others
-- find it (ON CONFLICT) and count it seen.
CREATE UNIQUE INDEX alert_incidents_open_key ON sync.alert_incidents (incident_key) WHERE resolved_at IS NULL;
-- Messages still owed: open incidents (opening or escalation) and notified ones resolved since.
CREATE INDEX alert_incidents_pending_idx ON sync.alert_incidents (opened_at)
    WHERE resolved_at IS NULL OR (notified_at IS NOT NULL AND resolution_notified_at IS NULL);
CREATE INDEX alert_incidents_kind_idx ON sync.alert_incidents (kind, opened_at DESC);
