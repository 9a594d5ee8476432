-- 0008_resolve_donors: what the donor side of identity resolution needs besides 0004/0005 (issue 5).
--
-- core.donor_match_keys  each live golden record's blocking keys, one row per (donor, pass), so a
--                        new record is matched by looking its keys up (btree on (pass, key_hash))
--                        instead of re-running the whole base. Kept current by resolve, merges and
--                        unmerges (donor_sync.resolve.match_store). Keys are stored as 64-bit hashes
--                        (hashtextextended): a fixed-width index, no PII in it; a rare collision only
--                        adds a candidate pair, which scoring then rejects.
-- core.merge_decisions   one row per decision that moved source records between existing donors
--                        (review approvals, manual merges) or attached new records to a golden record
--                        (auto_merge, deterministic), with what it changed, so unmerge can undo
--                        exactly that decision.
-- core.cluster_map.closed_by_decision  the decision that closed a mapping row; unmerge reopens the
--                        rows its decision closed.

---------------------------------------------------------------------------------------------------
-- core.donor_match_keys
---------------------------------------------------------------------------------------------------
CREATE TABLE core.donor_match_keys (
    donor_id  uuid NOT NULL REFERENCES core.donors (donor_id) ON DELETE CASCADE,
    pass      smallint NOT NULL CHECK (pass >= 0),   -- index of the blocking pass in dedup.yaml
    key_hash  bigint NOT NULL,                       -- hashtextextended(key, 0)
    PRIMARY KEY (donor_id, pass)
);
COMMENT ON TABLE core.donor_match_keys IS 'Blocking keys (hashed) of each live golden donor record, per pass of the dedup rules, for incremental matching.';
CREATE INDEX donor_match_keys_lookup_idx ON core.donor_match_keys (pass, key_hash) INCLUDE (donor_id);

-- Which rules the stored keys were computed with: a changed blocking section means a rebuild.
CREATE TABLE core.donor_match_keys_version (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rules_version text NOT NULL,                     -- hash of the blocking passes
    built_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE core.donor_match_keys_version IS 'The blocking rules core.donor_match_keys was built with (one row).';

---------------------------------------------------------------------------------------------------
-- core.merge_decisions
---------------------------------------------------------------------------------------------------
CREATE TABLE core.merge_decisions (
    decision_id     uuid PRIMARY KEY,               -- core.cluster_map.decision_id of its rows
    decision        text NOT NULL CHECK (decision IN ('deterministic', 'auto_merge', 'review_approved', 'manual_merge')),
    survivor_id     uuid NOT NULL REFERENCES core.donors (donor_id),
    -- The donor merged away (review approvals, manual merges); NULL when new records were attached.
    merged_donor_id uuid REFERENCES core.donors (donor_id),
    -- Donors that had been merged into merged_donor_id and were re-pointed at the survivor (never chained).
    repointed       uuid[] NOT NULL DEFAULT '{}',
    review_id       bigint REFERENCES sync.review_queue (review_id),
    decided_by      text NOT NULL,
    decided_at      timestamptz NOT NULL,
    undone_at       timestamptz,
    undone_by       text,
    undo_decision_id uuid,                          -- cluster_map.decision_id of the unmerge
    CHECK ((undone_at IS NULL) = (undone_by IS NULL))
);
COMMENT ON TABLE core.merge_decisions IS 'Decisions that put records with an existing donor or merged two donors, with what they changed, so each can be undone exactly.';
CREATE INDEX merge_decisions_survivor_idx ON core.merge_decisions (survivor_id) WHERE undone_at IS NULL;
CREATE INDEX merge_decisions_merged_idx ON core.merge_decisions (merged_donor_id) WHERE undone_at IS NULL;

---------------------------------------------------------------------------------------------------
-- core.cluster_map: the decision that closed a row
---------------------------------------------------------------------------------------------------
ALTER TABLE core.cluster_map ADD COLUMN closed_by_decision uuid;
COMMENT ON COLUMN core.cluster_map.closed_by_decision IS 'decision_id of the decision that closed this row (set with valid_to); unmerge reopens the rows its decision closed.';
CREATE INDEX cluster_map_closed_by_idx ON core.cluster_map (closed_by_decision) WHERE closed_by_decision IS NOT NULL;
