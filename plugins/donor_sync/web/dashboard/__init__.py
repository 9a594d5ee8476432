"""The sync-health dashboard: trend charts, open circuits, the dedup review queue and dead letters,
behind Airflow's login, and a JSON health endpoint for external monitors.

Modules, each with one job: :mod:`.auth` (Airflow tokens, permissions, CSRF tokens, the monitor
token), :mod:`.deps` (what every route shares: the signed-in user, refusals, the database),
:mod:`.queries` (reads and the PII-access audit row no other module offers), :mod:`.trends` (run
metrics over time), :mod:`.charts` (inline SVG charts), :mod:`.health` and
:mod:`.health_settings` (the monitors' checks and their thresholds), :mod:`.pages` (escaped Jinja2
templates, security headers), :mod:`.health_routes` and :mod:`.review_routes` (the routes) and
:mod:`.app` (``create_app``). Nothing here imports Airflow at import time, and importing the package opens
nothing. ``plugins/donor_sync_dashboard_plugin.py`` mounts the app in Airflow's API server.
"""
