"""Why a dropped file could not be loaded: one error type that names the file, line and field."""

from __future__ import annotations

from donor_sync.errors import DonorSyncError


class CsvFileError(DonorSyncError):
    """A dropped file cannot be loaded as it is (unknown format, missing header, malformed row...).

    The file is moved to ``rejected/`` with this error in a sidecar; the other files of the drop go
    on. The message names the file, the line and the field, never a cell's content (it may be PII).

    :param file: the file's name in the drop folder.
    :param reason: what is wrong, in a few words a person can act on.
    :param line: the physical line (1 = the header line), when the problem is on one line.
    :param field: the header or format field concerned, when there is one.
    :param format_name: the export format the file was recognized as, when it was.
    :param code: a short stable class for raw.batches.error and metrics (``missing_header``).
    """

    def __init__(
        self,
        file: str,
        reason: str,
        *,
        code: str,
        line: int | None = None,
        field: str | None = None,
        format_name: str | None = None,
    ) -> None:
        self.file = file
        self.reason = reason
        self.code = code
        self.line = line
        self.field = field
        self.format_name = format_name
        super().__init__(self.describe())

    def describe(self) -> str:
        """Return one line: file, format, line and field, then the reason."""
        where = [f"file {self.file}"]
        if self.format_name:
            where.append(f"format {self.format_name}")
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return ", ".join(where) + f": {self.reason}"


class FileChanged(DonorSyncError):  # noqa: N818 - a condition, not a failure: the file is retried
    """The file changed while it was read: it is still being written, so it is left for a later run."""


class DropFolderBusy(DonorSyncError):  # noqa: N818 - reads as the condition it reports
    """Another loader held the drop folder's lock for longer than this one would wait."""
