"""Erasure: the subject's identifiers (:mod:`.subject`), the cascade to every destination and the
local purge (:mod:`.cascade`, :mod:`.purge`), and tombstones that stop re-imports (:mod:`.tombstones`).

Order (docs/erasure.md): freeze (erased_at set, tombstones written, pending pushes withdrawn) →
destination erasers (receipts) → local purge in one transaction → ``staging`` receipt. Every step is
idempotent, so a crash anywhere is resumed by the next run.
"""
