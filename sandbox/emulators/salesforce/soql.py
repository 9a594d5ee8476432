"""A small SOQL subset: ``SELECT f, … FROM Obj [WHERE …] [ORDER BY f [ASC|DESC], …] [LIMIT n]``.

WHERE supports ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE``, ``IN (…)``, ``NOT IN (…)``,
``AND``/``OR``/``NOT`` and parentheses; literals are quoted strings, numbers, ``true``/``false``,
``null``, dates (``2024-01-31``) and datetimes (``2024-01-31T00:00:00Z``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.emulators.salesforce.objects import Field, SfError, SObject, find_sobject, parse_datetime

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
    r"|(?P<date>\d{4}-\d\d-\d\d)|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>!=|<=|>=|<>|=|<|>|\(|\)|,)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)
Predicate = Callable[[dict[str, Any]], bool]


def malformed(detail: str) -> SfError:
    """Return a MALFORMED_QUERY error."""
    return SfError("MALFORMED_QUERY", detail)


@dataclass
class Query:
    """A parsed query: the sObject, selected fields, filter, order and limit."""

    sobject: SObject
    fields: list[Field]
    where: Predicate
    order: list[tuple[Field, bool]]
    limit: int | None


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise malformed(f"unexpected token: '{text[pos:].split()[0]}'")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.pos] if self.pos < len(self.toks) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> bool:
        ahead = [v.upper() for k, v in self.toks[self.pos : self.pos + len(words)] if k == "word"]
        if ahead == list(words):
            self.pos += len(words)
            return True
        return False

    def expect(self, value: str) -> None:
        got = self.take()[1]
        if got.upper() != value:
            raise malformed(f"expecting '{value}', found '{got or 'end of query'}'")


def _field(obj: SObject, name: str) -> Field:
    f = obj.field(name)
    if f is None:
        raise SfError("INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'.")
    return f


def _literal(tok: tuple[str, str]) -> Any:
    kind, value = tok
    if kind == "str":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    if kind == "num":
        return float(value)
    if kind == "dt":
        return parse_datetime(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "word" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "word" and value.lower() == "null":
        return None
    raise malformed(f"unexpected token: '{value}'")


def comparable(f: Field, value: Any) -> Any:
    """Return a stored value in a form that compares with literals."""
    if value is None:
        return None
    if f.type == "datetime":
        return parse_datetime(value)
    if f.type == "date":
        return dt.date.fromisoformat(value)
    if isinstance(value, str):
        return value.lower()
    return value


def _norm(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("=", "!=", "<>"):
        equal = left == right
        return equal if op == "=" else not equal
    if left is None or right is None:
        return False
    try:
        return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])
    except TypeError:
        raise SfError("INVALID_QUERY_FILTER_OPERATOR", f"invalid operator {op} for these values") from None


def _condition(p: _Parser, obj: SObject) -> Predicate:
    if p.keyword("NOT"):
        inner = _condition(p, obj)
        return lambda r: not inner(r)
    if p.peek()[1] == "(":
        p.take()
        inner = _or(p, obj)
        p.expect(")")
        return inner
    kind, name = p.take()
    if kind != "word":
        raise malformed(f"unexpected token: '{name}'")
    f = _field(obj, name)
    negate = p.keyword("NOT", "IN")
    if negate or p.keyword("IN"):
        p.expect("(")
        values = [_norm(_literal(p.take()))]
        while p.peek()[1] == ",":
            p.take()
            values.append(_norm(_literal(p.take())))
        p.expect(")")
        return lambda r: (comparable(f, r.get(f.name)) in values) != negate
    if p.keyword("LIKE"):
        pattern = str(_literal(p.take()))
        regex = re.compile("^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$", re.I | re.S)
        return lambda r: r.get(f.name) is not None and bool(regex.match(str(r.get(f.name))))
    op = p.take()[1]
    if op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
        raise malformed(f"unexpected token: '{op}'")
    value = _norm(_literal(p.take()))
    if f.type == "datetime" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        raise malformed(f"value of filter criterion for field '{f.name}' must be of type dateTime")
    return lambda r: _compare(op, comparable(f, r.get(f.name)), value)


def _and(p: _Parser, obj: SObject) -> Predicate:
    parts = [_condition(p, obj)]
    while p.keyword("AND"):
        parts.append(_condition(p, obj))
    return lambda r: all(c(r) for c in parts)


def _or(p: _Parser, obj: SObject) -> Predicate:
    parts = [_and(p, obj)]
    while p.keyword("OR"):
        parts.append(_and(p, obj))
    return lambda r: any(c(r) for c in parts)


def parse(text: str) -> Query:
    """Parse a SOQL query; raise SfError (MALFORMED_QUERY, INVALID_TYPE, INVALID_FIELD)."""
    p = _Parser(text)
    p.expect("SELECT")
    names = [p.take()[1]]
    while p.peek()[1] == ",":
        p.take()
        names.append(p.take()[1])
    p.expect("FROM")
    obj_name = p.take()[1]
    obj = find_sobject(obj_name)
    if obj is None:
        raise SfError("INVALID_TYPE", f"sObject type '{obj_name}' is not supported.")
    fields = [_field(obj, n) for n in names]
    where: Predicate = lambda r: True  # noqa: E731
    if p.keyword("WHERE"):
        where = _or(p, obj)
    order: list[tuple[Field, bool]] = []
    if p.keyword("ORDER", "BY"):
        while True:
            f = _field(obj, p.take()[1])
            descending = p.keyword("DESC")
            if not descending:
                p.keyword("ASC")
            order.append((f, descending))
            if p.peek()[1] != ",":
                break
            p.take()
    limit = None
    if p.keyword("LIMIT"):
        kind, value = p.take()
        if kind != "num":
            raise malformed(f"unexpected token: '{value}'")
        limit = int(float(value))
    if p.peek()[0] != "end":
        raise malformed(f"unexpected token: '{p.peek()[1]}'")
    return Query(obj, fields, where, order, limit)


def run(query: Query, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the matching records, ordered and limited (nulls first ascending, as Salesforce)."""
    rows = [r for r in records if query.where(r)]
    for f, descending in reversed(query.order):
        present = [r for r in rows if r.get(f.name) is not None]
        nulls = [r for r in rows if r.get(f.name) is None]
        present.sort(key=lambda r, f=f: comparable(f, r[f.name]), reverse=descending)  # type: ignore[misc]
        rows = present + nulls if descending else nulls + present
    return rows[: query.limit] if query.limit is not None else rows
