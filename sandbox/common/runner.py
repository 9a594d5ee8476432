"""Run emulators as HTTPS servers on loopback, each in its own thread (tests, CLI, demo)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.common.emulator import Emulator
from sandbox.common.jwt_keys import JwtKeyPair
from sandbox.common.tls import TlsFiles, ensure_tls

_START_TIMEOUT_S = 15.0


@dataclass
class Running:
    """A started emulator and where it listens."""

    emulator: Emulator
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        """Return the vendor API's base URL."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """Return the admin API's base URL."""
        return f"{self.base_url}/__admin"


class Sandbox:
    """Start and stop a set of emulators over HTTPS with the sandbox CA.

    :param ports: port per emulator name; 0 or missing picks a free port (tests).
    """

    def __init__(self, emulators: list[Emulator], tls_dir: Path, ports: dict[str, int] | None = None) -> None:
        self.emulators = emulators
        self.ports = ports or {}
        self.tls: TlsFiles = ensure_tls(tls_dir)
        #: The Salesforce JWT key pair whose public key the Salesforce emulator trusts, when
        #: :func:`sandbox.registry.build_sandbox` made the sandbox with that emulator.
        self.jwt_key: JwtKeyPair | None = None
        self.running: dict[str, Running] = {}

    def start(self) -> Sandbox:
        """Start every emulator; return once all accept connections."""
        for emulator in self.emulators:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            port = self.ports.get(emulator.name, 0)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                sock.close()
                self.stop()
                raise RuntimeError(
                    f"sandbox: port {port} for the {emulator.name} emulator is taken ({exc.strerror})"
                ) from exc
            port = sock.getsockname()[1]
            emulator.base_url = f"https://127.0.0.1:{port}"
            config = uvicorn.Config(
                emulator.build_app(),
                log_level="warning",
                log_config=None,  # leave logging to the host process (quiet CLI, pytest capture)
                lifespan="off",
                ssl_certfile=str(self.tls.server_cert),
                ssl_keyfile=str(self.tls.server_key),
                timeout_keep_alive=30,
                # Idle keep-alive connections held by SDK clients must not delay shutdown.
                timeout_graceful_shutdown=1,
                access_log=False,
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{emulator.name}", daemon=True
            )
            thread.start()
            self.running[emulator.name] = Running(emulator, port, server, thread)
        deadline = time.monotonic() + _START_TIMEOUT_S
        for running in self.running.values():
            while not running.server.started:
                if time.monotonic() > deadline or not running.thread.is_alive():
                    self.stop()
                    raise RuntimeError(f"sandbox: the {running.emulator.name} emulator did not start")
                time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop every emulator and wait for its thread."""
        for running in self.running.values():
            running.server.should_exit = True
        for running in self.running.values():
            running.thread.join(timeout=10)
        self.running.clear()

    def __getitem__(self, name: str) -> Running:
        return self.running[name]

    def describe(self) -> dict[str, Any]:
        """Return each emulator's base and admin URL, the CA certificate path and, with the Salesforce
        emulator, the JWT private key path its connection signs with (``sandbox up --json``)."""
        description: dict[str, Any] = {
            "ca_cert": str(self.tls.ca_cert),
            "emulators": {
                name: {"base_url": r.base_url, "admin_url": r.admin_url} for name, r in self.running.items()
            },
        }
        if self.jwt_key is not None:
            description["salesforce_jwt_key"] = str(self.jwt_key.private_key)
        return description

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
