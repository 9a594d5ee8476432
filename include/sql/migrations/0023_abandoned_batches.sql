-- 0023_abandoned_batches: extraction batches a killed task left behind are marked 'abandoned'.
--
-- An extraction opens its batch ('extracting', committed at once so a failure stays visible) and
-- commits its records together with the batch's 'loaded'; an exception marks it 'failed'. A worker
-- killed mid-read (SIGKILL, out of memory, a lost database connection) does neither, and the
-- batch used to stay 'extracting' forever, looking in flight. Each DAG run's open_run now marks
-- such batches 'abandoned', with the reason in raw.batches.error, once their run is no longer
-- running (it closed, or it is older than any DAG run can last); a batch of a run still running is
-- never touched (donor_sync.sources.raw_landing.abandon_orphaned_batches). An abandoned batch holds
-- no records (they were never committed), moves no watermark and is never standardized.
ALTER TABLE raw.batches DROP CONSTRAINT batches_status_check;
ALTER TABLE raw.batches ADD CONSTRAINT batches_status_check
    CHECK (status IN ('extracting', 'loaded', 'standardized', 'failed', 'abandoned'));
