"""Extractors: each donation platform read incrementally into ``raw`` (watermarks, COPY, batches)."""
