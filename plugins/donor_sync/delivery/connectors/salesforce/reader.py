"""Staff edits, deletions and merges read back from Salesforce for nightly reconciliation.

One ``queryAll`` per window on the reconciled object (``Contact``), ordered by ``SystemModstamp``:
``queryAll`` rather than ``query`` because a record staff merged away in the UI is *deleted*, with
``MasterRecordId`` naming the survivor, and only ``queryAll`` returns deleted records. It selects
``Id``, the donor-id field, ``SystemModstamp``, ``IsDeleted``, ``MasterRecordId`` (when the
object has it: Contact and Account do) and the fields of the destination's reconcile settings.

SOQL datetime literals are whole seconds, so the query widens the window to whole seconds and the
reader trims the rows back to ``[since, until)`` at the millisecond precision of
``SystemModstamp``. Implements :class:`donor_sync.delivery.reconcile.records.RemoteReader`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from donor_sync.delivery.connectors.salesforce.client import SalesforceClient
from donor_sync.delivery.connectors.salesforce.soql import ident, literal
from donor_sync.delivery.reconcile.records import RemoteRecord
from donor_sync.delivery.reconcile.settings import DestinationReconcile
from donor_sync.errors import ConfigError

log = logging.getLogger(__name__)

MODSTAMP = "SystemModstamp"
MASTER = "MasterRecordId"
SYSTEM_COLUMNS = ("Id", MODSTAMP, "IsDeleted")


def parse_modstamp(value: Any) -> dt.datetime:
    """Return a REST datetime (``2024-01-02T03:04:05.000+0000``, or ISO ``Z``) as an aware UTC datetime."""
    text = str(value).strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    moment = dt.datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _utc(moment: dt.datetime) -> dt.datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _ceil_second(moment: dt.datetime) -> dt.datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + dt.timedelta(seconds=1)


class SalesforceReader:
    """Read changed records of one org for reconciliation.

    :param client: an authenticated :class:`~.client.SalesforceClient` (the connector's own).
    """

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client
        self._described: dict[str, dict[str, str]] = {}

    def changed_records(
        self, settings: DestinationReconcile, since: dt.datetime | None, until: dt.datetime
    ) -> Iterator[RemoteRecord]:
        """Yield records of ``settings.object`` modified in ``[since, until)``, oldest first.

        Deleted records come too (``deleted``; ``master_remote_id`` when a merge deleted them).

        :raises ConfigError: a field of the settings is not on the object in this org.
        :raises DestinationUnavailableError: auth, limits, network (from the client).
        """
        columns = self._columns(settings)
        start = None if since is None else _utc(since)
        end = _utc(until)
        soql = self._soql(settings.object, columns.values(), start, end)
        read = deleted = 0
        for row in self._query_all(soql):
            modified = parse_modstamp(row[MODSTAMP])
            if (start is not None and modified < start) or modified >= end:
                continue
            read += 1
            deleted += bool(row.get("IsDeleted"))
            yield self._record(settings, columns, row, modified)
        log.info("Read %d changed %s records from Salesforce (%d deleted)", read, settings.object, deleted)

    # -- internals ---------------------------------------------------------------------------------
    def _fields_of(self, sobject: str) -> dict[str, str]:
        """Return ``{lower-case name: API name}`` of the object's fields (describe, once per object)."""
        if sobject not in self._described:
            body = self.client.get_json(f"/sobjects/{ident(sobject)}/describe")
            fields = body.get("fields") if isinstance(body, Mapping) else None
            self._described[sobject] = {
                str(f["name"]).lower(): str(f["name"]) for f in fields or [] if isinstance(f, Mapping)
            }
        return self._described[sobject]

    def _columns(self, settings: DestinationReconcile) -> dict[str, str]:
        """Return ``{settings name: API name}`` of every column to select (system columns included)."""
        known = self._fields_of(settings.object)
        wanted = [*SYSTEM_COLUMNS, settings.key_field, *settings.fields]
        if MASTER.lower() in known:
            wanted.insert(len(SYSTEM_COLUMNS), MASTER)
        missing = [name for name in wanted if name.lower() not in known]
        if missing:
            raise ConfigError(
                f"reconcile.yaml: {settings.object} has no field {', '.join(missing)} in this Salesforce org"
            )
        return {name: ident(known[name.lower()]) for name in wanted}

    @staticmethod
    def _soql(sobject: str, columns: Any, start: dt.datetime | None, end: dt.datetime) -> str:
        where = [f"{MODSTAMP} < {literal(_ceil_second(end))}"]
        if start is not None:
            where.insert(0, f"{MODSTAMP} >= {literal(start)}")  # literal() drops the fraction: floor
        return (
            f"SELECT {', '.join(dict.fromkeys(columns))} FROM {ident(sobject)} "
            f"WHERE {' AND '.join(where)} ORDER BY {MODSTAMP} ASC, Id ASC"
        )

    def _query_all(self, soql: str) -> Iterator[dict[str, Any]]:
        """Yield the rows of a ``queryAll`` (deleted records included), following ``nextRecordsUrl``."""
        body = self.client.get_json("/queryAll", {"q": soql})
        while True:
            for row in body.get("records", []):
                yield {k: v for k, v in row.items() if k != "attributes"}
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self.client.get_json(str(next_url))

    @staticmethod
    def _record(
        settings: DestinationReconcile,
        columns: Mapping[str, str],
        row: Mapping[str, Any],
        modified: dt.datetime,
    ) -> RemoteRecord:
        key = row.get(columns[settings.key_field])
        master = row.get(MASTER) if MASTER in columns else None
        return RemoteRecord(
            remote_id=str(row["Id"]),
            modified_at=modified,
            key=str(key) if key not in (None, "") else None,
            values={name: row.get(columns[name]) for name in settings.fields},
            deleted=bool(row.get("IsDeleted")),
            master_remote_id=str(master) if master else None,
        )
