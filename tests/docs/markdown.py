"""Read the operations docs the way the tests check them: commands, links, headings, table names.

Pure text helpers (no Airflow, no database), so each check is easy to read and each helper can be
tested on a small example of its own.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

DOCS_DIR = REPO_ROOT / "docs"
RUNBOOKS_DIR = DOCS_DIR / "runbooks"
ARCHITECTURE = DOCS_DIR / "architecture.md"

#: The runbooks alerts link to, by these exact names (include/mappings/alerts.yaml, operators).
RUNBOOKS: tuple[str, ...] = (
    "sync-failure.md",
    "rate-limits-and-quota.md",
    "open-circuit.md",
    "dead-letter-review.md",
    "dedup-review.md",
    "erasure-request.md",
    "credential-rotation.md",
    "backfill-and-replay.md",
    "vendor-schema-change.md",
)
#: The sections every runbook has, in this order.
RUNBOOK_SECTIONS: tuple[str, ...] = ("When you get here", "Confirm", "Fix", "Verify", "Escalate", "Do not")

#: Placeholders a quoted command may use, and the sample value each is parsed with.
PLACEHOLDERS: dict[str, str] = {
    "<destination>": "hubspot",
    "<dead-letter-id>": "42",
    "<review-id>": "7",
    "<request-id>": "0b6e8f1c-2a57-4d9e-b3f4-7c1d2e9a6b50",
    "<donor-id>": "6f1c2b8e-0d4a-4e57-9b3c-2a7e5d1f8c90",
    "<old-key-id>": "k20260101",
    "<format>": "bank_cheque_export",
}

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w-]*)\s*$")
_SHELL_LANGUAGES = frozenset({"", "bash", "sh", "shell", "console"})
_SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1"})
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
_INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_NAME = re.compile(r"(?<![\w./-])(raw|staging|core|sync)\.([a-z_][a-z0-9_]*)(\(?)")
_PLACEHOLDER = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class FencedBlock:
    """A fenced code block: its language and its lines (fences excluded)."""

    language: str
    lines: tuple[str, ...]
    first_line: int  # 1-based line number of the opening fence


@dataclass(frozen=True)
class Command:
    """A ``donor-sync`` command quoted in a doc: where, as written, and its arguments."""

    path: Path
    line: int
    text: str
    argv: tuple[str, ...]

    def where(self) -> str:
        """Return ``file:line`` relative to the repo."""
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def doc_paths() -> list[Path]:
    """Return the operations docs the tests check: the architecture page and every runbook."""
    return [ARCHITECTURE, *sorted(RUNBOOKS_DIR.glob("*.md"))]


def fenced_blocks(text: str) -> list[FencedBlock]:
    """Return every fenced code block of a Markdown text."""
    blocks: list[FencedBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language, start = opening.group(2), opening.group(3).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        blocks.append(FencedBlock(language, tuple(body), start + 1))
        i += 1
    return blocks


def prose(text: str) -> str:
    """Return ``text`` with fenced blocks blanked (line numbers kept), for inline scans."""
    lines = text.splitlines()
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(2)
            out.append("")
        elif fence is not None:
            out.append("")
            if line.strip().startswith(fence):
                fence = None
        else:
            out.append(line)
    return "\n".join(out)


def _argv_of_shell_line(line: str) -> list[list[str]]:
    """Return the argument lists of the ``donor-sync`` invocations in one shell line."""
    found: list[list[str]] = []
    for inner in _SUBSTITUTION.findall(line):
        found += _argv_of_shell_line(inner)
    line = _SUBSTITUTION.sub("SUBSTITUTED", line)
    tokens = shlex.split(line, comments=True)
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token not in _SHELL_OPERATORS:
            segment.append(token)
            continue
        while segment and _ENV_ASSIGNMENT.match(segment[0]):
            segment.pop(0)
        if segment and segment[0] == "donor-sync":
            found.append(segment[1:])
        segment = []
    return found


def commands_in(path: Path) -> list[Command]:
    """Return every ``donor-sync`` command quoted in a doc: in shell code blocks and inline code."""
    text = path.read_text(encoding="utf-8")
    commands: list[Command] = []
    for block in fenced_blocks(text):
        if block.language not in _SHELL_LANGUAGES:
            continue
        logical, start = "", 0
        for offset, raw in enumerate(block.lines, start=block.first_line + 1):
            line = raw.strip()
            if not logical:
                start = offset
                line = line.removeprefix("$ ")
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            logical += line
            for argv in _argv_of_shell_line(logical):
                commands.append(Command(path, start, logical, tuple(argv)))
            logical = ""
    body = prose(text)
    for match in _INLINE_CODE.finditer(body):
        span = " ".join(match.group(1).split())
        if not (span.startswith("donor-sync ") or "$(donor-sync " in span):
            continue
        line = body.count("\n", 0, match.start()) + 1
        for argv in _argv_of_shell_line(span):
            commands.append(Command(path, line, span, tuple(argv)))
    return commands


def fill_placeholders(argv: tuple[str, ...]) -> list[str]:
    """Return ``argv`` with each known ``<placeholder>`` replaced by its sample value.

    :raises KeyError: naming a placeholder that is not in :data:`PLACEHOLDERS`.
    """
    filled: list[str] = []
    for token in argv:
        value = token
        for placeholder in _PLACEHOLDER.findall(token):
            if placeholder not in PLACEHOLDERS:
                raise KeyError(placeholder)
            value = value.replace(placeholder, PLACEHOLDERS[placeholder])
        filled.append(value)
    return filled


def relative_links(path: Path) -> list[tuple[int, str]]:
    """Return (line, target) of every link in a doc's prose that is not a URL."""
    body = _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), prose(path.read_text(encoding="utf-8")))
    links: list[tuple[int, str]] = []
    for match in _LINK.finditer(body):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        links.append((body.count("\n", 0, match.start()) + 1, target))
    return links


def heading_slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """Return (level, text) of every heading outside code blocks."""
    found: list[tuple[int, str]] = []
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        match = _HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchors(path: Path) -> set[str]:
    """Return the anchors of a doc's headings."""
    return {heading_slug(text) for _, text in headings(path)}


@dataclass(frozen=True)
class TableName:
    """A ``schema.name`` a doc mentions; ``call`` when written as a function call."""

    schema: str
    name: str
    call: bool

    @property
    def qualified(self) -> str:
        """Return ``schema.name``."""
        return f"{self.schema}.{self.name}"


def table_names(text: str) -> set[TableName]:
    """Return every ``raw|staging|core|sync.<name>`` a text mentions (code and prose alike)."""
    return {TableName(m.group(1), m.group(2), bool(m.group(3))) for m in _TABLE_NAME.finditer(text)}
