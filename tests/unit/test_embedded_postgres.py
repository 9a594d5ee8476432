"""The embedded server: created on demand, reused, stopped cleanly, data kept across restarts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from donor_sync.db import connect
from donor_sync.db.embedded import EmbeddedPostgres
from donor_sync.errors import DatabaseError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    instance = EmbeddedPostgres(data_dir=tmp_path / "pg" / "data", port=_free_port())
    yield instance
    instance.stop()


def test_lifecycle_reuses_the_running_server_and_keeps_data(server: EmbeddedPostgres) -> None:
    assert server.status().initialised is False

    url = server.ensure_running()
    first = server.status()
    assert first.running
    assert first.initialised
    assert first.pid
    with connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    assert server.ensure_running() == url
    assert server.status().pid == first.pid, "a second call must reuse the running server"

    assert server.stop() is True
    assert server.status().running is False
    assert server.stop() is False, "stopping a stopped server is a no-op"

    server.ensure_running()
    with connect(url) as conn:
        assert conn.execute("SELECT id FROM kept").fetchall() == [(42,)]


def test_taken_port_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = EmbeddedPostgres(data_dir=tmp_path / "pg" / "data", port=port)
        with pytest.raises(
            DatabaseError, match=rf"port {port} on 127.0.0.1 is taken.*DONOR_SYNC_EMBEDDED_PORT"
        ):
            server.ensure_running()


def test_default_port_moves_aside_when_taken_and_is_then_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DONOR_SYNC_EMBEDDED_PORT", raising=False)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        monkeypatch.setattr("donor_sync.db.embedded.DEFAULT_PORT", taken)
        server = EmbeddedPostgres(data_dir=tmp_path / "pg" / "data")
        try:
            server.ensure_running()
            assert server.port != taken
            # A later process finds the recorded port and reuses the same server.
            again = EmbeddedPostgres(data_dir=tmp_path / "pg" / "data")
            assert again.port == server.port
            assert again.status().running
        finally:
            server.stop()
