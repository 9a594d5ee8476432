"""Salesforce (core REST, Bulk API 2.0, NPSP objects) emulator package."""

from __future__ import annotations

from sandbox.emulators.salesforce.emulator import SalesforceEmulator

__all__ = ["SalesforceEmulator"]
