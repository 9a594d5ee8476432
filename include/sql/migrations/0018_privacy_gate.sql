-- 0018_privacy_gate: what the consent and suppression gate before the outbox reads (issue 7).
--
-- An incremental outbox run re-reads the donors (and the gifts and plans of donors) whose consent
-- state or suppressions changed since the destination's watermark
-- (donor_sync.delivery.outbox.source_rows): these indexes keep that lookup proportional to what
-- changed.
CREATE INDEX consent_state_updated_idx ON core.consent_state (updated_at);
CREATE INDEX suppressions_created_idx ON core.suppressions (created_at);
CREATE INDEX suppressions_lifted_idx ON core.suppressions (lifted_at) WHERE lifted_at IS NOT NULL;
