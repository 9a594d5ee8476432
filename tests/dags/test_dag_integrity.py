"""Every DAG imports cleanly, follows the project's rules, and does no I/O at import."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow.models import DagBag

from tests.conftest import REPO_ROOT
from tests.dags.rules import dag_rule_violations

DAGS_DIR = REPO_ROOT / "dags"
EXPECTED_DAGS = {"donations_hourly", "donors_nightly", "privacy_requests", "dlq_replay"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))  # no include_examples: it raises on Airflow 3.3


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}


def test_the_four_dags_of_the_design_exist(dagbag: DagBag) -> None:
    assert set(dagbag.dags) == EXPECTED_DAGS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_follows_the_rules(dagbag: DagBag, dag_id: str) -> None:
    assert dag_rule_violations(dagbag.dags[dag_id]) == []


def test_only_dlq_replay_is_manual(dagbag: DagBag) -> None:
    scheduled = {dag_id for dag_id, dag in dagbag.dags.items() if dag.timetable.can_be_scheduled}
    assert scheduled == EXPECTED_DAGS - {"dlq_replay"}


_BAD_DAG = """
from datetime import timedelta
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from donor_sync.operators.dag_defaults import START_DATE, default_args

with DAG(dag_id="bad_dag", schedule=None, start_date=START_DATE, catchup=True,
         max_active_runs=16, default_args=default_args()):
    EmptyOperator(task_id="ok")
    EmptyOperator(task_id="no_timeout", execution_timeout=None, retries=1, on_failure_callback=None)
"""


def test_checker_reports_each_broken_rule(tmp_path: Path) -> None:
    (tmp_path / "bad_dag.py").write_text(textwrap.dedent(_BAD_DAG))
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    problems = dag_rule_violations(bag.dags["bad_dag"])
    assert problems == [
        "bad_dag: no tags",
        "bad_dag: no doc_md",
        "bad_dag: catchup must be False",
        "bad_dag: max_active_runs must be between 1 and 3",
        "bad_dag: on_failure_callback must record the failure in sync.runs",
        "bad_dag: no deadline alert",
        "bad_dag.no_timeout: no execution_timeout",
        "bad_dag.no_timeout: retries must be 6 (one per ladder rung)",
        "bad_dag.no_timeout: no Slack failure notifier",
    ]


def test_checker_flags_a_real_dag_edited_to_break_a_rule(tmp_path: Path) -> None:
    source = (DAGS_DIR / "donations_hourly.py").read_text()
    broken = source.replace("catchup=False", "catchup=True").replace(
        'tags=["donor-sync", "gifts", "hourly"]', "tags=[]"
    )
    assert broken != source
    (tmp_path / "donations_hourly.py").write_text(broken)
    bag = DagBag(dag_folder=str(tmp_path))
    problems = dag_rule_violations(bag.dags["donations_hourly"])
    assert "donations_hourly: catchup must be False" in problems
    assert "donations_hourly: no tags" in problems


def test_dag_files_do_no_network_or_database_io_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Any] = []

    def refuse_connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network I/O at DAG import")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    for path in DAGS_DIR.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    assert attempts == []
    assert set(bag.dags) == EXPECTED_DAGS


def test_dag_files_do_not_import_heavy_libraries() -> None:
    """Parsing must stay cheap: the DAG files add no pandas, rapidfuzz or database driver to what
    Airflow itself imports."""
    code = textwrap.dedent(
        f"""
        import runpy, sys
        import airflow.sdk
        from airflow.sdk import DAG
        baseline = set(sys.modules)
        for name in {sorted(p.name for p in DAGS_DIR.glob("*.py"))!r}:
            runpy.run_path({str(DAGS_DIR)!r} + "/" + name)
        heavy = sorted(m for m in ("pandas", "rapidfuzz", "psycopg", "sqlalchemy.dialects.postgresql.psycopg")
                       if m in sys.modules and m not in baseline)
        print(",".join(heavy))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'plugins'}"},
    )
    assert result.stdout.strip().splitlines()[-1:] in ([""], []), result.stdout


def test_airflow_plugin_loader_skips_the_library_package() -> None:
    """The loader imports plugin files under their bare names; the library must not be among them."""
    from airflow._shared.module_loading import find_path_from_directory

    plugins = REPO_ROOT / "plugins"
    loaded = [Path(p) for p in find_path_from_directory(str(plugins), ".airflowignore", "glob")]
    assert not [p for p in loaded if p.suffix == ".py" and (plugins / "donor_sync") in p.parents]
