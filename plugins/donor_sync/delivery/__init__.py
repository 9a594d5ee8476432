"""Delivery: mapping engine, outbox, connectors, retries, circuit breakers and the dead-letter queue.

Plain Python (no Airflow import). ``contracts`` holds the types every part shares: the failure
taxonomy, the records the outbox hands to a connector and the results it gets back, and the
``Connector`` protocol each destination implements.
"""
