"""Field-level survivorship: golden donor records recomputed from their source records' attributes.

The rules are ``include/mappings/survivorship.yaml`` (validated by :class:`SurvivorshipRules`;
errors name the file, the line and the field). A golden record is a pure function of the
attributes of the records currently mapped to the donor (``core.donor_sources.attributes``), so a
merge, an unmerge or a new version of a record is handled the same way: recompute the donors it
touched, set-based, in one ``UPDATE`` built from the rules (:func:`recompute_golden`).

- field groups: the columns of a group come from one record, the group's winner, chosen by the
  group's ``order`` (source priority, verified email, validated address, completeness, recency);
- flags (deceased, do not contact): most restrictive wins (any record);
- aliases: nicknames and other first names, sorted, the surviving first name left out.

``docs/survivorship.md`` is generated from these models and the shipped file
(``python -m donor_sync.resolve.survivorship``); a test fails when it is stale.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import Final, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.model_doc import model_section, write_page
from donor_sync.paths import include_dir, repo_root
from donor_sync.yaml_source import load_yaml_model

#: golden columns a group may set -> SQL type of the attribute value
GOLDEN_COLUMNS: Final[dict[str, str]] = {
    "name_prefix": "text",
    "first_name": "text",
    "middle_name": "text",
    "last_name": "text",
    "name_suffix": "text",
    "is_organization": "boolean",
    "organization_name": "text",
    "last_name_key": "text",
    "email": "text",
    "phone": "core.phone_e164",
    "address_line1": "text",
    "address_line2": "text",
    "city": "text",
    "region": "text",
    "postal_code": "text",
    "country_code": "core.country_code",
    "address_validated": "boolean",
    "birth_date": "date",
}
#: boolean golden columns that are false (not NULL) when no record has them
_NOT_NULL_BOOLEANS: Final = frozenset({"is_organization", "address_validated"})
#: flags the rules may set (columns of core.donors)
FLAG_COLUMNS: Final = ("is_deceased", "do_not_contact")
#: the temp table listing the donors to recompute
TOUCHED_TMP: Final = "__donor_sync__touched_donors"

Criterion = Literal["source_priority", "most_recent", "most_complete", "verified", "validated"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldGroup(_Strict):
    """Columns that survive together from one record, and how that record is chosen."""

    columns: list[str] = Field(min_length=1, description="Golden columns set from the winner's attributes.")
    present_any: list[str] = Field(
        default_factory=list,
        description="A record competes only when it has one of these attributes (default: the columns).",
    )
    order: list[Criterion] = Field(
        default_factory=lambda: list[Criterion](["most_recent"]),
        description="Criteria, first decisive: source_priority (rank in the list), most_recent "
        "(attributes_at), most_complete (most of the group's columns set), verified (verified email "
        "first), validated (address_validated first). Ties: the most recently created record.",
    )
    source_priority: list[str] | None = Field(
        default=None, description="This group's own system order (default: the top-level one)."
    )

    @field_validator("columns", "present_any")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for column in value:
            if column not in GOLDEN_COLUMNS:
                raise ValueError(f"unknown column {column!r}; known: {', '.join(GOLDEN_COLUMNS)}")
        return value


class EmailVerification(_Strict):
    """When an email address counts as verified (core.donors.email_verified)."""

    systems: list[str] = Field(
        default_factory=list,
        description="Systems that deliver mail to the address as part of a gift (receipts).",
    )
    unverified_if_flagged: list[str] = Field(
        default_factory=lambda: ["email"],
        description="A review flag on one of these fields makes the record's email unverified.",
    )


class Flag(_Strict):
    """A most-restrictive flag: true when any record of the donor says so."""

    review_flags: list[str] = Field(default_factory=list, description="Review flag codes that set it.")
    attributes: list[str] = Field(default_factory=list, description="Boolean attributes that set it.")


class SurvivorshipRules(_Strict):
    """The survivorship rules file."""

    source_priority: list[str] = Field(
        default_factory=list, description="Systems, most trusted first; unlisted systems come last."
    )
    groups: dict[str, FieldGroup] = Field(description="Field groups by name.")
    email_verification: EmailVerification = Field(
        default_factory=EmailVerification, description="When an email address counts as verified."
    )
    flags: dict[str, Flag] = Field(default_factory=dict, description="Flags by core.donors column.")
    aliases: list[str] = Field(
        default_factory=lambda: ["nickname", "first_name"],
        description="Attributes whose values are kept as aliases (the surviving first name excluded).",
    )

    @field_validator("flags")
    @classmethod
    def _flag_columns(cls, value: dict[str, Flag]) -> dict[str, Flag]:
        for name in value:
            if name not in FLAG_COLUMNS:
                raise ValueError(f"unknown flag {name!r}; known: {', '.join(FLAG_COLUMNS)}")
        return value

    @model_validator(mode="after")
    def _each_column_once(self) -> SurvivorshipRules:
        seen: dict[str, str] = {}
        for name, group in self.groups.items():
            for column in group.columns:
                if column in seen:
                    raise ValueError(f"column {column!r} is in groups {seen[column]!r} and {name!r}")
                seen[column] = name
        return self


def default_rules_path() -> Path:
    """Return the shipped rules file."""
    return include_dir() / "mappings" / "survivorship.yaml"


def load_survivorship(path: Path | None = None) -> SurvivorshipRules:
    """Load and validate the survivorship rules (the shipped file by default).

    :raises ConfigError: naming the file, the line and the field of every problem.
    """
    return load_yaml_model(path or default_rules_path(), SurvivorshipRules)


# -- SQL -----------------------------------------------------------------------------------------


def _attr(column: str) -> sql.Composable:
    """Return the attribute as its golden column's type."""
    kind = GOLDEN_COLUMNS.get(column, "text")
    value = sql.SQL("nullif(m.a ->> {}, '')").format(sql.Literal(column))
    if kind == "text":
        return value
    return sql.SQL("({})::{}").format(value, sql.SQL(kind))  # a fixed type name


