"""HubSpot CRM emulator (register as ``sandbox.emulators.hubspot:HubSpotEmulator``)."""

from __future__ import annotations

from sandbox.emulators.hubspot.emulator import HubSpotEmulator

__all__ = ["HubSpotEmulator"]
