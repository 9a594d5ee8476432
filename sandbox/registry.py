"""Every emulator by name, its port in the local sandbox, and how to build them all.

Ports match the connections in airflow_settings.yaml. Emulators are imported lazily so that a
test needing one does not import them all. Building a sandbox with the Salesforce emulator also
makes the sandbox's JWT key pair (once) and hands its public key to the emulator, so the
shipped ``salesforce_npsp`` connection, which signs with the private key, authenticates.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.common.emulator import Emulator
from sandbox.common.jwt_keys import KEY_FILE, ensure_jwt_key
from sandbox.common.runner import Sandbox

#: name -> (module:class, port). Emulators not yet built are absent.
EMULATORS: dict[str, tuple[str, int]] = {
    "salesforce": ("sandbox.emulators.salesforce:SalesforceEmulator", 8701),
    "hubspot": ("sandbox.emulators.hubspot:HubSpotEmulator", 8702),
    "mailchimp": ("sandbox.emulators.mailchimp:MailchimpEmulator", 8703),
    "braze": ("sandbox.emulators.braze:BrazeEmulator", 8704),
    "stripe": ("sandbox.emulators.stripe:StripeEmulator", 8705),
    "donorbox": ("sandbox.emulators.donorbox:DonorboxEmulator", 8706),
    "classy": ("sandbox.emulators.classy:ClassyEmulator", 8707),
    "slack": ("sandbox.emulators.slack:SlackEmulator", 8708),
    "receiver": ("sandbox.emulators.receiver:ReceiverEmulator", 8709),
}


def emulator_class(name: str) -> type[Emulator]:
    """Import and return the emulator class registered under ``name``."""
    if name not in EMULATORS:
        raise KeyError(f"no emulator named {name!r}; known: {', '.join(sorted(EMULATORS))}")
    module, _, cls = EMULATORS[name][0].partition(":")
    found: type[Emulator] = getattr(importlib.import_module(module), cls)
    return found


def build_sandbox(
    names: Iterable[str] | None = None,
    *,
    tls_dir: Path,
    fixed_ports: bool = True,
    settings: dict[str, dict[str, Any]] | None = None,
    jwt_key: Path | None = None,
) -> Sandbox:
    """Return a (not yet started) sandbox of the named emulators (all when None).

    :param fixed_ports: use the registry's ports (``sandbox up``); False picks free ports (tests).
    :param settings: emulator settings by emulator name; they win over what is set here.
    :param jwt_key: the Salesforce JWT private key file, made with its public half if missing
        (default ``<tls_dir>/salesforce_jwt.key``); the emulator trusts its public key unless
        ``settings`` give it a ``jwt_public_key``.
    """
    chosen = list(names) if names else list(EMULATORS)
    for name in chosen:
        emulator_class(name)  # unknown names fail before any key is made
    chosen_settings = {n: dict((settings or {}).get(n) or {}) for n in chosen}
    pair = None
    if "salesforce" in chosen:
        pair = ensure_jwt_key(jwt_key or tls_dir / KEY_FILE)
        chosen_settings["salesforce"] = {"jwt_public_key": pair.public_pem(), **chosen_settings["salesforce"]}
    emulators = [emulator_class(n)(chosen_settings[n] or None) for n in chosen]
    ports = {n: EMULATORS[n][1] for n in chosen} if fixed_ports else {}
    box = Sandbox(emulators, tls_dir=tls_dir, ports=ports)
    box.jwt_key = pair
    return box
