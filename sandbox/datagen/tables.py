"""The in-memory form of one output file: columns, truth keys, a row builder and bad-value overrides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sandbox.datagen.arrays import IntArray, StrArray

Columns = dict[str, list[Any]]
Builder = Callable[[Columns, int], list[Any]]


class Gather:
    """A column read lazily as ``source[index]``, so tables share their sources' arrays instead of copies."""

    def __init__(self, source: np.ndarray, index: np.ndarray) -> None:
        """Keep the source array and the row of it behind each record."""
        self.source = source
        self.index = index
        self.dtype = source.dtype

    def __len__(self) -> int:
        """Return the number of records."""
        return len(self.index)

    def __getitem__(self, key: Any) -> Any:
        """Return the records at ``key`` (an int, slice or index array) from the source."""
        return self.source[self.index[key]]


class Lazy:
    """A column computed chunk by chunk as ``fn(*(array[key] for array in arrays))``."""

    def __init__(self, fn: Callable[..., Any], *arrays: Any) -> None:
        """Keep the function and the equal-length arrays it is applied to."""
        self.fn = fn
        self.arrays = arrays

    def __len__(self) -> int:
        """Return the number of records."""
        return len(self.arrays[0])

    def __getitem__(self, key: Any) -> Any:
        """Compute the records at ``key``."""
        return self.fn(*(array[key] for array in self.arrays))


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
    columns: dict[str, Any]
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
