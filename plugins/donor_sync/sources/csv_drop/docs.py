"""The export format reference in docs/csv-drops.md, generated from the format models' field descriptions.

``python -m donor_sync.sources.csv_drop.docs`` rewrites the part of docs/csv-drops.md between the
markers below; a test fails when the page and the models disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from donor_sync import paths
from donor_sync.sources.csv_drop.formats import CsvFormat, Recognize

BEGIN: Final = "<!-- BEGIN generated from donor_sync.sources.csv_drop.formats: do not edit by hand -->"
END: Final = "<!-- END generated -->"


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    return "none" if value is None else f"`{value!r}`"


def _table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = ["| field | default | meaning |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        description = (info.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{prefix}{name}` | {_default(info)} | {description} |")
    return rows


def format_reference() -> str:
    """Return the Markdown reference of every field of an export format file."""
    lines = [
        BEGIN,
        "",
        "### Format fields",
        "",
        *_table(CsvFormat),
        "",
        "### `recognize` fields",
        "",
        "A file is of a format when its name matches one of `filenames` (if given) and its header",
        "contains every one of `headers` (if given). Exactly one format must recognize a file.",
        "",
        *_table(Recognize, "recognize."),
        "",
        END,
    ]
    return "\n".join(lines)


def docs_page() -> Path:
    """Return docs/csv-drops.md."""
    return paths.repo_root() / "docs" / "csv-drops.md"


def render_page(text: str) -> str:
    """Return the page ``text`` with its generated section replaced by the current reference."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + format_reference() + text[end:]


def main() -> None:
    """Rewrite the generated section of docs/csv-drops.md."""
    page = docs_page()
    page.write_text(render_page(page.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main()
