"""Make ``dag.test()`` / ``airflow dags test`` work for DAGs with deadline alerts on Airflow 3.3.2.

Upstream bug apache/airflow#73428 (fix proposed in apache/airflow#73430, not released): ``DAG.test()``
round-trips the DAG through serialization in memory, which leaves ``dag.deadline`` holding the
encoded alerts (dicts) instead of ``deadline_alert`` row ids. When the run succeeds,
``DagRun.update_state()`` looks each one up with ``DeadlineAlertModel.get_by_id()`` and crashes,
so a run that succeeded exits non-zero.

:func:`apply` wraps ``get_by_id`` the way the upstream fix does: an encoded alert is answered from
its own content; row ids take the unchanged path. Only the demo and the tests call it (they run
DAGs with ``dag.test``); the scheduler path never passes dicts and is not affected. Remove this
module when the project moves to an Airflow release with the fix.
"""

from __future__ import annotations

import sys
from typing import Any

_APPLIED = False


class _EncodedAlert:
    """Enough of a ``DeadlineAlertModel`` for deadline pruning: its reference and reference class."""

    def __init__(self, encoded: dict[str, Any]) -> None:
        from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

        data = encoded.get("__data__", encoded)
        self.reference = dict(data.get("reference") or {})
        self.reference_class = DeadlineAlertModel.reference_class.fget(self)  # type: ignore[attr-defined]


def apply() -> None:
    """Install the workaround (idempotent)."""
    global _APPLIED  # noqa: PLW0603 - a one-time patch of a third-party class
    if _APPLIED:
        return
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel

    original = DeadlineAlertModel.get_by_id

    def get_by_id(deadline_alert_id: Any, **kwargs: Any) -> Any:
        if isinstance(deadline_alert_id, dict):
            return _EncodedAlert(deadline_alert_id)
        return original(deadline_alert_id, **kwargs)

    DeadlineAlertModel.get_by_id = get_by_id  # type: ignore[method-assign]
    _APPLIED = True


def main() -> None:
    """``python -m donor_sync.operators.dag_test_compat DAG_ID``: ``airflow dags test`` with the fix."""
    from airflow.__main__ import main as airflow_main

    apply()
    sys.argv = ["airflow", "dags", "test", *sys.argv[1:]]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
