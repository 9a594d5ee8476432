"""Write the source files and the ground truth under the output folder."""

from __future__ import annotations

import contextlib
import csv
import ctypes
import gc
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from sandbox.datagen.arrays import STR
from sandbox.datagen.sources import STRIPE_API_VERSION, _charge_rows, _intent_rows, charge_and_intent_lines
from sandbox.datagen.tables import Columns, SourceTable, set_path

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _json_lines(table: SourceTable, lo: int, hi: int, encoder: msgspec.json.Encoder) -> list[bytes]:
    """Encode rows ``lo:hi`` of a JSON table as lines (without their newlines)."""
    lines = encoder.encode_lines(table.rows(lo, hi)).split(b"\n")
    lines.pop()  # encode_lines ends every line with a newline
    return lines


def _event_line(event_id: str, created: int, kind: str, charge: bytes, refunded: int) -> bytes:
    """Wrap a charge's JSON text in its event (the charge as it was when the event fired)."""
    if kind != "charge.refunded" and refunded:
        charge = charge.replace(b'"amount_refunded":%d,' % refunded, b'"amount_refunded":0,', 1)
        charge = charge.replace(b',"refunded":true,', b',"refunded":false,', 1)
    return b"".join(
        (
            b'{"id":"%s","object":"event","api_version":"%s","created":%d,"data":{"object":'
            % (event_id.encode(), STRIPE_API_VERSION.encode(), created),
            charge,
            b'},"livemode":false,"pending_webhooks":0,"request":{"id":null,"idempotency_key":null},"type":"%s"}\n'
            % kind.encode(),
        )
    )


def _override_lines(
    table: SourceTable, c: Columns, lo: int, hi: int, *, build: Any, lines: list[bytes], encoder: Any
) -> None:
    """Rebuild the rows of ``lo:hi`` that carry bad values through the dict builder, with the values set."""
    for row in sorted(r for r in table.overrides if lo <= r < hi):
        one = {key: values[row - lo : row - lo + 1] for key, values in c.items()}
        obj = build(one, 1)[0]
        for path, value in table.overrides[row]:
            set_path(obj, path, value, table.header)
        lines[row - lo] = encoder.encode(obj)


def write_charges_and_events(
    out: Path, charges: SourceTable, events: SourceTable, chunk_size: int, intents: SourceTable | None = None
) -> int:
    """Write charges.jsonl and events.jsonl in one pass: each charge is built once, its events reuse its text.

    Events list one ``charge.succeeded``/``charge.failed`` per charge (in charge order), then one
    ``charge.refunded`` per refunded charge; ``events.columns["charge_row"]`` names the charge of each.
    With ``intents`` (the payment intents, built from the same columns), payment_intents.jsonl is
    written in the same pass.
    """
    n = len(charges)
    charge_row = events.columns["charge_row"]
    if not np.array_equal(charge_row[:n], np.arange(n)):
        raise ValueError("events must start with one event per charge, in charge order")
    later = charge_row[n:].tolist()
    wanted = set(later)
    kept: dict[int, bytes] = {}
    refunded = charges.columns["refunded"]
    ev_id, ev_type, ev_created = events.columns["id"], events.columns["type"], events.columns["created"]
    encoder = msgspec.json.Encoder()
    (out / "stripe").mkdir(parents=True, exist_ok=True)
    intent_path = out / f"{intents.name}.jsonl" if intents is not None else os.devnull
    if intents is not None and intents.columns is not charges.columns:
        raise ValueError("payment intents must share the charges' columns")
    with (
        (out / f"{charges.name}.jsonl").open("wb") as charge_file,
        (out / f"{events.name}.jsonl").open("wb") as event_file,
        open(intent_path, "wb") as intent_file,
    ):
        for lo in range(0, n, chunk_size):
            hi = min(n, lo + chunk_size)
            c = charges.chunk(lo, hi)
            lines, intent_lines = charge_and_intent_lines(c, hi - lo)
            _override_lines(charges, c, lo, hi, build=_charge_rows, lines=lines, encoder=encoder)
            lines.append(b"")  # the last line's newline
            charge_file.write(b"\n".join(lines))
            lines.pop()
            if intents is not None:
                _override_lines(intents, c, lo, hi, build=_intent_rows, lines=intent_lines, encoder=encoder)
                intent_lines.append(b"")
                intent_file.write(b"\n".join(intent_lines))
            event_file.write(
                b"".join(
                    map(
                        _event_line,
                        ev_id[lo:hi].tolist(),
                        ev_created[lo:hi].tolist(),
                        ev_type[lo:hi].tolist(),
                        lines,
                        refunded[lo:hi].tolist(),
                    )
                )
            )
            for row in wanted.intersection(range(lo, hi)):
                kept[row] = lines[row - lo]
        rest = [kept[row] for row in later]
        event_file.write(
            b"".join(
                map(
                    _event_line,
                    ev_id[n:].tolist(),
                    ev_created[n:].tolist(),
                    ev_type[n:].tolist(),
                    rest,
                    refunded[charge_row[n:]].tolist(),
                )
            )
        )
    return n


