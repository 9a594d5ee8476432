"""Donors' rights requests: intake (:mod:`.store`), processing (:mod:`.process`), deadlines.

A request names its subject by donor id or by keyed hashes of an identifier (``tombstone`` ring);
no donor PII is ever stored in ``sync.privacy_requests``. See docs/erasure.md.
"""
