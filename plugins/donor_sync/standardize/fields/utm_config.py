"""The UTM normalization settings (``include/mappings/utm.yaml``): a pydantic model and its loader.

The file says which character replaces spaces, which custom URL parameters are kept (click ids,
form ids), and the alias table that unifies the spellings of each ``utm_*`` value
(``fb``, ``facebook.com`` -> ``facebook``). Aliases are written naturally in the file and compared
after the same normalization the values get (case, spaces, percent-decoding), so ``Paid Search``
in the file matches ``paid+search`` in a URL.

Errors name the file, the line and the field (``utm.yaml: line 12: aliases.utm_medium.cpc: ...``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote_plus

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from donor_sync.errors import ConfigError
from donor_sync.paths import include_dir
from donor_sync.yaml_source import duplicate_keys, line_of, read_config_text

UtmParam = Literal["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"]
UTM_PARAMS: Final[tuple[str, ...]] = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_PARAM_NAME: Final = r"^[A-Za-z0-9_.\-\[\]]{1,64}$"
_MODEL_ERROR: Final = re.compile(r"^(?:Value error, )?(?P<field>[a-z_]+(?:\.[a-z_]+)?): (?P<rest>.*)$", re.S)


def normalize_utm_value(value: str, space_replacement: str = "-") -> str:
    """Normalize one UTM value: percent-decoded, trimmed, lower case, spaces and ``+`` as one mark.

    ``"Spring%20Appeal"``, ``"spring+appeal"`` and ``" Spring  Appeal "`` all become
    ``"spring-appeal"``; spaces around an existing ``-`` or ``_`` are dropped (``"paid - search"``
    -> ``"paid-search"``).
    """
    text = unquote_plus(value) if "%" in value or "+" in value else value
    text = " ".join(text.split()).lower()
    text = re.sub(r" ?([-_]) ?", r"\1", text)
    return text.replace(" ", space_replacement)


class UtmConfig(BaseModel):
    """How UTM values are normalized and which extra URL parameters are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    #: what replaces whitespace and "+" inside a value
    space_replacement: Literal["-", "_"] = "-"
    #: URL parameters kept in utm_extra besides the five utm_* (click ids, form ids), as named here
    custom_params: tuple[Annotated[str, Field(pattern=_PARAM_NAME)], ...] = ()
    #: per utm parameter: canonical value -> the spellings that mean it
    aliases: dict[UtmParam, dict[str, tuple[str, ...]]] = Field(default_factory=dict)

    _tables: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _build_tables(self) -> UtmConfig:
        for param, groups in self.aliases.items():
            table: dict[str, str] = {}
            for canonical, spellings in groups.items():
                target = normalize_utm_value(canonical, self.space_replacement)
                if target != canonical:
                    raise ValueError(
                        f"aliases.{param}: canonical value {canonical!r} is not normalized "
                        f"(write it as {target!r})"
                    )
                for spelling in (canonical, *spellings):
                    key = normalize_utm_value(str(spelling), self.space_replacement)
                    if table.get(key, target) != target:
                        raise ValueError(
                            f"aliases.{param}: {spelling!r} is listed under both {table[key]!r} "
                            f"and {canonical!r}"
                        )
                    table[key] = target
            self._tables[param] = table
        lowered = [name.lower() for name in self.custom_params]
        clash = sorted({name for name in lowered if lowered.count(name) > 1 or name in UTM_PARAMS})
        if clash:
            raise ValueError(f"custom_params: repeated or utm_* names: {clash}")
        return self

    def alias_table(self, param: str) -> dict[str, str]:
        """Return normalized spelling -> canonical value for ``param`` (empty when none)."""
        return self._tables.get(param, {})


def default_utm_config_path() -> Path:
    """Return ``include/mappings/utm.yaml``."""
    return include_dir() / "mappings" / "utm.yaml"


def load_utm_config(path: str | Path | None = None) -> UtmConfig:
    """Load and validate the UTM settings file.

    :param path: the YAML file; default ``include/mappings/utm.yaml``.
    :raises ConfigError: the file is missing, is not YAML, or breaks the schema (the message names
        the file, the line and the field).
    """
    file = Path(path) if path is not None else default_utm_config_path()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{file}: cannot read the UTM settings ({error.strerror})") from error
    except UnicodeDecodeError:
        text = read_config_text(file)  # raises, naming the line of the first byte that is not UTF-8
    try:
        data: Any = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{file}: {where}not valid YAML ({getattr(error, 'problem', error)})") from error
    twice = duplicate_keys(root)
    if twice:
        raise ConfigError(f"{file}: line {twice[0][0]}: {twice[0][1]}: written twice")
    try:
        return UtmConfig.model_validate(data if data is not None else {})
    except ValidationError as error:
        first = error.errors()[0]
        loc: tuple[int | str, ...] = tuple(first["loc"])
        message = str(first["msg"])
        named = _MODEL_ERROR.match(message)
        if not loc and named:  # a whole-model check names its field in the message
            loc, message = tuple(named["field"].split(".")), named["rest"]
        field = ".".join(str(part) for part in loc) or "(top level)"
        line = line_of(root, loc)
        where = f"line {line}: " if line else ""
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ConfigError(f"{file}: {where}{field}: {message}{more}") from error