def _flagged(codes: list[str], fields: list[str] | None = None) -> sql.Composable:
    """Return whether the record has a review flag with one of ``codes`` (or on one of ``fields``)."""
    if fields is not None:
        return sql.SQL(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(m.a -> 'review_flags', '[]')) f"
            " WHERE f ->> 'field' = ANY({}))"
        ).format(sql.Literal(fields))
    return sql.SQL(
        "EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(m.a -> 'review_flags', '[]')) f"
        " WHERE f ->> 'code' = ANY({}))"
    ).format(sql.Literal(codes))


def _verified(rules: SurvivorshipRules) -> sql.Composable:
    check = rules.email_verification
    return sql.SQL("coalesce((m.a ->> 'email_verified')::boolean, m.system = ANY({}) AND NOT {})").format(
        sql.Literal(check.systems), _flagged([], check.unverified_if_flagged)
    )


def _criterion(name: str, group: FieldGroup, rules: SurvivorshipRules) -> sql.Composable:
    if name == "source_priority":
        priority = group.source_priority if group.source_priority is not None else rules.source_priority
        return sql.SQL("coalesce(array_position({}::text[], m.system::text), 2147483647)").format(
            sql.Literal(priority)
        )
    if name == "most_recent":
        return sql.SQL("m.attributes_at DESC NULLS LAST")
    if name == "most_complete":
        filled = sql.SQL(" + ").join(
            sql.SQL("(nullif(m.a ->> {}, '') IS NOT NULL)::int").format(sql.Literal(c)) for c in group.columns
        )
        return sql.SQL("({}) DESC").format(filled)
    if name == "verified":
        return sql.SQL("({}) DESC").format(_verified(rules))
    return sql.SQL("coalesce((m.a ->> 'address_validated')::boolean, false) DESC")


def _winner_sql(name: str, group: FieldGroup, rules: SurvivorshipRules) -> sql.Composable:
    present = group.present_any or group.columns
    selected = [sql.SQL("{} AS {}").format(_attr(c), sql.Identifier(c)) for c in group.columns]
    if name == "email" or "email" in group.columns:
        selected.append(sql.SQL("{} AS email_verified").format(_verified(rules)))
    order = [_criterion(c, group, rules) for c in group.order]
    return sql.SQL(
        "SELECT DISTINCT ON (m.donor_id) m.donor_id, {selected} FROM __members m WHERE {present}"
        " ORDER BY m.donor_id, {order}m.donor_source_id DESC"
    ).format(
        selected=sql.SQL(", ").join(selected),
        present=sql.SQL(" OR ").join(
            sql.SQL("nullif(m.a ->> {}, '') IS NOT NULL").format(sql.Literal(c)) for c in present
        ),
        order=sql.SQL("").join(sql.SQL("{}, ").format(o) for o in order),
    )


