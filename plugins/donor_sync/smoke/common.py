"""What every vendor's checks share: a client built once, refusals turned into reasons, the describe verdict.

Vendor clients raise the project's own errors (:class:`DeliveryError` with a failure class,
:class:`ConfigError`, a source's :class:`PermanentError`...). :func:`refusal` turns any of them
into a failed check whose reason says what to fix: the credentials of the named Airflow
connection, its host, the vendor's allowance, a permission. :func:`describe_outcome` runs the
mapping check that ``donor-sync mapping validate --describe`` runs
(:func:`~donor_sync.delivery.mapping.check_against_describe`) over a live lookup and reports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar
from urllib.parse import urlsplit

import requests

from donor_sync.delivery.contracts import DeliveryError, FailureClass
from donor_sync.errors import ConfigError, PermanentError
from donor_sync.smoke.checks import CheckFailed, Outcome, failed, passed
from donor_sync.smoke.runner import unexpected_reason

if TYPE_CHECKING:
    from donor_sync.delivery.mapping import DescribeLookup, DestinationMapping

__all__ = ["Lazy", "describe_outcome", "host_of", "no_object_on_404", "refusal"]

T = TypeVar("T")

#: Problems listed in a failed describe check's figures (the reason names the first).
MAX_LISTED_PROBLEMS = 50


class Lazy(Generic[T]):
    """A value built once on first use, shared by the checks of one target (thread-safe).

    A factory that raises is called again next time: a failed build is not remembered.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._built = False
        self._lock = threading.Lock()

    def get(self) -> T:
        """Return the value, building it on first use."""
        with self._lock:
            if not self._built:
                self._value = self._factory()
                self._built = True
            return self._value  # type: ignore[return-value]


def host_of(url: str) -> str:
    """Return ``host[:port]`` of ``url`` (never its credentials, path or query)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _delivery_refusal(exc: DeliveryError, vendor: str, where: str) -> CheckFailed:
    message = str(exc)
    code = exc.error_code
    if code and code not in message:
        message = f"{message} [{code}]"
    hints = {
        FailureClass.AUTH: f"check the credentials in {where}",
        FailureClass.RATE_LIMITED: f"{vendor}'s allowance for this key is spent; wait for it to reset",
        FailureClass.TRANSIENT: f"check the host in {where}, the network, and {vendor}'s status page",
    }
    hint = hints.get(exc.error_class, f"check {where} and the permissions of its user or key")
    return CheckFailed(f"{message}; {hint}", error_class=exc.error_class.value, error_code=code)


def refusal(exc: BaseException, *, vendor: str, conn_id: str) -> CheckFailed:
    """Return the failed check an exception of ``vendor``'s client stands for, naming what to fix."""
    where = f"Airflow connection {conn_id!r}"
    if isinstance(exc, CheckFailed):
        failure = exc
    elif isinstance(exc, DeliveryError):
        failure = _delivery_refusal(exc, vendor, where)
    elif isinstance(exc, ConfigError):
        failure = CheckFailed(f"{exc} (fix {where})")
    elif isinstance(exc, PermanentError):
        failure = CheckFailed(f"{exc}; check the credentials and host in {where}")
    elif isinstance(exc, requests.exceptions.SSLError):
        failure = CheckFailed(
            f"{vendor}'s TLS certificate is not trusted ({type(exc).__name__}); "
            f"check the ca_bundle extra of {where}"
        )
    elif isinstance(exc, requests.RequestException):
        failure = CheckFailed(f"cannot reach {vendor} ({type(exc).__name__}); check the host in {where}")
    else:
        failure = CheckFailed(f"{unexpected_reason(exc)} ({where})")
    return failure


def _described_fields(mapping: DestinationMapping) -> tuple[int, int]:
    """Return (objects, enabled fields) of ``mapping`` that have metadata at the destination."""
    from donor_sync.delivery.mapping.describe import UNDESCRIBED_OBJECTS

    undescribed = UNDESCRIBED_OBJECTS.get(mapping.destination, frozenset())
    objects = [
        o
        for o in mapping.objects
        if o.association is None and o.object is not None and o.object not in undescribed
    ]
    return len(objects), sum(1 for o in objects for f in o.fields if f.enabled)


def describe_outcome(
    mapping: DestinationMapping, lookup: DescribeLookup, *, notes: Sequence[str] = ()
) -> Outcome:
    """Check ``mapping`` against the destination's live metadata, as ``mapping validate --describe`` does.

    Fails naming the first problem (file, line, field and what is wrong); every problem is in the
    figures (``problems``). Reads only: nothing is written, not even the describe cache.
    """
    from donor_sync.delivery.mapping import check_against_describe

    problems = check_against_describe(mapping, lookup)
    objects, fields = _described_fields(mapping)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{Path(first.file).name}:{first.line if first.line is not None else '?'}"
        return failed(
            f"{first.field}: {first.message} ({where}){more}; change the mapping or the destination",
            problems=[str(p) for p in problems[:MAX_LISTED_PROBLEMS]],
            problem_count=len(problems),
        )
    note = "; " + "; ".join(notes) if notes else ""
    return passed(
        f"{fields} mapped fields on {objects} objects exist, writable, with their picklist values{note}",
        objects=objects,
        fields=fields,
    )


def no_object_on_404(fetch: Callable[[str], T]) -> Callable[[str], T | None]:
    """Wrap a describe fetch so that a 404 (no such object) reads as None, as the check expects."""

    def fetched(name: str) -> T | None:
        try:
            return fetch(name)
        except DeliveryError as exc:
            if exc.http_status == 404:
                return None
            raise

    return fetched
