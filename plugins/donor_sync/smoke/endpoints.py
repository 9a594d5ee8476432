"""Endpoints donor-sync talks to over plain HTTPS: event subscribers and the inbound webhook receiver.

Both only take signed POSTs, so the smoke test sends them a GET, which changes nothing:

* an **event subscriber** (``include/mappings/events.yaml``) passes when its host answers over
  TLS the connection trusts, with any status below 500 (a 405 to a GET is the usual answer);
* the **webhook receiver** passes when, at ``<url>/<source>`` for each configured endpoint, the
  receiver itself answers: its 405 ``method_not_allowed`` body (the route exists and takes POST
  only), or a 2xx from a health route placed there. A 404 means the URL is not the receiver's.

The receiver's URL is ``--receiver-url``, else ``$DONOR_SYNC_RECEIVER_URL``, else Airflow's
``[api] base_url`` followed by the plugin's prefix ``/donor-sync-webhooks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

from donor_sync.smoke.checks import Check, CheckFailed, Outcome, passed, skipped
from donor_sync.smoke.common import host_of, refusal

__all__ = [
    "PLUGIN_PREFIX",
    "RECEIVER_URL_ENV",
    "probe_receiver",
    "receiver_check",
    "receiver_url",
    "subscriber_check",
]

#: Where donor_sync_webhooks_plugin mounts the receiver in Airflow's API server.
PLUGIN_PREFIX = "/donor-sync-webhooks"
RECEIVER_URL_ENV = "DONOR_SYNC_RECEIVER_URL"
DEFAULT_HTTP_TIMEOUT_S = 15.0


def receiver_url(explicit: str | None, environ: Mapping[str, str], api_base_url: str | None) -> str | None:
    """Return the receiver's base URL: the flag, the environment, or Airflow's API base URL + prefix."""
    for candidate in (explicit, environ.get(RECEIVER_URL_ENV)):
        if candidate and candidate.strip():
            return candidate.strip().rstrip("/")
    if api_base_url and api_base_url.strip():
        return api_base_url.strip().rstrip("/") + PLUGIN_PREFIX
    return None


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def probe_receiver(
    url: str,
    sources: Sequence[str],
    *,
    verify: str | bool = True,
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
    session: requests.Session | None = None,
) -> Outcome:
    """GET ``url/<source>`` for each source; pass when the receiver answers each (see the module docs)."""
    if session is not None:
        return _probe(session, url, sources, verify, timeout_s)
    with requests.Session() as http:  # closed after: no keep-alive connection is left on the receiver
        return _probe(http, url, sources, verify, timeout_s)


def _probe(
    http: requests.Session, url: str, sources: Sequence[str], verify: str | bool, timeout_s: float
) -> Outcome:
    host = host_of(url)
    answered: list[str] = []
    for source in sources:
        try:
            response = http.get(f"{url}/{source}", timeout=timeout_s, verify=verify, allow_redirects=False)
        except requests.exceptions.SSLError:
            raise CheckFailed(
                f"the receiver at {host} presents a certificate this machine does not trust; "
                "pass --receiver-ca-bundle"
            ) from None
        except requests.RequestException as exc:
            raise CheckFailed(
                f"no answer from the receiver at {host} ({type(exc).__name__}); is it running, and is "
                "--receiver-url (or DONOR_SYNC_RECEIVER_URL) its base URL?"
            ) from None
        body = _json(response)
        code = body.get("error") if isinstance(body, dict) else None
        if 200 <= response.status_code < 300 or (
            response.status_code == 405 and code == "method_not_allowed"
        ):
            answered.append(f"/{source}")
            continue
        if response.status_code == 404:
            raise CheckFailed(
                f"nothing answers /{source} at {host} (HTTP 404): the URL is not the receiver's base "
                f"(e.g. https://airflow.example.org{PLUGIN_PREFIX})"
            )
        raise CheckFailed(
            f"the receiver at {host} answered HTTP {response.status_code} on /{source}; "
            "check its logs (a 5xx: the process or its proxy is unwell)"
        )
    return passed(
        f"the receiver at {host} answers {', '.join(answered)} (POST only, as expected)",
        endpoints=len(answered),
    )


def receiver_check(
    url: str | None,
    sources: Sequence[str],
    *,
    verify: str | bool = True,
    timeout_s: float = DEFAULT_HTTP_TIMEOUT_S,
) -> Check:
    """Return the receiver's health check (skipped when no URL is known)."""
    if url is None:
        reason = (
            f"no receiver URL: pass --receiver-url or set {RECEIVER_URL_ENV} (or Airflow's [api] base_url)"
        )
        return Check("health", "receiver", lambda: skipped(reason))
    if not sources:
        return Check("health", "receiver", lambda: skipped("include/mappings/webhooks.yaml has no endpoint"))
    return Check(
        "health", "receiver", lambda: probe_receiver(url, sources, verify=verify, timeout_s=timeout_s)
    )


def subscriber_check(destination: str, conn_id: str, *, timeout_s: float = DEFAULT_HTTP_TIMEOUT_S) -> Check:
    """Return the reachability check of event subscriber ``destination`` (``webhook_<name>``)."""

    def run() -> Outcome:
        try:
            from donor_sync.hooks.events import subscriber_connector

            endpoint = subscriber_connector(destination).endpoint
        except Exception as exc:
            raise refusal(exc, vendor=destination, conn_id=conn_id) from None
        host = host_of(endpoint.url)
        with requests.Session() as http:
            try:
                response = http.get(
                    endpoint.url,
                    timeout=min(timeout_s, endpoint.timeout_s),
                    verify=endpoint.verify,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise refusal(exc, vendor=f"subscriber {host}", conn_id=conn_id) from None
        if response.status_code >= 500:
            raise CheckFailed(
                f"subscriber {host} answered HTTP {response.status_code}; deliveries would wait on the "
                "retry ladder: tell its owner"
            )
        return passed(
            f"subscriber {host} answers over trusted TLS (HTTP {response.status_code} to a GET; "
            "deliveries are signed POSTs)"
        )

    return Check("reachable", destination, run)
