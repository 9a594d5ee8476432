"""The field mapping files, ``include/mappings/destinations/<destination>.yaml``, as pydantic models.

A file lists the destination **objects** a destination receives (a Salesforce Contact, a HubSpot
deal...). Each object is computed from one kind of core row (``source``: donor, household, gift,
recurring_plan; the fields each kind holds are :data:`donor_sync.delivery.contracts.SOURCE_FIELDS`),
keyed by one of its fields (``key``: the record key, sent as the destination's external id), and
lists its **fields**: where each value comes from (a source field, several, or a constant), the
safe transforms applied in order, the destination type it is converted to, and whether nulls are
sent and whether the destination keeps a value it already holds.

These models check the shape of a file. What needs the whole file (a ``from`` naming a field of
the object's source kind, references to other objects, lookup tables...) is checked by
:mod:`donor_sync.delivery.mapping.checks`; what needs the destination's metadata by
:mod:`donor_sync.delivery.mapping.describe`. ``docs/field-mappings.md`` is generated from these
models' descriptions and the shipped files (:mod:`donor_sync.delivery.mapping.docs`).
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from donor_sync.delivery.contracts import SyncMode

_NAME = r"^[a-z][a-z0-9_]*$"

#: A constant in a mapping file: text, a boolean or a number.
Scalar = str | bool | int | float

#: Destination types a value is converted to before it goes into the payload.
FieldType = Literal["string", "picklist", "boolean", "number", "integer", "date", "datetime"]

#: Kinds of core rows a destination object can be computed from.
SourceKind = Literal["donor", "household", "gift", "recurring_plan"]


def key_text(value: Any) -> str:
    """Return the text a lookup, picklist or condition compares (``true``/``false`` for booleans).

    YAML reads ``yes``, ``1`` or ``true`` as non-text keys; comparing text keeps a table written
    naturally working for values of any type.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key_text(k): v for k, v in value.items()}
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- transforms ---------------------------------------------------------------------------------


class _Step(_Strict):
    """A transform step: written as its bare name (``trim``) or as ``{name: arguments}``."""

    op: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {} if isinstance(value, str) else value


class Trim(_Step):
    """Strip leading and trailing whitespace (text that ends up empty counts as null)."""

    op: ClassVar[str] = "trim"
    trim: Literal[True] = True


class Upper(_Step):
    """Upper-case the text."""

    op: ClassVar[str] = "upper"
    upper: Literal[True] = True


class Lower(_Step):
    """Lower-case the text."""

    op: ClassVar[str] = "lower"
    lower: Literal[True] = True


class Title(_Step):
    """Title-case the text (``mary-jo smith`` -> ``Mary-Jo Smith``)."""

    op: ClassVar[str] = "title"
    title: Literal[True] = True


class ConcatArgs(_Strict):
    """Arguments of ``concat``."""

    separator: str = Field(default=" ", description="Put between the parts.")
    prefix: str = Field(default="", description="Put before the result when it is not empty.")
    suffix: str = Field(default="", description="Put after the result when it is not empty.")


class Concat(_Step):
    """Join the values of a several-field ``from`` as text, each trimmed, skipping empty parts (null
    when all are)."""

    op: ClassVar[str] = "concat"
    concat: ConcatArgs = Field(default_factory=ConcatArgs)


class Coalesce(_Step):
    """Take the first non-empty value of a several-field ``from``."""

    op: ClassVar[str] = "coalesce"
    coalesce: Literal[True] = True


class Default(_Step):
    """Use this constant when the value is null or empty text."""

    op: ClassVar[str] = "default"
    default: Scalar


