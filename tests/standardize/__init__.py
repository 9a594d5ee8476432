"""Tests of the field standardizers (donor_sync.standardize.fields)."""
