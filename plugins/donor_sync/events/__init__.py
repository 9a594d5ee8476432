"""Standard outbound events: catalogue and schemas, subscribers, producers, and their delivery.

docs/events.md is the reference (catalogue, envelope, signatures, versioning policy). No Airflow
here: the hook :mod:`donor_sync.hooks.events` builds each subscriber's connector from its
Airflow connection, the operator :mod:`donor_sync.operators.event_tasks` pushes them.
"""

from donor_sync.events.catalogue import (
    CATALOGUE,
    EVENT_TYPES,
    Event,
    InvalidEventError,
    event_id,
    validate_envelope,
)
from donor_sync.events.producers import (
    produce_consent_events,
    produce_erasure_event,
    produce_gift_events,
    produce_merge_events,
)
from donor_sync.events.settings import EventSettings, SubscriberSpec, load_event_settings
from donor_sync.events.store import RecordedEvents, record_events

__all__ = [
    "CATALOGUE",
    "EVENT_TYPES",
    "Event",
    "EventSettings",
    "InvalidEventError",
    "RecordedEvents",
    "SubscriberSpec",
    "event_id",
    "load_event_settings",
    "produce_consent_events",
    "produce_erasure_event",
    "produce_gift_events",
    "produce_merge_events",
    "record_events",
    "validate_envelope",
]
