"""Destination metadata documents cached in ``sync.describe_cache`` with a time to live.

A describe call costs API quota and metadata changes rarely, so validating mappings (and any
other reader) goes through this cache: a document younger than ``max_age`` is used as stored,
an older or missing one is fetched by the function the caller passes in (the connectors'
``describe``), stored with its fetch time, and returned. Without a fetch function the cache is
read as it is, whatever its age (offline validation with ``--cache-only``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from donor_sync.delivery.mapping.describe import DescribedObject, normalize
from donor_sync.errors import DonorSyncError

if TYPE_CHECKING:
    import psycopg

#: How long a cached document is used before it is fetched again.
DEFAULT_MAX_AGE = dt.timedelta(hours=24)

#: Fetches an object's metadata document from the destination; None when it has no such object.
Fetch = Callable[[str], Mapping[str, Any] | None]


class DescribeUnavailableError(DonorSyncError):
    """No metadata is cached for an object and none may be fetched."""


@dataclass(frozen=True)
class CachedDocument:
    """A metadata document and when it was fetched."""

    metadata: Mapping[str, Any]
    fetched_at: dt.datetime


def read_cached(
    conn: psycopg.Connection, destination: str, object_name: str, *, api_version: str = ""
) -> CachedDocument | None:
    """Return the cached document of ``object_name``, or None."""
    row = conn.execute(
        "SELECT metadata, fetched_at FROM sync.describe_cache"
        " WHERE destination = %s AND object_name = %s AND api_version = %s",
        (destination, object_name, api_version),
    ).fetchone()
    return CachedDocument(row[0], row[1]) if row else None


def store(
    conn: psycopg.Connection,
    destination: str,
    object_name: str,
    metadata: Mapping[str, Any],
    *,
    api_version: str = "",
) -> None:
    """Store (or replace) the document of ``object_name``, fetched now."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO sync.describe_cache (destination, object_name, api_version, metadata, fetched_at)"
            " VALUES (%s, %s, %s, %s, now())"
            " ON CONFLICT (destination, object_name, api_version)"
            " DO UPDATE SET metadata = EXCLUDED.metadata, fetched_at = EXCLUDED.fetched_at",
            (destination, object_name, api_version, Jsonb(dict(metadata))),
        )


def cached_metadata(
    conn: psycopg.Connection,
    destination: str,
    object_name: str,
    fetch: Fetch | None,
    *,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
    api_version: str = "",
    refresh: bool = False,
) -> Mapping[str, Any] | None:
    """Return the metadata document of ``object_name``: from the cache while it is younger than
    ``max_age``, else fetched and stored.

    :param fetch: None reads the cache only, whatever the document's age.
    :param refresh: fetch even when the cached document is fresh.
    :return: None when the destination has no such object (or, cache only, nothing is cached).
    """
    cached = read_cached(conn, destination, object_name, api_version=api_version)
    if fetch is None:
        return cached.metadata if cached else None
    if cached is not None and not refresh:
        age = dt.datetime.now(dt.UTC) - cached.fetched_at
        if age < max_age:
            return cached.metadata
    document = fetch(object_name)
    if document is None:
        return None
    store(conn, destination, object_name, document, api_version=api_version)
    return document


class DescribeCache:
    """A describe lookup (:data:`~donor_sync.delivery.mapping.describe.DescribeLookup`) over the
    cache: each object is read (or fetched) once per instance and normalized."""

    def __init__(
        self,
        conn: psycopg.Connection,
        destination: str,
        fetch: Fetch | None = None,
        *,
        max_age: dt.timedelta = DEFAULT_MAX_AGE,
        api_version: str = "",
        refresh: bool = False,
    ) -> None:
        self.conn = conn
        self.destination = destination
        self.fetch = fetch
        self.max_age = max_age
        self.api_version = api_version
        self.refresh = refresh
        self._seen: dict[str, DescribedObject | None] = {}

    def __call__(self, object_name: str) -> DescribedObject | None:
        if object_name not in self._seen:
            document = cached_metadata(
                self.conn,
                self.destination,
                object_name,
                self.fetch,
                max_age=self.max_age,
                api_version=self.api_version,
                refresh=self.refresh,
            )
            if document is None and self.fetch is None:
                raise DescribeUnavailableError(
                    f"no cached {self.destination} metadata for {object_name}; "
                    "validate once with the destination's connection to fill the cache"
                )
            self._seen[object_name] = (
                None if document is None else normalize(self.destination, object_name, document)
            )
        return self._seen[object_name]
