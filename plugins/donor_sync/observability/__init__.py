"""Run metrics, alerts and health."""
