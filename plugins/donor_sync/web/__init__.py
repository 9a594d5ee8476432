"""FastAPI apps donor-sync serves: the webhook receiver (``web.webhooks``).

Plain Python (no Airflow import): the Airflow plugin modules in ``plugins/`` mount these apps, and
the command line serves them on their own.
"""