class DateFormatArgs(_Strict):
    """Arguments of ``date_format``."""

    format: str = Field(min_length=1, description="strftime format, e.g. `%d/%m/%Y`.")
    timezone: str = Field(
        default="UTC", description="IANA time zone a datetime is shown in (dates are not shifted)."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class DateFormat(_Step):
    """Format a date or datetime as text (``{date_format: "%d/%m/%Y"}`` or with ``timezone``)."""

    op: ClassVar[str] = "date_format"
    date_format: DateFormatArgs

    @field_validator("date_format", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"format": value} if isinstance(value, str) else value


class Round(_Step):
    """Round a number to this many decimal places (half up, as money is rounded)."""

    op: ClassVar[str] = "round"
    round: int = Field(ge=0, le=10)


class Truncate(_Step):
    """Cut text to at most this many characters."""

    op: ClassVar[str] = "truncate"
    truncate: int = Field(ge=1)


OnMissing = Literal["keep", "null", "error"]


class _TableArgs(_Strict):
    """What ``lookup`` and ``picklist`` share: one table (inline ``values`` or a named ``table``) and
    what a value the table lacks becomes (``fallback`` or ``on_missing``)."""

    values: dict[str, Any] | None
    table: str | None = Field(default=None, description="Name of a table under the file's `tables`.")
    ignore_case: bool = Field(default=False, description="Compare values case-insensitively.")
    fallback: Any
    on_missing: str

    @field_validator("values", mode="before")
    @classmethod
    def _text_values(cls, value: Any) -> Any:
        return _text_keys(value)

    @field_validator("on_missing", mode="before")
    @classmethod
    def _yaml_null(cls, value: Any) -> Any:
        return "null" if value is None else value  # `on_missing: null` reads as None in YAML

    @model_validator(mode="after")
    def _one_table(self) -> _TableArgs:
        if (self.values is None) == (self.table is None):
            raise ValueError("give either `values` (an inline table) or `table` (a named one)")
        if self.fallback is not None and "on_missing" in self.model_fields_set:
            raise ValueError("give either `fallback` or `on_missing`, not both")
        return self


class LookupArgs(_TableArgs):
    """Arguments of ``lookup``: a table (inline ``values`` or a named ``table``) and what a miss does."""

    values: dict[str, Scalar | None] | None = Field(
        default=None, description="Inline table: value -> replacement."
    )
    fallback: Scalar | None = Field(default=None, description="Replacement for a value the table lacks.")
    on_missing: OnMissing = Field(
        default="keep",
        description="Without a fallback, what a value the table lacks becomes: kept as is, null, or an "
        "error for that record.",
    )


class Lookup(_Step):
    """Replace a value through a lookup table."""

    op: ClassVar[str] = "lookup"
    lookup: LookupArgs


class PicklistArgs(_TableArgs):
    """Arguments of ``picklist``: core value -> destination picklist value."""

    values: dict[str, str] | None = Field(default=None, description="Inline translation table.")
    fallback: str | None = Field(
        default=None, description="Destination value for a core value the table lacks."
    )
    on_missing: Literal["error", "null"] = Field(
        default="error",
        description="Without a fallback, a core value the table lacks is an error for that record "
        "(it is not pushed) or null.",
    )


class Picklist(_Step):
    """Translate a core value into one of the destination's picklist values (checked by describe)."""

    op: ClassVar[str] = "picklist"
    picklist: PicklistArgs


class BooleanArgs(_Strict):
    """Arguments of ``boolean``."""

    when_true: Scalar = Field(description="Value for true (also `yes`, `y`, `1`, `t` as text).")
    when_false: Scalar = Field(description="Value for false (also `no`, `n`, `0`, `f` as text).")


class Boolean(_Step):
    """Map a boolean (or boolean-like text) to two values (null stays null)."""

    op: ClassVar[str] = "boolean"
    boolean: BooleanArgs


STEP_TYPES: tuple[type[_Step], ...] = (
    Trim,
    Upper,
    Lower,
    Title,
    Concat,
    Coalesce,
    Default,
    DateFormat,
    Round,
    Truncate,
    Lookup,
    Picklist,
    Boolean,
)
TRANSFORM_NAMES: tuple[str, ...] = tuple(t.op for t in STEP_TYPES)


def _step_tag(value: Any) -> str | None:
    if isinstance(value, _Step):
        return value.op
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return None


TransformStep = Annotated[
    Annotated[Trim, Tag("trim")]
    | Annotated[Upper, Tag("upper")]
    | Annotated[Lower, Tag("lower")]
    | Annotated[Title, Tag("title")]
    | Annotated[Concat, Tag("concat")]
    | Annotated[Coalesce, Tag("coalesce")]
    | Annotated[Default, Tag("default")]
    | Annotated[DateFormat, Tag("date_format")]
    | Annotated[Round, Tag("round")]
    | Annotated[Truncate, Tag("truncate")]
    | Annotated[Lookup, Tag("lookup")]
    | Annotated[Picklist, Tag("picklist")]
    | Annotated[Boolean, Tag("boolean")],
    Discriminator(
        _step_tag,
        custom_error_type="unknown_transform",
        custom_error_message="unknown transform (a transform is a name, or one name with its "
        "arguments); known: " + ", ".join(TRANSFORM_NAMES),
    ),
]


# -- conditions, references, fields --------------------------------------------------------------


class Condition(_Strict):
    """A test on one source field; exactly one of ``equals``, ``one_of`` or ``present``."""

    field: str = Field(description="Source field tested.")
    equals: Scalar | None = Field(default=None, description="The field's value equals this.")
    one_of: list[Scalar] | None = Field(default=None, description="The field's value is one of these.")
    present: bool | None = Field(
        default=None, description="true: the field has a value (not null, not empty); false: it has none."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [t for t in ("equals", "one_of", "present") if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `equals`, `one_of` or `present`")
        return self


class Reference(_Strict):
    """The field points at another record by its external id (Salesforce's relationship form).

    The payload carries ``{<to>: {<external id field>: <value>}}``, e.g.
    ``"npsp__Primary_Contact__r": {"Donor_Sync_Id__c": "<donor id>"}``; when the target is an
    object of this mapping the record also depends on it (it is pushed once the target landed).
    """

    entity: str | None = Field(
        default=None, description="Object of this mapping pointed at (its record key is the value)."
    )
    object: str | None = Field(
        default=None,
        description="Destination object pointed at when it is not one of this mapping's (records "
        "kept in the destination, e.g. a Campaign): no dependency is recorded.",
    )
    external_id: str | None = Field(
        default=None,
        description="External id field of the target (default: the target object's `external_id`).",
    )


class FieldMapping(_Strict):
    """One destination field: where its value comes from, how it is transformed and converted."""

    to: str = Field(
        min_length=1,
        description="Destination field (property) name as the destination spells it; for a "
        "reference, the relationship name (`Account`, `npsp__Primary_Contact__r`).",
    )
    from_: str | list[str] | None = Field(
        default=None,
        alias="from",
        description="Source field, or a list of source fields combined by a first `concat` or "
        "`coalesce` step.",
    )
    value: Scalar | None = Field(default=None, description="A constant instead of `from`.")
    type: FieldType | None = Field(
        default=None,
        description="Destination type the value is converted to (required except for references).",
    )
    transforms: list[TransformStep] = Field(default_factory=list, description="Steps applied in order.")
    reference: Reference | None = Field(default=None, description="The field points at another record.")
    when: Condition | None = Field(default=None, description="Map the field only for rows passing this test.")
    sync_nulls: bool = Field(
        default=False,
        description="Send null when the value is null (blanking the destination field). Off: a null "
        "value is left out of the payload, so it never erases what the destination holds.",
    )
    set_if_empty: bool = Field(
        default=False,
        description="Write the value only where the destination holds none yet (staff edits win).",
    )
    enabled: bool = Field(
        default=True,
        description="false: validated and documented but not sent (e.g. waiting for a field the "
        "destination does not have yet).",
    )
    description: str = Field(default="", description="Why the field is mapped this way.")

    @property
    def sources(self) -> tuple[str, ...]:
        """Return the source fields read (none for a constant)."""
        if self.from_ is None:
            return ()
        return (self.from_,) if isinstance(self.from_, str) else tuple(self.from_)


class AssociationEnd(_Strict):
    """One end of an association: an object of this mapping and the source field holding its key."""

    entity: str = Field(description="Object of this mapping at this end.")
    key: str = Field(description="Source field whose value is that record's key.")


class Association(_Strict):
    """A link between two records that needs both remote ids (HubSpot associations).

    The payload names the association type in HubSpot's form (``types``:
    ``[{"associationCategory", "associationTypeId"}]``) and both ends' entities and objects; the
    push engine resolves both ends' remote ids from ``depends_on`` (from, then to).
    """

    from_: AssociationEnd = Field(alias="from", description="The record the link starts at.")
    to: AssociationEnd = Field(description="The record the link points at.")
    category: Literal["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"] = Field(
        default="HUBSPOT_DEFINED", description="Association category."
    )
    type_id: int = Field(ge=1, description="Association type id (deal to contact: 3).")


class ObjectMapping(_Strict):
    """One destination object: which core rows it comes from, its key, mode and fields."""

    name: str = Field(
        pattern=_NAME,
        description="Entity name in donor-sync (outbox, push order, dependencies), lower snake case.",
    )
    object: str | None = Field(
        default=None,
        description="Destination object (Salesforce sObject, HubSpot object type); required unless "
        "`association` is given.",
    )
    source: SourceKind = Field(description="Kind of core row each record is computed from.")
    key: str = Field(description="Source field whose value is the record key (sent as the external id).")
    external_id: str | None = Field(
        default=None,
        description="Destination field holding the record key (Salesforce external id field, "
        "HubSpot unique property); never listed in `fields`.",
    )
    mode: SyncMode = Field(
        default=SyncMode.UPSERT,
        description="upsert (create or update), update_only (only records the destination has), "
        "create_only (create once, never overwrite) or mirror (upsert, and remove what left core).",
    )
    mirror_action: Literal["delete", "archive"] | None = Field(
        default=None, description="What mirror does to a record that left core (required for mirror)."
    )
    priority: int = Field(
        default=100,
        ge=0,
        description="Lower goes first; when the destination's quota runs low only work at or below "
        "the reserve's priority cut is pushed.",
    )
    when: Condition | None = Field(default=None, description="Render only rows passing this test.")
    description: str = Field(default="", description="What the object is for.")
    fields: list[FieldMapping] = Field(default_factory=list, description="The destination fields.")
    association: Association | None = Field(
        default=None, description="This object is a link between two records instead of a record."
    )


class DestinationMapping(_Strict):
    """One destination's field mapping file."""

    version: Literal[1] = Field(default=1, description="File format version.")
    destination: str = Field(pattern=_NAME, description="Destination name (salesforce, hubspot).")
    description: str = Field(default="", description="What the destination is used for.")
    tables: dict[str, dict[str, Scalar | None]] = Field(
        default_factory=dict,
        description="Named lookup tables (value -> replacement) used by `lookup` and `picklist`.",
    )
    objects: list[ObjectMapping] = Field(min_length=1, description="The destination objects.")

    _path: Path | None = PrivateAttr(default=None)
    _node: yaml.Node | None = PrivateAttr(default=None)
    _compiled: Any = PrivateAttr(default=None)

    @field_validator("tables", mode="before")
    @classmethod
    def _text_table_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: _text_keys(table) for name, table in value.items()}
        return value

    @property
    def path(self) -> Path | None:
        """Return the file the mapping was loaded from (None when built in code)."""
        return self._path

    def object(self, name: str) -> ObjectMapping:
        """Return the object called ``name``; raise KeyError naming the known ones."""
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(f"{self.destination} has no object {name!r}; known: {[o.name for o in self.objects]}")
