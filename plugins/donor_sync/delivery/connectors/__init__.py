"""Destination connectors: one package per vendor, each implementing ``contracts.Connector``."""
