"""What the outbox needs from a destination's mapping: its objects, and a way to render rows.

The mapping engine (:mod:`donor_sync.delivery.mapping`) renders core rows into
:class:`~donor_sync.delivery.contracts.RenderedRecord` values. The outbox depends only on the
small :class:`Renderer` protocol below, so :func:`default_renderer` is the one place that adapts
the engine to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from donor_sync.delivery.contracts import SOURCE_FIELDS, Operation, RenderedRecord, SyncMode
from donor_sync.errors import ConfigError

log = logging.getLogger(__name__)

#: What a mirror mapping may do to a record that left core.
MIRROR_ACTIONS = frozenset({Operation.DELETE, Operation.ARCHIVE})


@dataclass(frozen=True)
class MappedObject:
    """One destination object of a mapping.

    :param entity: destination object (``contact``, ``opportunity``...), as in RenderedRecord.
    :param kind: the kind of core row it is rendered from (a key of ``SOURCE_FIELDS``).
    :param mode: how the object is kept in step with core.
    :param mirror_action: for ``mirror``: ``delete`` or ``archive`` a record that left core.

    Mirror and withdrawal match a record to its core row by key: the object's ``record_key`` must
    be the row's key (donor id, gift key, plan key, household id) for an incremental run to notice
    the row leaving. Objects keyed otherwise (associations) are mirrored by the nightly full run.
    """

    entity: str
    kind: str
    mode: SyncMode = SyncMode.UPSERT
    mirror_action: Operation | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_FIELDS:
            raise ConfigError(
                f"mapping object {self.entity}: unknown source kind {self.kind!r}; "
                f"kinds are {', '.join(SOURCE_FIELDS)}"
            )
        if self.mode is SyncMode.MIRROR and self.mirror_action not in MIRROR_ACTIONS:
            raise ConfigError(
                f"mapping object {self.entity}: mirror mode needs a mirror action (delete, archive)"
            )
        if self.mode is not SyncMode.MIRROR and self.mirror_action is not None:
            raise ConfigError(f"mapping object {self.entity}: a mirror action needs mirror mode")


@runtime_checkable
class Renderer(Protocol):
    """A destination's mapping as the outbox uses it."""

    def objects(self) -> Sequence[MappedObject]:
        """The mapping's destination objects."""
        ...

    def render(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[RenderedRecord]:
        """Render core rows of ``kind`` (keys: ``SOURCE_FIELDS[kind]``) into destination records.

        A row the mapping filters out (no consent, outside the mapping's filter) yields nothing.
        """
        ...


class MappingUnavailableError(ConfigError):
    """The destination has no mapping the outbox can render with."""


class MappingRenderer:
    """The mapping engine's :class:`Renderer` for one destination's mapping.

    A row the engine cannot render (a bad value) is left out and kept in :attr:`errors` (ids and
    field names only), so one bad record never stops the others.
    """

    def __init__(self, mapping: Any) -> None:
        from donor_sync.delivery import mapping as engine

        self._engine = engine
        self._mapping = mapping
        self.errors: list[Exception] = []

    def objects(self) -> Sequence[MappedObject]:
        return [
            MappedObject(
                info.entity,
                info.source_kind,
                SyncMode(info.mode),
                Operation(info.mirror_action) if info.mirror_action else None,
            )
            for info in self._engine.push_order(self._mapping)
        ]

    def render(self, kind: str, rows: Iterable[Mapping[str, Any]]) -> Iterator[RenderedRecord]:
        return self._engine.render(self._mapping, kind, rows, on_error=self._failed)

    def _failed(self, error: Exception) -> None:
        log.warning("record not rendered: %s", error)
        self.errors.append(error)


def default_renderer(destination: str) -> Renderer:
    """Return the renderer of ``destination``'s mapping (``include/mappings/destinations``).

    This is the one seam between the outbox and the mapping engine
    (:mod:`donor_sync.delivery.mapping`: ``load_destination``, ``push_order``, ``render``),
    imported lazily.

    :raises MappingUnavailableError: when the engine or its API is missing.
    :raises ConfigError: when the destination's mapping file is missing or invalid.
    """
    try:
        from donor_sync.delivery import mapping as engine
    except ImportError as exc:
        raise MappingUnavailableError(
            f"no mapping engine to render {destination} records with (donor_sync.delivery.mapping: {exc})"
        ) from exc
    missing = [name for name in ("load_destination", "push_order", "render") if not hasattr(engine, name)]
    if missing:
        raise MappingUnavailableError(
            f"donor_sync.delivery.mapping lacks {', '.join(missing)}: the outbox cannot render {destination}"
        )
    return MappingRenderer(engine.load_destination(destination))
