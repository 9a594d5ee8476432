"""Secrets kept as Airflow connections' passwords: webhook signing secrets, the monitor token.

The connection id is the secret's name; its password may hold several values, one per line, so
a secret can be rotated with old and new both accepted for a while.
"""

from __future__ import annotations

from donor_sync.web.webhooks.secret_sources import SecretUnavailable, split_secrets


class AirflowConnectionSecrets:
    """Secrets from Airflow connections: the connection id is the secret name."""

    def secrets(self, name: str) -> tuple[str, ...]:
        """Return the secrets in connection ``name``'s password (none when it does not exist)."""
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(name)
        except AirflowNotFoundException:
            return ()
        except Exception as exc:  # a secrets backend or the metadata database failed: retry later
            raise SecretUnavailable(type(exc).__name__) from exc
        return split_secrets(conn.password)