def write_table(out: Path, table: SourceTable, chunk_size: int) -> int:
    """Write one source table (JSON lines or CSV) in chunks; return the number of records."""
    suffix = ".jsonl" if table.fmt == "jsonl" else ".csv"
    path = out / f"{table.name}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(table)
    with path.open("wb") as handle:
        if table.fmt == "jsonl":
            encoder = msgspec.json.Encoder()
            for lo in range(0, n, chunk_size):
                handle.write(encoder.encode_lines(table.rows(lo, min(n, lo + chunk_size))))
        else:
            windows = table.encoding == "cp1252"
            terminator = "\r\n" if windows else "\n"
            encoding = "cp1252" if windows else "utf-8"
            errors = "replace" if windows else "surrogateescape"
            if not windows:
                handle.write(b"\xef\xbb\xbf")  # the event platform writes a UTF-8 byte-order mark
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator=terminator)
            writer.writerow(table.header)
            for lo in range(0, n, chunk_size):
                writer.writerows(table.rows(lo, min(n, lo + chunk_size)))
                handle.write(buffer.getvalue().encode(encoding, errors=errors))
                buffer.seek(0)
                buffer.truncate()
            handle.write(buffer.getvalue().encode(encoding, errors=errors))
    return n


def _suffix(table: SourceTable) -> str:
    return ".jsonl" if table.fmt == "jsonl" else ".csv"


def _units(tables: list[SourceTable]) -> list[tuple[list[int], float]]:
    """Group the tables into units of work (charges with their events) with an estimated cost."""
    names = [t.name for t in tables]
    cost = {
        "stripe/charges": 1.0,
        "stripe/payment_intents": 1.0,
        "stripe/customers": 1.0,
        "donorbox/donations": 1.2,
        "classy/transactions": 1.0,
    }
    units: list[tuple[list[int], float]] = []
    for i, table in enumerate(tables):
        if table.name == "stripe/events" and "stripe/charges" in names:
            continue
        group = [i]
        weight = len(table) * cost.get(table.name, 0.8)
        if table.name == "stripe/payment_intents" and {"stripe/charges", "stripe/events"} <= set(names):
            continue
        if table.name == "stripe/charges" and "stripe/events" in names:
            events = names.index("stripe/events")
            group.append(events)
            weight += len(tables[events]) * 0.3
            if "stripe/payment_intents" in names:
                intents = names.index("stripe/payment_intents")
                group.append(intents)
                weight += len(tables[intents]) * 0.4
        units.append((group, weight))
    return units


def _write_unit(out: Path, tables: list[SourceTable], chunk_size: int) -> dict[str, int]:
    if len(tables) > 1:
        charges, events, *rest = tables
        n = write_charges_and_events(out, charges, events, chunk_size, *rest)
        return {f"{t.name}.jsonl": len(t) for t in tables} | {f"{charges.name}.jsonl": n}
    table = tables[0]
    return {f"{table.name}{_suffix(table)}": write_table(out, table, chunk_size)}


