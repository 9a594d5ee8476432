-- 0012_outbox_claim_index: the push engine's claim in index order (issue 6).
--
-- A claim takes the next batch of one destination's due rows of one entity and operation, in
-- priority, due time and id order (donor_sync.delivery.push.claim). Without an index in that
-- order every claim read and sorted all of the destination's waiting rows: about 0.3 s per
-- 100-record batch with 500,000 rows waiting, which kept HubSpot pushes at 39% of its rate limit
-- (bench/push_destinations.py). With it a claim reads the batch it takes.
CREATE INDEX outbox_claim_idx ON sync.outbox (destination, entity, operation, priority, next_attempt_at, outbox_id)
    WHERE state IN ('pending', 'in_flight');
