"""Which files of the drop folder may be read now: never a file that is still being written.

A file is read only when its size and modification time have not changed for a quiet period, its
name is not a temporary one (``.part``, ``.tmp``, ``~$``...), and, for formats that ask for it, a
ready marker sits beside it. The loader also re-checks size and time after reading, so a writer
that resumes during the read makes that run leave the file alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

#: Suffixes of files that downloads, uploads and editors write before the final rename.
TEMP_SUFFIXES: Final = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart")
#: Prefixes of editor lock files and of names tools write first and rename when done.
TEMP_PREFIXES: Final = ("~$", ".~")
#: Ready markers: ``<name>.done`` / ``<name>.ok`` (or with the extension replaced).
MARKER_SUFFIXES: Final = (".done", ".ok")


@dataclass(frozen=True)
class DropFile:
    """A regular file found at the top of the drop folder, as stat saw it."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def modified_at(self) -> datetime:
        """Return the modification time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.mtime_ns / 1e9, UTC)

    @classmethod
    def stat(cls, path: Path) -> DropFile:
        """Return the file as it is now."""
        st = path.stat()
        return cls(path, st.st_size, st.st_mtime_ns)

    def unchanged(self) -> bool:
        """Return whether the file still has this size and modification time (and still exists)."""
        try:
            return DropFile.stat(self.path) == self
        except FileNotFoundError:
            return False


def is_hidden(name: str) -> bool:
    """Return whether ``name`` is a dotfile (``.DS_Store``, editor swap files): never read, never listed."""
    return name.startswith(".") and not name.startswith(".~")


def is_marker(name: str) -> bool:
    """Return whether ``name`` is a ready marker rather than data."""
    return name.lower().endswith(MARKER_SUFFIXES)


def is_temporary(name: str) -> bool:
    """Return whether ``name`` is a temporary name a writer renames once the file is complete."""
    lower = name.lower()
    return lower.endswith(TEMP_SUFFIXES) or lower.startswith(TEMP_PREFIXES) or lower.endswith("~")


def scan(drop_dir: Path) -> list[DropFile]:
    """Return the data files at the top of ``drop_dir`` (not sub-folders, dotfiles or markers), oldest first.

    Temporary names are included, so they are reported as not ready rather than silently skipped.
    """
    found: list[DropFile] = []
    with os.scandir(drop_dir) as entries:
        for entry in entries:
            if is_hidden(entry.name) or is_marker(entry.name) or not entry.is_file():
                continue
            try:
                found.append(DropFile.stat(Path(entry.path)))
            except FileNotFoundError:  # removed between listing and stat
                continue
    return sorted(found, key=lambda f: (f.mtime_ns, f.path.name))


def not_ready_reason(file: DropFile, *, now: datetime, quiet_period: timedelta) -> str | None:
    """Return why ``file`` may not be read yet, or None when it may.

    :param now: the current time (aware); a modification time in the future is not quiet either.
    """
    if is_temporary(file.path.name):
        return "temporary name: the writer has not renamed it yet"
    age = now - file.modified_at
    if age < quiet_period:
        return (
            f"modified {max(age.total_seconds(), 0.0):.0f} s ago; waiting for "
            f"{quiet_period.total_seconds():.0f} s without change"
        )
    return None


def marker_for(path: Path) -> Path | None:
    """Return the ready marker beside ``path`` (``x.csv.done``, ``x.csv.ok``, ``x.done``, ``x.ok``) if any."""
    for suffix in MARKER_SUFFIXES:
        for candidate in (path.with_name(path.name + suffix), path.with_suffix(suffix)):
            if candidate.is_file():
                return candidate
    return None
