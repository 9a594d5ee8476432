"""Reach the repo's sandbox/ package (it is not part of the installed library) from the CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from donor_sync.errors import ConfigError
from donor_sync.paths import local_state_dir, repo_root

if TYPE_CHECKING:
    from sandbox.common.runner import Sandbox


def _import_sandbox() -> None:
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)


def sandbox_dir() -> Path:
    """Return the sandbox's local state folder (``.local/sandbox``): TLS files, JWT key, sample data."""
    return local_state_dir() / "sandbox"


def tls_dir() -> Path:
    """Return the folder of the sandbox's local CA and server certificate."""
    return sandbox_dir() / "tls"


def jwt_key_path() -> Path:
    """Return the Salesforce JWT private key the shipped ``salesforce_npsp`` connection signs with.

    :func:`start_sandbox` makes it (RSA 2048, with its public half beside it) on first start and
    hands the public key to the Salesforce emulator.
    """
    return sandbox_dir() / "salesforce_jwt.key"


def trust_bundle() -> Path:
    """Return a CA bundle trusting the system's authorities plus the sandbox CA (made if missing).

    Local Airflow gets it as ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``, so the provider hooks
    (Slack, HTTP, Salesforce) verify the emulators' certificates like any other server's.
    """
    _import_sandbox()
    import certifi

    from sandbox.common.tls import ensure_tls

    ca = ensure_tls(tls_dir()).ca_cert
    bundle = tls_dir() / "trust-bundle.pem"
    system = Path(certifi.where()).read_text()
    wanted = system.rstrip("\n") + "\n" + ca.read_text()
    if not bundle.exists() or bundle.read_text() != wanted:
        bundle.write_text(wanted)
    return bundle


def start_sandbox(names: list[str] | None = None, *, fixed_ports: bool = True) -> Sandbox:
    """Start the named emulators (all when None) over HTTPS.

    The CA lives in .local/sandbox/tls; the Salesforce emulator trusts the public half of
    :func:`jwt_key_path`, which is made on first start.
    """
    _import_sandbox()
    from sandbox.registry import build_sandbox

    try:
        running = build_sandbox(names, tls_dir=tls_dir(), fixed_ports=fixed_ports, jwt_key=jwt_key_path())
        return running.start()
    except (KeyError, RuntimeError) as exc:
        raise ConfigError(str(exc.args[0]) if exc.args else str(exc)) from exc


#: The demo's sample data: small enough to generate in seconds, the same every time.
DEMO_DONORS = 1_000
DEMO_SEED = 42


def demo_data_dir(donors: int = DEMO_DONORS, seed: int = DEMO_SEED) -> Path:
    """Return the folder of generated sample data for ``donors`` and ``seed``, generating it once."""
    _import_sandbox()
    from sandbox.datagen import GenerationConfig, generate

    out = sandbox_dir() / "data" / f"donors{donors}-seed{seed}"
    if not (out / "truth" / "manifest.json").exists():
        generate(GenerationConfig(donors=donors, out=out, seed=seed, workers=1))
    return out


def load_demo_data(running: Sandbox, data_dir: Path) -> dict[str, int]:
    """Seed the running source emulators with the sample data; return counts per emulator.kind."""
    _import_sandbox()
    from sandbox.load import load_sources

    return load_sources(running, data_dir)
