-- 0019_journeys: what stewardship journeys (issue 8, donor_sync.journeys) read often.
--
-- The table itself is sync.journey_enrollments (0005_sync). Each decision run first brings the
-- enrollments still waiting for their trigger in step with the trigger's outbox rows (entity
-- journey_trigger, record key '<gift_key>:<journey_id>', a replay of a dead letter included);
-- these indexes keep that lookup proportional to what is open, not to the whole history.
CREATE INDEX outbox_journey_trigger_idx ON sync.outbox (destination, record_key)
    WHERE entity = 'journey_trigger';
CREATE INDEX journey_enrollments_open_idx ON sync.journey_enrollments (status)
    WHERE status IN ('pending', 'failed');
-- Experiment reports and sticky assignment: a donor's arm in an experiment.
CREATE INDEX journey_enrollments_experiment_idx ON sync.journey_enrollments (experiment_id, donor_id)
    WHERE experiment_id IS NOT NULL;
