"""The inbound webhook receiver: verify, dedupe and durably store platform events in ``raw.webhook_inbox``.

Modules, each with one job: :mod:`.config` (the YAML settings), :mod:`.secret_sources` (where
signing secrets come from), :mod:`.signatures` (Stripe's and our HMAC scheme),
:mod:`.request_checks` (client address, content type, capped body read), :mod:`.jsonpath` (event
fields in a body), :mod:`.inbox` (the row written) and :mod:`.app` (the FastAPI app,
``create_app``). Nothing here imports Airflow; importing this package is cheap (the app is built
only by ``create_app``).
"""
