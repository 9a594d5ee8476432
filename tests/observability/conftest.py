"""Fixtures that run the real Airflow components (see :mod:`tests.observability.airflow_services`).

``airflow_metadata_template`` migrates one Airflow metadata database per session (``airflow db
migrate`` plus the pools of airflow_settings.yaml); ``start_airflow_services`` gives each test
module that asks for it its own copies of that database and of the staging template, and the
running components, stopped when the module ends. A failing test in this folder gets the tail of
every running component's log in its report.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from donor_sync.db import drop_database, ensure_database, with_database
from donor_sync.db.url import database_name
from tests.observability.airflow_services import (
    RUNNING,
    AirflowServices,
    free_port,
    migrate_metadata,
    services_environment,
    write_trust_bundle,
)

_copies = itertools.count()


def _name(kind: str) -> str:
    return f"ds_af{kind}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def airflow_metadata_template(
    server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """URL of an Airflow metadata database migrated with ``airflow db migrate``, pools imported."""
    url = with_database(server_url, _name("tpl"))
    drop_database(url)
    ensure_database(url)
    migrate_metadata(url, staging_url=template_url, home=tmp_path_factory.mktemp("airflow-migrate"))
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def start_airflow_services(
    server_url: str,
    template_url: str,
    airflow_metadata_template: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AirflowServices]]:
    """Start the API server, scheduler, dag-processor and triggerer; all stopped at module end.

    ``start(connections, ca_cert=..., extra_env=None)`` copies the metadata and staging templates
    into databases of their own, passes ``connections`` (JSON form by id) as ``AIRFLOW_CONN_*``,
    trusts ``ca_cert`` (the test sandbox's CA) besides the system's authorities, and returns once
    every component reports healthy. Logs go to a temporary folder named in every failure message.
    """
    started: list[tuple[AirflowServices, list[str]]] = []

    def start(
        connections: Mapping[str, Mapping[str, Any]],
        *,
        ca_cert: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> AirflowServices:
        n = next(_copies)
        metadata_url = with_database(server_url, f"{_name('meta')}_{n}")
        staging_url = with_database(server_url, f"{_name('stg')}_{n}")
        for url, template in ((metadata_url, airflow_metadata_template), (staging_url, template_url)):
            drop_database(url)
            ensure_database(url, template=database_name(template))
        root = tmp_path_factory.mktemp("airflow-services")
        api_port = free_port()
        env = services_environment(
            staging_url=staging_url,
            metadata_url=metadata_url,
            home=root / "home",
            ca_bundle=write_trust_bundle(ca_cert, root / "trust-bundle.pem"),
            connections=connections,
            api_port=api_port,
            extra=extra_env,
        )
        services = AirflowServices(
            env=env,
            metadata_url=metadata_url,
            staging_url=staging_url,
            log_dir=root / "logs",
            api_port=api_port,
        )
        started.append((services, [metadata_url, staging_url]))
        return services.start()

    yield start
    leftovers: dict[str, list[int]] = {}
    for services, databases in started:
        services.stop()
        if alive := services.survivors():
            leftovers[str(services.log_dir)] = alive
        for url in databases:
            drop_database(url)
    assert not leftovers, f"Airflow processes outlived stop(): {leftovers}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Attach the running components' log tails to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and RUNNING:
        for services in RUNNING:
            report.sections.append((f"Airflow components ({services.log_dir})", services.log_tails(60)))
