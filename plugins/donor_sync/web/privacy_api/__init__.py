"""The privacy-request API (``POST /requests``, ``GET /requests/{id}``) served by the Airflow API server."""

from donor_sync.web.privacy_api.app import create_app

__all__ = ["create_app"]
