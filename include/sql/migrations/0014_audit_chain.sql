-- 0014_audit_chain: sync.audit_log becomes a tamper-evident hash chain (issue 7).
--
-- Every row gets a gap-free sequence number (chain_seq), the hash of its predecessor (prev_hash)
-- and its own hash:
--
--     row_hash = sha256(prev_hash || utf8(sync.audit_canonical(row)))
--
-- The first row's prev_hash is 32 zero bytes. A BEFORE INSERT trigger fills the three columns
-- (whatever the writer supplied is overwritten); writers serialise on a transaction-level advisory
-- lock, so concurrent transactions form one chain. Keep audit writes short and late in a
-- transaction: the lock is held until it commits. Under REPEATABLE READ or SERIALIZABLE a writer
-- that cannot see a concurrent writer's row fails on the UNIQUE chain_seq instead of forking.
--
-- `donor-sync audit verify` (donor_sync.privacy.audit_chain) recomputes every hash in Python; the
-- canonical text below and _canonical() there must stay identical. Changing the format needs a
-- new version tag ('v1') and a new migration.
--
-- sync.audit_anchors records the chain head from time to time (`donor-sync audit anchor`, the
-- nightly DAG). A copy of an anchor kept outside the database detects a truncated tail or a chain
-- rewritten end to end by someone who can bypass the triggers.

ALTER TABLE sync.audit_log
    ADD COLUMN chain_seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash  bytea;

-- The canonical text of one row: a version tag, then each field as <length>:<value> (NULL as '-'),
-- joined by '|'. Length prefixes make it unambiguous whatever the values contain. `at` is written
-- as integer microseconds since the Unix epoch (no time zone or DateStyle dependence); details as
-- the jsonb's own text form (keys in jsonb order, one canonical spelling per value).
CREATE FUNCTION sync.audit_canonical(
    p_audit_id bigint, p_chain_seq bigint, p_at timestamptz, p_actor text, p_action text,
    p_object_type text, p_object_id text, p_details jsonb, p_run_id uuid
) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'v1|' || concat_ws('|',
        coalesce(length(p_audit_id::text) || ':' || p_audit_id::text, '-'),
        coalesce(length(p_chain_seq::text) || ':' || p_chain_seq::text, '-'),
        coalesce(length(m.t) || ':' || m.t, '-'),
        coalesce(length(p_actor) || ':' || p_actor, '-'),
        coalesce(length(p_action) || ':' || p_action, '-'),
        coalesce(length(p_object_type) || ':' || p_object_type, '-'),
        coalesce(length(p_object_id) || ':' || p_object_id, '-'),
        coalesce(length(p_details::text) || ':' || p_details::text, '-'),
        coalesce(length(p_run_id::text) || ':' || p_run_id::text, '-'))
    FROM (SELECT (extract(epoch FROM p_at) * 1000000)::bigint::text AS t) AS m
$$;
COMMENT ON FUNCTION sync.audit_canonical IS 'Canonical text of an audit row hashed into the chain; mirrored by donor_sync.privacy.audit_chain.';

CREATE FUNCTION sync.audit_chain_link() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_seq  bigint;
    head_hash bytea;
BEGIN
    -- One chain: every writer waits here for the previous one to commit.
    PERFORM pg_advisory_xact_lock(7404127650913);  -- fixed key of the audit chain
    SELECT chain_seq, row_hash INTO head_seq, head_hash
      FROM sync.audit_log ORDER BY chain_seq DESC LIMIT 1;
    NEW.chain_seq := coalesce(head_seq, 0) + 1;
    NEW.prev_hash := coalesce(head_hash, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
    NEW.row_hash := sha256(NEW.prev_hash || convert_to(sync.audit_canonical(
        NEW.audit_id, NEW.chain_seq, NEW.at, NEW.actor, NEW.action, NEW.object_type, NEW.object_id,
        NEW.details, NEW.run_id), 'UTF8'));
    RETURN NEW;
END
$$;

-- Backfill the rows written before this migration, in audit_id order. The append-only trigger
-- forbids UPDATE: it is switched off for this transaction's backfill only and back on below.
ALTER TABLE sync.audit_log DISABLE TRIGGER audit_log_append_only;
DO $$
DECLARE
    r         record;
    seq       bigint := 0;
    prev      bytea := '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea;
    this_hash bytea;
BEGIN
    FOR r IN SELECT * FROM sync.audit_log ORDER BY audit_id LOOP
        seq := seq + 1;
        this_hash := sha256(prev || convert_to(sync.audit_canonical(
            r.audit_id, seq, r.at, r.actor, r.action, r.object_type, r.object_id, r.details, r.run_id), 'UTF8'));
        UPDATE sync.audit_log SET chain_seq = seq, prev_hash = prev, row_hash = this_hash
         WHERE audit_id = r.audit_id;
        prev := this_hash;
    END LOOP;
END
$$;
ALTER TABLE sync.audit_log ENABLE TRIGGER audit_log_append_only;

ALTER TABLE sync.audit_log
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL,
    ADD CONSTRAINT audit_log_chain_seq_key UNIQUE (chain_seq),
    ADD CONSTRAINT audit_log_chain_seq_positive CHECK (chain_seq > 0),
    ADD CONSTRAINT audit_log_prev_hash_len CHECK (octet_length(prev_hash) = 32),
    ADD CONSTRAINT audit_log_row_hash_len CHECK (octet_length(row_hash) = 32);

CREATE TRIGGER audit_log_chain BEFORE INSERT ON sync.audit_log
    FOR EACH ROW EXECUTE FUNCTION sync.audit_chain_link();

COMMENT ON COLUMN sync.audit_log.chain_seq IS 'Position in the hash chain: 1, 2, 3... without gaps; a gap means deleted rows.';
COMMENT ON COLUMN sync.audit_log.prev_hash IS 'row_hash of the row at chain_seq - 1 (32 zero bytes for the first row).';
COMMENT ON COLUMN sync.audit_log.row_hash IS 'sha256(prev_hash || sync.audit_canonical(row)): changes if any field of this or an earlier row changes.';

---------------------------------------------------------------------------------------------------
-- sync.audit_anchors (append-only)
---------------------------------------------------------------------------------------------------
CREATE TABLE sync.audit_anchors (
    anchor_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_seq   bigint NOT NULL CHECK (chain_seq >= 0),   -- 0: the chain was empty
    row_hash    bytea NOT NULL CHECK (octet_length(row_hash) = 32),
    anchored_at timestamptz NOT NULL DEFAULT now(),
    anchored_by text NOT NULL                             -- cli:<user>, dag:<dag_id>.<task_id>
);
COMMENT ON TABLE sync.audit_anchors IS 'Audit chain heads recorded over time; copies kept outside the database detect truncation or a rewritten chain.';
CREATE INDEX audit_anchors_seq_idx ON sync.audit_anchors (chain_seq);
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON sync.audit_anchors
    FOR EACH ROW EXECUTE FUNCTION core.forbid_update_delete();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON sync.audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION core.forbid_update_delete();
