"""Markdown reference tables from pydantic config models, for the generated pages under docs/.

The config pages (docs/standardize-rules.md, docs/dedup-rules.md, docs/survivorship.md) describe
each model's fields from their own annotations, defaults and descriptions, so they cannot drift
from the code; each page's module adds what its shipped YAML file sets.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def type_name(annotation: Any) -> str:
    """Return a reader's name for a field's type (`` `a` \\| `b` `` for literals, "list of ...")."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(annotation)
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"map of {type_name(key)} to {type_name(value)}"
    if annotation is type(None):
        return "null"
    return str(getattr(annotation, "__name__", annotation))


def default_text(info: FieldInfo) -> str:
    """Return a field's default as table text ("required", "see below" for a nested model)."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    text = repr(value) if not isinstance(value, str) else value
    text = text.replace("Decimal('", "").replace("')", "")
    return f"`{text}`" if len(text) < 60 else "see the shipped file"


def nested_models(model: type[BaseModel], path: str = "") -> list[tuple[str, type[BaseModel]]]:
    """Return ``model`` and every model nested in its fields, each with its dotted path."""
    found = [(path, model)]
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.extend(nested_models(annotation, f"{path}.{name}" if path else name))
    return found


def model_section(
    title: str,
    model: type[BaseModel],
    *,
    defaults: bool = True,
    type_of: Callable[[str, FieldInfo], str | None] | None = None,
) -> list[str]:
    """Return a ``###`` section: the model's docstring, then a table of its fields.

    :param defaults: include a default column.
    :param type_of: a field's type text when it should differ from :func:`type_name` (None: keep it).
    """
    lines = [f"### {title}", ""]
    if model.__doc__:
        lines += [" ".join(model.__doc__.split()), ""]
    if defaults:
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
    else:
        lines += ["| field | type | description |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        description = " ".join((info.description or "").split()).replace("|", "\\|")
        shown = (type_of(name, info) if type_of else None) or type_name(info.annotation)
        middle = f"{shown} | {default_text(info)}" if defaults else shown
        lines.append(f"| `{name}` | {middle} | {description} |")
    return [*lines, ""]


def path_title(path: str) -> str:
    """Return a section title for a dotted model path (the top-level model: "Top level")."""
    return f"`{path}`" if path else "Top level"


def write_page(path: Path, text: str) -> None:
    """Write a generated page and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
