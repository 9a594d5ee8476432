"""Nickname equivalence of given names, from the maintained table ``include/mappings/nicknames.csv``.

Two names are equivalent when they are equal, when one is listed as the other's nickname, or when
both are listed under the same formal name and start with the same letter (``bob`` and ``bobby``
under ``robert``; not ``susie`` and ``hannah`` under ``susannah``). The table is
plain data with its source and licence in its header; lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir


def default_nicknames_path() -> Path:
    """Return the shipped nickname table."""
    return include_dir() / "mappings" / "nicknames.csv"


@dataclass(frozen=True)
class Nicknames:
    """A nickname table: each name's groups (the formal names it belongs to, itself included)."""

    groups: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Nicknames:
        """Build the table from ``(formal, nickname)`` pairs (any case)."""
        groups: dict[str, set[str]] = {}
        for formal, nickname in pairs:
            f, n = formal.strip().lower(), nickname.strip().lower()
            if not f or not n:
                continue
            groups.setdefault(f, set()).add(f)
            groups.setdefault(n, set()).add(f)
        return cls({name: frozenset(g) for name, g in groups.items()})

    def equivalent(self, a: str, b: str) -> bool:
        """Return whether two lower-case given names are the same name or nicknames of one another."""
        if a == b:
            return True
        ga, gb = self.groups.get(a), self.groups.get(b)
        if ga is None or gb is None:
            return False
        if a in gb or b in ga:
            return True
        # two nicknames of one formal name: only when they start alike (bob / bobby under robert),
        # since the table lists many formal names' diminutives that are other names in their own
        # right (susie and hannah under susannah; mandy and randy under miranda)
        return a[:1] == b[:1] and not ga.isdisjoint(gb)

    def equivalent_many(self, left: Sequence[str], right: Sequence[str]) -> list[bool]:
        """Return :meth:`equivalent` for aligned sequences of names."""
        return [self.equivalent(a, b) for a, b in zip(left, right, strict=True)]

    def formal(self, name: str) -> str:
        """Return a canonical formal name for blocking (the first of its groups), else the name."""
        g = self.groups.get(name)
        if not g:
            return name
        return name if name in g else min(g)


def load_nicknames(path: Path | None = None) -> Nicknames:
    """Load a ``formal,nickname`` CSV (the shipped table by default).

    :raises ConfigError: naming the file and line of a malformed row.
    """
    path = path or default_nicknames_path()
    return _load(path.resolve())


@cache
def _load(path: Path) -> Nicknames:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    pairs: list[tuple[str, str]] = []
    rows = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    for number, row in zip((n for n, _ in rows), csv.reader(line for _, line in rows), strict=True):
        if len(row) != 2:
            raise ConfigError(f"{path}: line {number}: expected two columns formal,nickname")
        if row == ["formal", "nickname"]:
            continue
        pairs.append((row[0], row[1]))
    return Nicknames.from_pairs(pairs)
