"""The runbooks exist under the names alerts link to, each with the sections on-call needs, and
every relative link in them and in docs/architecture.md resolves."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.docs.markdown import (
    RUNBOOK_SECTIONS,
    RUNBOOKS,
    RUNBOOKS_DIR,
    anchors,
    doc_paths,
    heading_slug,
    headings,
    prose,
    relative_links,
)

_RUNBOOK_PATH = re.compile(r"docs/runbooks/([\w.-]+\.md)")


@pytest.mark.parametrize("name", RUNBOOKS)
def test_runbook_has_every_section_in_order(name: str) -> None:
    path = RUNBOOKS_DIR / name
    assert path.is_file(), f"missing runbook {name}"
    found = headings(path)
    assert found, f"{name}: has headings"
    assert found[0][0] == 1, f"{name}: starts with a title"
    assert [text for level, text in found if level == 2] == list(RUNBOOK_SECTIONS)
    # Every section says something: text between its heading and the next one.
    sections = re.split(r"^## .*$", prose(path.read_text(encoding="utf-8")), flags=re.MULTILINE)[1:]
    empty = [title for title, body in zip(RUNBOOK_SECTIONS, sections, strict=True) if len(body.split()) < 15]
    assert empty == [], f"{name}: sections with (almost) nothing in them"


def test_the_index_links_every_runbook_and_nothing_is_orphaned() -> None:
    index = RUNBOOKS_DIR / "README.md"
    linked = {target.split("#", 1)[0] for _, target in relative_links(index)}
    assert set(RUNBOOKS) <= linked
    on_disk = {p.name for p in RUNBOOKS_DIR.glob("*.md")} - {"README.md"}
    assert on_disk == set(RUNBOOKS), "every runbook is one alerts may link to, and is in the index"


def test_runbooks_named_in_code_and_configuration_exist() -> None:
    named: dict[str, list[str]] = {}
    for root in ("plugins", "include", "dags"):
        for path in (REPO_ROOT / root).rglob("*"):
            if path.suffix not in {".py", ".yaml", ".yml", ".sql", ".md"} or not path.is_file():
                continue
            for name in _RUNBOOK_PATH.findall(path.read_text(encoding="utf-8", errors="replace")):
                named.setdefault(name, []).append(str(path.relative_to(REPO_ROOT)))
    assert named, "the alerts name at least one runbook by path"
    missing = {name: where for name, where in named.items() if not (RUNBOOKS_DIR / name).is_file()}
    assert missing == {}


def test_the_alert_rules_offer_exactly_these_runbooks() -> None:
    rules = pytest.importorskip("donor_sync.observability.alerting.rules")
    assert set(typing.get_args(rules.Runbook)) == set(RUNBOOKS)


@pytest.mark.parametrize("path", doc_paths(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    links = relative_links(path)
    broken: list[str] = []
    for line, target in links:
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            broken.append(f"line {line}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"line {line}: {target} (no heading #{anchor})")
    assert broken == []


def test_the_docs_link_to_each_other() -> None:
    assert any(
        target.startswith("runbooks/") for _, target in relative_links(REPO_ROOT / "docs/architecture.md")
    )
    assert "../architecture.md" in {t for _, t in relative_links(RUNBOOKS_DIR / "README.md")}


def test_the_readme_has_one_operations_section_linking_the_new_docs() -> None:
    readme = REPO_ROOT / "README.md"
    titles = [text for level, text in headings(readme) if level == 2]
    assert titles.count("Operations") == 1
    section = readme.read_text(encoding="utf-8").split("## Operations", 1)[1].split("\n## ", 1)[0]
    assert "docs/runbooks/README.md" in section
    assert "docs/architecture.md" in section


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Postgres: schemas and key tables", "postgres-schemas-and-key-tables"),
        ("Reconciliation (donors_nightly)", "reconciliation-donors_nightly"),
        ("`donation.created` v1", "donationcreated-v1"),
        ("Do not", "do-not"),
    ],
)
def test_heading_slugs_follow_github(heading: str, slug: str) -> None:
    assert heading_slug(heading) == slug


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# There\n\n## Real part\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#real-part) [gone](nowhere.md) [bad anchor](there.md#missing) "
        "[web](https://example.org/x.md) `[not a link](code.md)`\n",
        encoding="utf-8",
    )
    assert relative_links(page) == [(1, "there.md#real-part"), (1, "nowhere.md"), (1, "there.md#missing")]
    assert anchors(tmp_path / "there.md") == {"there", "real-part"}