def golden_sql(rules: SurvivorshipRules) -> sql.Composed:
    """Return the UPDATE that recomputes the golden records of the donors in :data:`TOUCHED_TMP`.

    Only donors with at least one current record with attributes are updated; a row is written
    only when a value changes.
    """
    ctes: list[sql.Composable] = [
        sql.SQL(
            "__members AS (SELECT ds.donor_id, ds.donor_source_id, ds.system, ds.attributes AS a,"
            " ds.attributes_at FROM core.donor_sources ds JOIN {touched} t ON t.donor_id = ds.donor_id"
            " WHERE ds.attributes IS NOT NULL AND ds.retired_at IS NULL)"
        ).format(touched=sql.Identifier(TOUCHED_TMP))
    ]
    joins: list[sql.Composable] = []
    values: dict[str, sql.Composable] = {}
    for index, (name, group) in enumerate(rules.groups.items()):
        alias = sql.Identifier(f"__g{index}")
        ctes.append(sql.SQL("{} AS ({})").format(alias, _winner_sql(name, group, rules)))
        joins.append(sql.SQL(" LEFT JOIN {a} ON {a}.donor_id = k.donor_id").format(a=alias))
        for column in group.columns:
            ref = sql.SQL("{}.{}").format(alias, sql.Identifier(column))
            values[column] = (
                sql.SQL("coalesce({}, false)").format(ref) if column in _NOT_NULL_BOOLEANS else ref
            )
        if "email" in group.columns:
            values["email_verified"] = sql.SQL("coalesce({}.email_verified, false)").format(alias)
    for column in GOLDEN_COLUMNS:
        values.setdefault(column, sql.SQL("false") if column in _NOT_NULL_BOOLEANS else sql.NULL)
    values.setdefault("email_verified", sql.SQL("false"))
    flag_parts: list[sql.Composable] = [sql.SQL("m.donor_id")]
    for flag, rule in rules.flags.items():
        tests: list[sql.Composable] = [sql.SQL("false")]
        if rule.review_flags:
            tests.append(_flagged(rule.review_flags))
        tests += [
            sql.SQL("coalesce((m.a ->> {})::boolean, false)").format(sql.Literal(a)) for a in rule.attributes
        ]
        flag_parts.append(
            sql.SQL("bool_or({}) AS {}").format(sql.SQL(" OR ").join(tests), sql.Identifier(flag))
        )
        values[flag] = sql.SQL("k.{}").format(sql.Identifier(flag))
    ctes.append(
        sql.SQL("__flags AS (SELECT {} FROM __members m GROUP BY m.donor_id)").format(
            sql.SQL(", ").join(flag_parts)
        )
    )
    name_alias = None
    for index, group in enumerate(rules.groups.values()):
        if "first_name" in group.columns:
            name_alias = sql.Identifier(f"__g{index}")
    first = sql.SQL("{}.first_name").format(name_alias) if name_alias is not None else sql.NULL
    alias_values = sql.SQL(", ").join(
        sql.SQL("(nullif(m.a ->> {}, ''))").format(sql.Literal(a)) for a in rules.aliases
    )
    ctes.append(
        sql.SQL(
            "__aliases AS (SELECT m.donor_id, array_agg(DISTINCT v.alias ORDER BY v.alias) AS aliases"
            " FROM __members m CROSS JOIN LATERAL (VALUES {}) v(alias) WHERE v.alias IS NOT NULL"
            " GROUP BY m.donor_id)"
        ).format(alias_values if rules.aliases else sql.SQL("(NULL::text)"))
    )
    values["aliases"] = sql.SQL(
        "coalesce(ARRAY(SELECT x FROM unnest(__aliases.aliases) x WHERE lower(x) IS DISTINCT FROM"
        " lower({first})"
        " ORDER BY x), '{{}}')"
    ).format(first=first)
    ctes.append(
        sql.SQL(
            "__new AS (SELECT k.donor_id, {cols} FROM __flags k{joins}"
            " LEFT JOIN __aliases ON __aliases.donor_id = k.donor_id)"
        ).format(
            cols=sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(v, sql.Identifier(c)) for c, v in values.items()
            ),
            joins=sql.SQL("").join(joins),
        )
    )
    columns = list(values)
    return sql.SQL(
        "WITH {ctes} UPDATE core.donors d SET {sets} FROM __new n WHERE d.donor_id = n.donor_id"
        " AND ({old}) IS DISTINCT FROM ({new})"
    ).format(
        ctes=sql.SQL(", ").join(ctes),
        sets=sql.SQL(", ").join(sql.SQL("{c} = n.{c}").format(c=sql.Identifier(c)) for c in columns),
        old=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in columns),
        new=sql.SQL(", ").join(sql.SQL("n.{}").format(sql.Identifier(c)) for c in columns),
    )


