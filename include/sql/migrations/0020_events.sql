-- 0020_events: outbound events (issue 8): the log of every standard event donor-sync produced.
--
-- One row per event and schema version (docs/events.md): the envelope exactly as subscribers get
-- it ({id, type, version, occurred_at, data}; data holds ids and business facts, never PII).
-- fact_key names the fact the event reports (donation.created:<gift key>,
-- donor.merged:<decision id>...), so a producer run again over the same facts finds its events
-- and writes nothing: the event id is uuid5(namespace, fact key), the same in every version.
-- Delivery is the outbox's: one sync.outbox row per event and subscriber (destination
-- webhook_<subscriber>, entity = the type with '_' for '.', record_key = the event id).
CREATE TABLE sync.events (
    event_id    uuid NOT NULL,
    version     smallint NOT NULL CHECK (version > 0),
    event_type  text NOT NULL CHECK (event_type ~ '^[a-z]+(\.[a-z_]+)+$'),
    fact_key    text NOT NULL CHECK (fact_key <> ''),
    occurred_at timestamptz NOT NULL,
    envelope    jsonb NOT NULL CHECK (jsonb_typeof(envelope) = 'object'),
    donor_id    uuid,                              -- the donor it is about (plain id: erasure keeps ids)
    run_id      uuid,                              -- sync.runs that produced it (plain id)
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, version)
);
COMMENT ON TABLE sync.events IS 'Standard outbound events (donation.created, donation.refunded, donor.merged, consent.changed, donor.erased) as delivered to subscribers, one per fact and schema version.';
CREATE UNIQUE INDEX events_fact_key ON sync.events (fact_key, version);
CREATE INDEX events_type_created_idx ON sync.events (event_type, created_at);
CREATE INDEX events_donor_idx ON sync.events (donor_id) WHERE donor_id IS NOT NULL;
