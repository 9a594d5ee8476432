"""docs/architecture.md agrees with the code: its per-DAG diagrams with the real DAGs, and every
``schema.table`` it or a runbook names with the migrated staging database."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from airflow.models import DagBag

from tests.docs.dag_diagrams import (
    ARCHITECTURE,
    DAGS_DIR,
    REGENERATE,
    diagram_blocks,
    nodes_and_edges,
    reduced_edges,
    render,
    replace_blocks,
)
from tests.docs.markdown import TableName, doc_paths, table_names

DAG_IDS = ("donations_hourly", "donors_nightly", "privacy_requests", "dlq_replay")


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    bag = DagBag(dag_folder=str(DAGS_DIR))  # as tests/dags parses them
    assert bag.import_errors == {}
    return dict(bag.dags)


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return diagram_blocks(ARCHITECTURE.read_text(encoding="utf-8"))


def test_every_dag_has_a_diagram(dags: dict[str, Any], blocks: dict[str, str]) -> None:
    assert set(blocks) == set(dags) == set(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_task_and_edge_drawn_exists_in_the_dag(
    dag_id: str, dags: dict[str, Any], blocks: dict[str, str]
) -> None:
    dag = dags[dag_id]
    nodes, edges = nodes_and_edges(blocks[dag_id])
    assert nodes, f"{dag_id}: the diagram draws tasks"
    assert nodes - set(dag.task_ids) == set(), f"{dag_id}: task ids the DAG does not have"
    not_direct = {(u, v) for u, v in edges if v not in dag.task_dict[u].downstream_task_ids}
    assert not_direct == set(), f"{dag_id}: edges that are not dependencies in the DAG"


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_diagram_is_current(dag_id: str, dags: dict[str, Any], blocks: dict[str, str]) -> None:
    assert blocks[dag_id] == render(dags[dag_id]), f"docs/architecture.md is stale: run `{REGENERATE}`"


def test_reduction_drops_only_implied_edges() -> None:
    downstream = {
        "open_run": {"extract", "standardize", "close_run"},
        "extract": {"standardize"},
        "standardize": {"close_run"},
        "close_run": set(),
    }
    assert reduced_edges(downstream) == {
        "open_run": {"extract"},
        "extract": {"standardize"},
        "standardize": {"close_run"},
        "close_run": set(),
    }
    assert downstream["open_run"] == {"extract", "standardize", "close_run"}  # input left alone


def test_replacing_blocks_keeps_the_rest_of_the_page() -> None:
    page = (
        "intro\n<!-- dag-diagram: a -->\nold\n<!-- /dag-diagram -->\n"
        "middle\n<!-- dag-diagram: b -->\nkeep\n<!-- /dag-diagram -->\n"
    )
    assert replace_blocks(page, {"a": "new\n"}) == page.replace("old\n", "new\n")


def _relations(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    """Return the tables and views, and the functions, of the four schemas."""
    schemas = ["raw", "staging", "core", "sync"]
    relations = {
        f"{schema}.{name}"
        for schema, name in conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm')",
            (schemas,),
        ).fetchall()
    }
    functions = {
        f"{schema}.{name}"
        for schema, name in conn.execute(
            "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = ANY(%s)",
            (schemas,),
        ).fetchall()
    }
    return relations, functions


def _unknown(names: set[TableName], relations: set[str], functions: set[str]) -> list[str]:
    return sorted(n.qualified for n in names if n.qualified not in (functions if n.call else relations))


def test_every_table_named_exists_after_migrations(db: psycopg.Connection) -> None:
    relations, functions = _relations(db)
    named = {name for path in doc_paths() for name in table_names(path.read_text(encoding="utf-8"))}
    assert len(named) >= 30, "the docs name the key tables"
    assert _unknown(named, relations, functions) == []


def test_the_table_check_catches_a_wrong_name(db: psycopg.Connection) -> None:
    relations, functions = _relations(db)
    names = table_names(
        "see sync.dead_letters and sync.dead_letter (typo), core.jsonb_sha256(x), plugins/x/core.py"
    )
    assert {n.qualified for n in names} == {"sync.dead_letters", "sync.dead_letter", "core.jsonb_sha256"}
    assert _unknown(names, relations, functions) == ["sync.dead_letter"]