def recompute_golden(
    conn: psycopg.Connection, donor_ids: typing.Collection[object], rules: SurvivorshipRules
) -> int:
    """Recompute the golden records of ``donor_ids`` from their current records (set-based).

    Donors without a current record with attributes (merged away, destination-only) keep their
    fields. Not committed.

    :return: how many golden records changed.
    """
    if not donor_ids:
        return 0
    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (donor_id uuid PRIMARY KEY) ON COMMIT DROP").format(
            sql.Identifier(TOUCHED_TMP)
        )
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(TOUCHED_TMP)))
    conn.execute(
        sql.SQL("INSERT INTO {} SELECT DISTINCT unnest(%s::uuid[])").format(sql.Identifier(TOUCHED_TMP)),
        (list(donor_ids),),
    )
    cur = conn.execute(golden_sql(rules))
    return cur.rowcount


# -- the generated reference ----------------------------------------------------------------------

_HEADER = """# Survivorship rules

<!-- Generated by `python -m donor_sync.resolve.survivorship` from donor_sync.resolve.survivorship
     and include/mappings/survivorship.yaml. Do not edit by hand: a test fails when it is stale. -->

`include/mappings/survivorship.yaml` says which value of a donor's source records the golden
record (`core.donors`) keeps. Golden records are recomputed from the attributes of the records
currently mapped to the donor (`core.donor_sources.attributes`) whenever those change: a new
record or version, a review approval, an unmerge. Nothing is ever overwritten for good, so every
merge can be undone and the golden record comes back exactly.

Field groups keep columns together: every column of a group comes from the same record (an
address never mixes one record's street with another's postcode). Flags are most restrictive:
any record that says deceased or do-not-contact wins. Giving aggregates are sums over the
donor's gifts, not survivorship (see the aggregates step).
"""


def doc_path() -> Path:
    """Return where the generated page lives."""
    return repo_root() / "docs" / "survivorship.md"


def render(path: Path | None = None) -> str:
    """Return the page for the models and the rules file at ``path`` (the shipped one)."""
    rules = load_survivorship(path)
    lines = [_HEADER, "## Reference", ""]
    for title, model in (
        ("Top level", SurvivorshipRules),
        ("`groups.<name>`", FieldGroup),
        ("`email_verification`", EmailVerification),
        ("`flags.<column>`", Flag),
    ):
        lines += model_section(title, model, defaults=False)
    lines += ["## What the shipped file sets", ""]
    lines += [f"System priority: {', '.join(rules.source_priority) or '(none)'}; unlisted systems last.", ""]
    lines += ["| group | columns | a record competes when it has | winner |", "|---|---|---|---|"]
    for name, group in rules.groups.items():
        lines.append(
            f"| {name} | {', '.join(group.columns)} | {', '.join(group.present_any or group.columns)} |"
            f" {' then '.join(group.order)}, then the newest record |"
        )
    check = rules.email_verification
    lines += [
        "",
        f"Verified email: from {', '.join(check.systems) or 'no system'} (or a CRM's `email_verified`),"
        f" unless a review flag names {', '.join(check.unverified_if_flagged)}.",
        "",
        "| flag | review flag codes | attributes |",
        "|---|---|---|",
    ]
    for flag, rule in rules.flags.items():
        lines.append(
            f"| {flag} | {', '.join(rule.review_flags) or '-'} | {', '.join(rule.attributes) or '-'} |"
        )
    lines += [
        "",
        f"Aliases: the distinct values of {', '.join(rules.aliases)}, the surviving first name left out.",
        "",
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    """Write docs/survivorship.md."""
    write_page(doc_path(), render())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
