-- 0015_consent: indexes the consent model needs (issue 7; donor_sync.privacy.consent).
--
-- The tables themselves are in 0004_core (core.consent_events, core.consent_state,
-- core.suppressions); the derivation rules are in docs/consent.md.

-- Resolve turns the consent signals of a run's batches into consent events: only rows that carry
-- signals, found by batch whether or not they are resolved yet (the resolve work-queue index is
-- partial on unresolved rows).
CREATE INDEX donors_consent_signals_batch_idx ON staging.donors (batch_id)
    WHERE consent_signals <> '[]'::jsonb;

-- The nightly refresh of states whose deciding event has expired (refresh_expired).
CREATE INDEX consent_state_expires_idx ON core.consent_state (expires_at)
    WHERE expires_at IS NOT NULL;

-- Pull-back looks up the active suppressions a CRM reported, to lift them when staff clear the flag.
CREATE INDEX suppressions_source_idx ON core.suppressions (source, donor_id)
    WHERE lifted_at IS NULL;
