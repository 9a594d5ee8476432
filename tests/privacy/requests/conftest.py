"""Airflow's auth manager and token minting, shared with the dashboard tests."""

from tests.web.dashboard.conftest import auth_manager, tokens  # noqa: F401 - fixtures
