-- 0010_delivery: what the delivery engine (issue 6) keeps beyond the outbox of 0005.
--
-- * sync.outbox gains the rendered record's dependencies (an Opportunity waits for its Contact,
--   a HubSpot association for its deal and contact) and its "set only if empty" fields.
-- * sync.destination_merges: donor merges reaching each destination -- by the vendor's merge API
--   (HubSpot) or listed for a person to merge in the CRM (Salesforce has no merge in its REST API
--   for the integration user's purposes; NPSP's merge keeps household rollups right).
-- * core.gift_destinations: each gift's remote id per destination, beside the donors' remote ids
--   in core.donor_sources (role 'destination').
-- * sync.describe_cache: destination metadata (Salesforce describe, HubSpot properties) used to
--   check picklist values, cached with its fetch time.
-- (donor_sync.delivery; contracts in donor_sync.delivery.contracts.)

ALTER TABLE sync.outbox
    ADD COLUMN depends_on   jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(depends_on) = 'array'),
    ADD COLUMN set_if_empty text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN sync.outbox.depends_on IS 'Records that must land first: [{"entity": ..., "record_key": ...}]; the push waits for their remote ids.';
COMMENT ON COLUMN sync.outbox.set_if_empty IS 'Payload fields written only where the destination holds no value yet.';

CREATE TABLE sync.destination_merges (
    destination_merge_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination          core.system_name NOT NULL,
    entity               text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),
    survivor_key         text NOT NULL,            -- record_key of the surviving record (donor id)
    merged_key           text NOT NULL,            -- record_key of the record merged away
    survivor_remote_id   text,
    merged_remote_id     text,
    decision_id          uuid,                     -- core.merge_decisions that merged the donors
    -- api: done through the vendor's merge endpoint; crm_task: listed for a person to merge in the CRM.
    method               text NOT NULL CHECK (method IN ('api', 'crm_task')),
    -- pending: waiting for the push (api) or for a person (crm_task); merged: the vendor merged
    -- them (api) or a person marked it done; failed: the merge call dead-lettered; superseded:
    -- the donor merge was undone before the destination merge happened.
    status               text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'merged', 'failed', 'superseded')),
    outbox_id            bigint,                   -- sync.outbox row carrying an api merge (plain id)
    resolved_by          text,
    resolved_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (survivor_key <> merged_key),
    CHECK ((status = 'pending') = (resolved_at IS NULL))
);
COMMENT ON TABLE sync.destination_merges IS 'Donor merges reaching each destination: merged through the vendor API, or listed for a merge in the CRM.';
CREATE UNIQUE INDEX destination_merges_open_key ON sync.destination_merges (destination, entity, merged_key)
    WHERE status = 'pending';
CREATE INDEX destination_merges_status_idx ON sync.destination_merges (destination, status, created_at);
CREATE TRIGGER destination_merges_touch_updated_at BEFORE UPDATE ON sync.destination_merges
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION core.touch_updated_at();

CREATE TABLE core.gift_destinations (
    gift_id     uuid NOT NULL REFERENCES core.gifts (gift_id) ON DELETE CASCADE,
    destination core.system_name NOT NULL,
    entity      text NOT NULL CHECK (entity ~ '^[a-z][a-z0-9_]*$'),  -- opportunity, deal...
    remote_id   text NOT NULL CHECK (remote_id <> ''),
    first_pushed_at timestamptz NOT NULL DEFAULT now(),
    last_pushed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gift_id, destination, entity)
);
COMMENT ON TABLE core.gift_destinations IS 'Remote id of each gift in each destination (Opportunity, deal).';
CREATE INDEX gift_destinations_remote_idx ON core.gift_destinations (destination, entity, remote_id);

CREATE TABLE sync.describe_cache (
    destination core.system_name NOT NULL,
    object_name text NOT NULL,                     -- Contact, Opportunity, contacts, deals...
    api_version text NOT NULL DEFAULT '',
    metadata    jsonb NOT NULL,                    -- the vendor's describe / properties document
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (destination, object_name, api_version)
);
COMMENT ON TABLE sync.describe_cache IS 'Destination object metadata (fields, types, picklist values) with its fetch time, for mapping validation.';
