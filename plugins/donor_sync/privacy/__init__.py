"""Privacy: consent, suppression, minimization profiles, encryption, retention, rights requests, audit.

Nothing here imports Airflow. Modules, each with one job:

* :mod:`.keys` -- the named key rings (tombstone hashes, pseudonyms, field encryption, signed
  preference links) and where they come from.
* :mod:`.contracts` -- the types shared by the erasure pipeline and the destination erasers.
"""
