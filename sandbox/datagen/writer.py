"""Write the source files and the ground truth under the output folder."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from sandbox.datagen.arrays import StrArray
from sandbox.datagen.tables import SourceTable


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


_FORKED: list[SourceTable] = []


def _write_group(out: Path, indexes: list[int], chunk_size: int, conn: Any) -> None:
    conn.send({_FORKED[i].name: write_table(out, _FORKED[i], chunk_size) for i in indexes})
    conn.close()


def write_tables_parallel(out: Path, tables: list[SourceTable], chunk_size: int, workers: int = 2) -> Any:
    """Write the tables in ``workers`` forked processes (balanced by size); return a waiter for the counts.

    The caller can write the truth files meanwhile and then call the returned function.
    """
    import multiprocessing

    _FORKED[:] = tables
    weight = {"stripe/charges": 3.0, "stripe/events": 3.0, "stripe/payment_intents": 2.0}
    order = sorted(range(len(tables)), key=lambda i: -len(tables[i]) * weight.get(tables[i].name, 1.5))
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for i in order:
        target = loads.index(min(loads))
        groups[target].append(i)
        loads[target] += len(tables[i]) * weight.get(tables[i].name, 1.5)
    ctx = multiprocessing.get_context("fork")
    running = []
    for group in groups:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_write_group, args=(out, group, chunk_size, send))
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
        return {f"{t.name}{'.jsonl' if t.fmt == 'jsonl' else '.csv'}": counts[t.name] for t in tables}

    return wait


def write_csv(
    path: Path,
    header: Sequence[str],
    columns: Sequence[StrArray | np.ndarray | list[Any]],
    chunk_size: int = 200_000,
) -> int:
    """Write columns (arrays of equal length) as a UTF-8 CSV file; return the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(columns[0]) if columns else 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for lo in range(0, n, chunk_size):
            parts: list[Iterable[Any]] = [
                c[lo : lo + chunk_size].tolist() if isinstance(c, np.ndarray) else c[lo : lo + chunk_size]
                for c in columns
            ]
            writer.writerows(zip(*parts, strict=True))
    return n


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document with stable key order and a trailing newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
