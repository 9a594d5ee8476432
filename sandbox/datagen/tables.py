"""The in-memory form of one output file: columns, truth keys, a row builder and bad-value overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox.datagen.arrays import IntArray, StrArray

Columns = dict[str, list[Any]]
Builder = Callable[[Columns, int], list[Any]]


@dataclass
class SourceTable:
    """One output file before it is written.

    ``build`` turns a chunk of columns (as Python lists) into JSON-ready dicts or CSV rows.
    ``overrides`` holds the bad values injected into it: row -> [(field path, value)].
    """

    name: str
    ids: StrArray
    person: IntArray
    appearance: IntArray
    gift: IntArray
    columns: dict[str, np.ndarray]
    build: Builder
    fmt: str = "jsonl"
    header: tuple[str, ...] = ()
    encoding: str = "utf-8"
    bad_eligible: bool = False
    overrides: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)

    def __len__(self) -> int:
        """Return the number of records."""
        return len(self.ids)

    def chunk(self, lo: int, hi: int) -> Columns:
        """Return rows ``lo:hi`` of every column as Python lists."""
        return {key: values[lo:hi].tolist() for key, values in self.columns.items()}

    def rows(self, lo: int, hi: int) -> list[Any]:
        """Build rows ``lo:hi`` with their bad values applied."""
        built = self.build(self.chunk(lo, hi), hi - lo)
        if self.overrides:
            for row in range(lo, hi):
                for path, value in self.overrides.get(row, ()):
                    set_path(built[row - lo], path, value, self.header)
        return built


def set_path(obj: Any, path: str, value: Any, header: tuple[str, ...]) -> None:
    """Set a dotted field of a dict (``billing_details.email``) or a named column of a CSV row."""
    if isinstance(obj, list):
        obj[header.index(path)] = value
        return
    *parents, leaf = path.split(".")
    for key in parents:
        obj = obj[key]
    obj[leaf] = value


def get_path(obj: Any, path: str, header: tuple[str, ...] = ()) -> Any:
    """Read a dotted field of a dict or a named column of a CSV row."""
    if isinstance(obj, list):
        return obj[header.index(path)]
    for key in path.split("."):
        obj = obj[key]
    return obj
