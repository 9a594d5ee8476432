"""The per-DAG Mermaid diagrams of docs/architecture.md, generated from the DAG files.

Each diagram sits between ``<!-- dag-diagram: <dag_id> -->`` and ``<!-- /dag-diagram -->``. It
draws every task (with its pool unless it is ``default_pool``) and every direct dependency that no
longer path implies (the transitive reduction: every task also reads ``open_run``'s run id, which
would otherwise draw an edge from ``open_run`` to everything).

Rewrite them after a DAG changes (tests/docs fails while they are stale)::

    python -m tests.docs.dag_diagrams --write
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
DAGS_DIR = REPO_ROOT / "dags"
REGENERATE = "python -m tests.docs.dag_diagrams --write"

_BLOCK = re.compile(
    r"<!-- dag-diagram: (?P<dag_id>[a-z0-9_]+) -->\n(?P<body>.*?)<!-- /dag-diagram -->\n", re.DOTALL
)
_NODE = re.compile(r"^\s*([A-Za-z_]\w*)\[")
_EDGE = re.compile(r"^\s*([A-Za-z_]\w*)\s*-->\s*([A-Za-z_]\w*)\s*$")


def reduced_edges(downstream: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Return the transitive reduction of a DAG given as task -> direct downstream tasks.

    An edge u -> v is dropped when v can also be reached from u through another task.
    """
    graph = {task: set(children) for task, children in downstream.items()}
    reach: dict[str, set[str]] = {}

    def reachable(task: str) -> set[str]:
        if task not in reach:
            found: set[str] = set()
            for child in graph.get(task, ()):
                found |= {child} | reachable(child)
            reach[task] = found
        return reach[task]

    return {
        task: {v for v in children if not any(v in reachable(w) for w in children if w != v)}
        for task, children in graph.items()
    }


def render(dag: Any) -> str:
    """Return the Mermaid block (with its fences) drawing ``dag``'s tasks and reduced dependencies."""
    order = [task.task_id for task in dag.topological_sort()]
    position = {task_id: i for i, task_id in enumerate(order)}
    edges = reduced_edges({t: dag.task_dict[t].downstream_task_ids for t in order})
    lines = ["```mermaid", "flowchart LR"]
    for task_id in order:
        pool = dag.task_dict[task_id].pool
        label = task_id if pool in (None, "default_pool") else f"{task_id}<br/>pool {pool}"
        lines.append(f'  {task_id}["{label}"]')
    for task_id in order:
        lines += [f"  {task_id} --> {child}" for child in sorted(edges[task_id], key=position.__getitem__)]
    lines.append("```")
    return "\n".join(lines) + "\n"


def diagram_blocks(text: str) -> dict[str, str]:
    """Return ``{dag_id: block}`` for each generated diagram in a page (the block with its fences)."""
    return {m.group("dag_id"): m.group("body") for m in _BLOCK.finditer(text)}


def nodes_and_edges(block: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Return the node ids a diagram declares or connects, and its edges."""
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for line in block.splitlines():
        edge = _EDGE.match(line)
        if edge:
            edges.add((edge.group(1), edge.group(2)))
            nodes |= {edge.group(1), edge.group(2)}
            continue
        node = _NODE.match(line)
        if node:
            nodes.add(node.group(1))
    return nodes, edges


def replace_blocks(text: str, rendered: Mapping[str, str]) -> str:
    """Return ``text`` with each diagram block replaced by ``rendered[dag_id]`` (others untouched)."""

    def swap(match: re.Match[str]) -> str:
        dag_id = match.group("dag_id")
        body = rendered.get(dag_id, match.group("body"))
        return f"<!-- dag-diagram: {dag_id} -->\n{body}<!-- /dag-diagram -->\n"

    return _BLOCK.sub(swap, text)


def load_dags() -> dict[str, Any]:
    """Return the repo's DAGs, parsed as the DAG integrity tests parse them."""
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


def main(argv: list[str]) -> int:
    """Print the page with fresh diagrams, or write it (``--write``), or check it (``--check``)."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="donor-sync-docs-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{os.environ['AIRFLOW_HOME']}/airflow.db"
    )
    text = ARCHITECTURE.read_text(encoding="utf-8")
    fresh = replace_blocks(text, {dag_id: render(dag) for dag_id, dag in load_dags().items()})
    if "--write" in argv:
        ARCHITECTURE.write_text(fresh, encoding="utf-8")
        print(f"wrote {ARCHITECTURE}")
    elif "--check" in argv:
        if fresh != text:
            print(f"{ARCHITECTURE} is stale: run `{REGENERATE}`")
            return 1
        print(f"{ARCHITECTURE} is current")
    else:
        sys.stdout.write(fresh)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
