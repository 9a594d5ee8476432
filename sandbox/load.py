"""Load generated sample data into running source emulators (Stripe, Donorbox, Classy).

The generator (``sandbox.datagen``) writes one JSON object per line per file; each file feeds one
emulator's ``seed(kind, records)``. CSV exports are not loaded anywhere: they are dropped in a
folder for the CSV source to pick up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from sandbox.common.runner import Sandbox

#: (emulator, seed kind) -> file under the generator's output folder.
SOURCE_FILES: dict[tuple[str, str], str] = {
    ("stripe", "customers"): "stripe/customers.jsonl",
    ("stripe", "charges"): "stripe/charges.jsonl",
    ("stripe", "payment_intents"): "stripe/payment_intents.jsonl",
    ("stripe", "refunds"): "stripe/refunds.jsonl",
    ("stripe", "events"): "stripe/events.jsonl",
    ("donorbox", "donations"): "donorbox/donations.jsonl",
    ("classy", "transactions"): "classy/transactions.jsonl",
}
_CHUNK = 50_000


def _chunks(path: Path) -> Iterator[list[dict[str, object]]]:
    chunk: list[dict[str, object]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                chunk.append(json.loads(line))
                if len(chunk) >= _CHUNK:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def load_sources(box: Sandbox, data_dir: Path) -> dict[str, int]:
    """Seed every running source emulator from ``data_dir``; return records loaded per ``emulator.kind``.

    :raises FileNotFoundError: a file the generator always writes is missing.
    """
    loaded: dict[str, int] = {}
    for (name, kind), relative in SOURCE_FILES.items():
        if name not in box.running:
            continue
        path = data_dir / relative
        if not path.exists():
            raise FileNotFoundError(f"{path}: sample data missing; run `python -m sandbox.datagen`")
        emulator = box[name].emulator
        count = 0
        for chunk in _chunks(path):
            with emulator.lock:
                count += emulator.seed(kind, chunk)
        loaded[f"{name}.{kind}"] = count
    return loaded
