"""The consent model (issue 7): events, derived state, ingestion, CRM pull-back, signed links.

Nothing here imports Airflow. Modules, each with one job:

* :mod:`.vocabulary` -- purposes, channels, statuses and how restrictive each status is.
* :mod:`.events` -- validate and record consent events (idempotent on source and source ref).
* :mod:`.state` -- derive ``core.consent_state`` from the events (set-based SQL) and the same rules
  in plain Python (:func:`~.state.derive`, the reference of the property tests).
* :mod:`.ingest` -- staged consent signals of resolved records to events (resolve calls it).
* :mod:`.pullback` -- CRM opt-outs and staff flags to events and suppressions (reconcile calls it).
* :mod:`.links` -- signed preference-centre links.

docs/consent.md states the derivation rules precisely.
"""
