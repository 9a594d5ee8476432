"""Sandbox fixtures: the CA once per session, emulators started on free ports per test module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from sandbox.common.emulator import Emulator
from sandbox.common.runner import Sandbox
from sandbox.common.tls import TlsFiles, ensure_tls
from sandbox.registry import build_sandbox


@pytest.fixture(scope="session")
def sandbox_tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-tls")


@pytest.fixture(scope="session")
def sandbox_tls(sandbox_tls_dir: Path) -> TlsFiles:
    return ensure_tls(sandbox_tls_dir)


@pytest.fixture(scope="session")
def start_sandbox(sandbox_tls_dir: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start emulators by name on free ports; all are stopped at the end of the session."""
    started: list[Sandbox] = []

    def start(*names: str, **settings: dict[str, object]) -> Sandbox:
        box = build_sandbox(names, tls_dir=sandbox_tls_dir, fixed_ports=False, settings=settings).start()
        started.append(box)
        return box

    yield start
    for box in started:
        box.stop()


@pytest.fixture(scope="session")
def start_emulators(sandbox_tls_dir: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start emulator instances (not yet in the registry) on free ports; stopped at session end."""
    started: list[Sandbox] = []

    def start(*emulators: Emulator) -> Sandbox:
        box = Sandbox(list(emulators), tls_dir=sandbox_tls_dir).start()
        started.append(box)
        return box

    yield start
    for box in started:
        box.stop()


@pytest.fixture
def https(sandbox_tls: TlsFiles) -> Iterator[requests.Session]:
    """A requests session that trusts the sandbox CA (and nothing is unverified)."""
    with requests.Session() as session:
        session.verify = str(sandbox_tls.ca_cert)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (set on many machines, CI's included)
        # override a session's `verify`; per-request verify or trust_env=False avoids that.
        session.trust_env = False
        yield session
