"""``include/mappings/privacy/encryption.yaml``: which columns are encrypted at rest, and how."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from donor_sync.paths import include_dir
from donor_sync.privacy.crypto.cipher import Kind
from donor_sync.yaml_source import load_yaml_model

__all__ = ["EncryptedColumn", "EncryptionSettings", "default_encryption_path", "load_encryption_settings"]

_IDENT = r"^[a-z_][a-z0-9_]*$"
_TABLE = r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"


class EncryptedColumn(BaseModel):
    """One encrypted column: ``table`` (schema.table), ``column``, its ``kind`` and row key column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(pattern=_TABLE)
    column: str = Field(pattern=_IDENT)
    kind: Kind
    #: the column whose value binds each ciphertext to its row (the primary key)
    row_key: str = Field(pattern=_IDENT)

    @property
    def name(self) -> str:
        """Return ``schema.table.column`` (the associated data's column part)."""
        return f"{self.table}.{self.column}"


class LeftPlain(BaseModel):
    """A candidate column deliberately not encrypted, and why (documentation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    reason: str


class EncryptionSettings(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: false: writers store plaintext (readers still open envelopes already written)
    enabled: bool = True
    columns: tuple[EncryptedColumn, ...] = ()
    left_plain: tuple[LeftPlain, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> EncryptionSettings:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise ValueError(f"{column.name} is listed twice")
            if column.row_key == column.column:
                raise ValueError(f"{column.name}: row_key must be another column than the encrypted one")
            seen.add(column.name)
        return self

    def column(self, name: str) -> EncryptedColumn | None:
        """Return the configuration of ``schema.table.column``, or ``None`` when not encrypted."""
        for column in self.columns:
            if column.name == name:
                return column
        return None

    def of_table(self, table: str) -> tuple[EncryptedColumn, ...]:
        """Return the encrypted columns of ``schema.table``."""
        return tuple(c for c in self.columns if c.table == table)


def default_encryption_path() -> Path:
    """Return ``include/mappings/privacy/encryption.yaml``."""
    return include_dir() / "mappings" / "privacy" / "encryption.yaml"


def load_encryption_settings(path: Path | None = None) -> EncryptionSettings:
    """Load and validate the encryption configuration.

    :raises ConfigError: naming the file, line and field of every problem.
    """
    return load_yaml_model(path or default_encryption_path(), EncryptionSettings)
