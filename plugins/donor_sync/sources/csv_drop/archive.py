"""Move files out of the drop folder once dealt with: loaded files to the archive, failed ones to rejected/.

Archive paths are ``<archive>/YYYY/MM/DD/<sha256 prefix>_<name>`` (duplicates under
``<archive>/duplicates/...``), so a name reused by a later export never overwrites an earlier one.
A rejected file gets a sidecar ``<name>.error.txt`` that names the file, format, line and field,
never a cell's content.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Final

from donor_sync.sources.csv_drop.errors import CsvFileError

#: Hex digits of the file's SHA-256 prefixed to its archived name.
SHA_PREFIX: Final = 12
ERROR_SUFFIX: Final = ".error.txt"


def archive_path(
    archive_dir: Path, name: str, sha256: bytes, when: datetime, *, duplicate: bool = False
) -> Path:
    """Return where a file goes in the archive: ``[duplicates/]YYYY/MM/DD/<sha prefix>_<name>``."""
    base = archive_dir / "duplicates" if duplicate else archive_dir
    return base / f"{when:%Y}" / f"{when:%m}" / f"{when:%d}" / f"{sha256.hex()[:SHA_PREFIX]}_{name}"


def _free(target: Path) -> Path:
    """Return ``target``, or ``target`` with ``.1``, ``.2``... before its suffix when it exists."""
    candidate, n = target, 0
    while candidate.exists() or candidate.with_name(candidate.name + ERROR_SUFFIX).exists():
        n += 1
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
    return candidate


def move(source: Path, target: Path) -> Path:
    """Move ``source`` to ``target`` (or a free name beside it), creating folders; return where it went.

    ``shutil.move`` renames within a file system and copies then deletes across file systems.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    destination = _free(target)
    shutil.move(source, destination)
    return destination


def archive(
    path: Path,
    archive_dir: Path,
    sha256: bytes,
    when: datetime,
    *,
    marker: Path | None,
    duplicate: bool = False,
) -> Path:
    """Move a loaded (or duplicate) file and its ready marker, if any, to the archive; return where."""
    destination = move(path, archive_path(archive_dir, path.name, sha256, when, duplicate=duplicate))
    if marker is not None and marker.exists():
        move(marker, destination.with_name(destination.name + marker.suffix))
    return destination


def reject(
    path: Path,
    rejected_dir: Path,
    error: CsvFileError,
    when: datetime,
    *,
    sha256: bytes | None,
    marker: Path | None = None,
) -> Path:
    """Move a file that cannot be loaded (and its marker) to ``rejected_dir`` beside a ``.error.txt`` sidecar.

    :return: where the file went.
    """
    destination = move(path, rejected_dir / path.name)
    if marker is not None and marker.exists():
        move(marker, destination.with_name(destination.name + marker.suffix))
    sidecar = destination.with_name(destination.name + ERROR_SUFFIX)
    lines = [
        f"file: {error.file}",
        f"format: {error.format_name or '(not recognized)'}",
        f"line: {error.line if error.line is not None else '-'}",
        f"field: {error.field if error.field is not None else '-'}",
        f"error: {error.code}",
        f"reason: {error.reason}",
        f"sha256: {sha256.hex() if sha256 else '-'}",
        f"rejected_at: {when.isoformat(timespec='seconds')}",
        "",
        "Fix the file (or the format in include/mappings/csv_formats/) and drop it again.",
    ]
    sidecar.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return destination
