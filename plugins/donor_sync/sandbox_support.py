"""Reach the repo's sandbox/ package (it is not part of the installed library) from the CLI."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from donor_sync.errors import ConfigError
from donor_sync.paths import local_state_dir, repo_root

if TYPE_CHECKING:
    from sandbox.common.runner import Sandbox


def _import_sandbox() -> None:
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)


def start_sandbox(names: list[str] | None = None, *, fixed_ports: bool = True) -> Sandbox:
    """Start the named emulators (all when None) over HTTPS; the CA lives in .local/sandbox/tls."""
    _import_sandbox()
    from sandbox.registry import build_sandbox

    try:
        running = build_sandbox(names, tls_dir=local_state_dir() / "sandbox" / "tls", fixed_ports=fixed_ports)
        return running.start()
    except (KeyError, RuntimeError) as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from exc
