"""Salesforce NPSP destination: OAuth (JWT bearer, client credentials), sObject Collections and
Bulk API 2.0 upserts on external ids, NPSP installment matching and the error taxonomy.

Plain Python: ``donor_sync.hooks.salesforce_npsp`` builds a :class:`SalesforceConnector` from an
Airflow connection; tests and the CLI build one directly.
"""

from __future__ import annotations

from donor_sync.delivery.connectors.salesforce.auth import ClientCredentials, JwtBearer, default_audience
from donor_sync.delivery.connectors.salesforce.bulk import PollPolicy
from donor_sync.delivery.connectors.salesforce.client import DEFAULT_API_VERSION, SalesforceClient
from donor_sync.delivery.connectors.salesforce.connector import DEFAULT_ENTITIES, SalesforceConnector

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_ENTITIES",
    "ClientCredentials",
    "JwtBearer",
    "PollPolicy",
    "SalesforceClient",
    "SalesforceConnector",
    "default_audience",
]
