"""The sync-health dashboard: open circuits, the dedup review queue and dead letters, behind Airflow's login.

Modules, each with one job: :mod:`.auth` (Airflow tokens, permissions, CSRF tokens), :mod:`.deps`
(what every route shares: the signed-in user, refusals, the database), :mod:`.queries` (reads
and the PII-access audit row no other module offers), :mod:`.pages` (escaped Jinja2 templates,
security headers), :mod:`.health_routes` and :mod:`.review_routes` (the routes) and :mod:`.app`
(``create_app``). Nothing here imports Airflow at import time, and importing the package opens
nothing. ``plugins/donor_sync_dashboard_plugin.py`` mounts the app in Airflow's API server.
"""
