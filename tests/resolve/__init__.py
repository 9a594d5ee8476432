"""Tests of the resolve stage (donor_sync.resolve)."""