def write_tables(out: Path, tables: list[SourceTable], chunk_size: int) -> dict[str, int]:
    """Write every source table in this process; return the record count per file."""
    counts: dict[str, int] = {}
    for group, _ in _units(tables):
        counts.update(_write_unit(out, [tables[i] for i in group], chunk_size))
    return {f"{t.name}{_suffix(t)}": counts[f"{t.name}{_suffix(t)}"] for t in tables}


_FORKED: list[SourceTable] = []


def _write_group(out: Path, groups: list[list[int]], chunk_size: int, conn: Any) -> None:
    counts: dict[str, int] = {}
    for group in groups:
        counts.update(_write_unit(out, [_FORKED[i] for i in group], chunk_size))
    conn.send(counts)
    conn.close()


def _release_free_memory() -> None:
    """Before forking: return freed heap pages to the system and freeze the objects the GC tracks.

    Pages still held by the allocator would otherwise be shared with the children, and reusing them
    in any process afterwards copies them (copy-on-write) while the old copy stays with the others.
    """
    gc.collect()
    gc.freeze()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to release
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def write_tables_parallel(out: Path, tables: list[SourceTable], chunk_size: int, workers: int = 2) -> Any:
    """Write the tables in ``workers`` forked processes (balanced by cost); return a waiter for the counts.

    The caller can write the truth files meanwhile and then call the returned function.
    """
    import multiprocessing

    _FORKED[:] = tables
    units = sorted(_units(tables), key=lambda unit: -unit[1])
    groups: list[list[list[int]]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for group, weight in units:
        target = loads.index(min(loads))
        groups[target].append(group)
        loads[target] += weight
    _release_free_memory()
    ctx = multiprocessing.get_context("fork")
    running = []
    for assigned in groups:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_write_group, args=(out, assigned, chunk_size, send))
        proc.start()
        send.close()
        running.append((proc, receive))

    def wait() -> dict[str, int]:
        counts: dict[str, int] = {}
        for proc, receive in running:
            counts.update(receive.recv())
            proc.join()
            if proc.exitcode != 0:
                raise RuntimeError(f"writer process failed with exit code {proc.exitcode}")
        _FORKED.clear()
        gc.unfreeze()
        return {f"{t.name}{_suffix(t)}": counts[f"{t.name}{_suffix(t)}"] for t in tables}

    return wait


def _csv_column(values: Any) -> list[str]:
    """Return one column's cells as CSV text (quoted where the csv module would quote them)."""
    if isinstance(values, np.ndarray) and values.dtype == STR:
        cells: list[str] = values.tolist()
    elif isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        cells = list(map(str, values.tolist()))
    else:
        items = values.tolist() if isinstance(values, np.ndarray) else values
        cells = ["" if c is None else c if type(c) is str else str(c) for c in items]
    if _NEEDS_QUOTES.search("\x1f".join(cells)):
        cells = ['"' + c.replace('"', '""') + '"' if _NEEDS_QUOTES.search(c) else c for c in cells]
    return cells


def write_csv(
    path: Path,
    header: Sequence[str],
    columns: Sequence[Any],
    chunk_size: int = 50_000,
) -> int:
    """Write columns (arrays, or lazy ``Gather``/``Lazy`` columns, of equal length) as a UTF-8 CSV file.

    Only ``chunk_size`` rows of each column are materialized at a time. Return the number of rows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(columns[0]) if columns else 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(_csv_column(header)) + "\n")
        for lo in range(0, n, chunk_size):
            cells = [_csv_column(c[lo : lo + chunk_size]) for c in columns]
            handle.write("\n".join(map(",".join, zip(*cells, strict=True))) + "\n")
    return n


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document with stable key order and a trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
