"""Loading mapping files: the shipped ones load; every problem names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from donor_sync.delivery.mapping import (
    docs,
    load_destination,
    load_mapping,
    shipped_mapping_paths,
    validate_file,
    validate_text,
)
from donor_sync.errors import ConfigError

BASE = """\
version: 1
destination: salesforce
tables:
  stage:
    succeeded: Closed Won
objects:
  - name: contact
    object: Contact
    source: donor
    key: donor_id
    external_id: Donor_Sync_Id__c
    fields:
      - to: LastName
        from: last_name
        type: string
        transforms: [trim]
  - name: opportunity
    object: Opportunity
    source: gift
    key: gift_key
    external_id: Donor_Sync_Id__c
    mode: upsert
    fields:
      - to: npsp__Primary_Contact__r
        from: donor_id
        reference: {entity: contact}
      - to: StageName
        from: status
        type: picklist
        transforms: [{picklist: {table: stage}}]
"""


def _broken(tmp_path: Path, old: str, new: str, at: str | None) -> tuple[Path, int]:
    assert BASE.count(old) == 1, old
    text = BASE.replace(old, new)
    marker = at if at is not None else new.strip().splitlines()[0]
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if marker in row)
    path = tmp_path / "salesforce.yaml"
    path.write_text(text, encoding="utf-8")
    return path, line


def test_the_shipped_mappings_load() -> None:
    paths = shipped_mapping_paths()
    assert [p.stem for p in paths] == sorted(p.stem for p in paths)
    assert {"hubspot", "mailchimp", "salesforce"} <= {p.stem for p in paths}
    for path in paths:
        mapping, problems = validate_file(path)
        assert problems == [], [str(p) for p in problems]
        assert mapping is not None
        assert mapping.destination == path.stem
        assert mapping.path == path
    assert load_destination("salesforce").object("opportunity").priority == 50
    with pytest.raises(ConfigError, match="no mapping file for destination 'mandrill'"):
        load_destination("mandrill")


def test_the_base_snippet_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert load_mapping(path).object("contact").key == "donor_id"


@pytest.mark.parametrize(
    ("old", "new", "field", "says", "at"),
    [
        pytest.param(
            "from: last_name",
            "from: lastname",
            "contact.LastName.from",
            "unknown source field 'lastname' for donor rows",
            None,
            id="unknown-source-field",
        ),
        pytest.param(
            "transforms: [trim]",
            "transforms: [strip]",
            "contact.LastName.transforms.0",
            "unknown transform",
            None,
            id="unknown-transform",
        ),
        pytest.param(
            "transforms: [trim]",
            "transforms: [trim, {truncate: 0}]",
            "contact.LastName.transforms.1.truncate",
            "greater than or equal to 1",
            None,
            id="bad-transform-argument",
        ),
        pytest.param(
            "mode: upsert",
            "mode: sometimes",
            "opportunity.mode",
            "Input should be 'upsert', 'update_only', 'create_only' or 'mirror'",
            None,
            id="bad-mode",
        ),
        pytest.param(
            "mode: upsert",
            "mode: mirror",
            "opportunity.mode",
            "mirror mode needs `mirror_action`",
            None,
            id="mirror-without-action",
        ),
        pytest.param(
            "    key: gift_key\n",
            "",
            "opportunity.key",
            "Field required",
            "- name: opportunity",
            id="missing-key",
        ),
        pytest.param(
            "    key: gift_key\n",
            "    key: gift\n",
            "opportunity.key",
            "unknown source field 'gift' for gift rows",
            None,
            id="bad-key",
        ),
        pytest.param(
            "source: gift",
            "source: gifts",
            "opportunity.source",
            "Input should be 'donor', 'household', 'gift' or 'recurring_plan'",
            None,
            id="bad-source-kind",
        ),
        pytest.param(
            "reference: {entity: contact}",
            "reference: {entity: donor}",
            "opportunity.npsp__Primary_Contact__r.reference.entity",
            "no object named 'donor' in this file",
            None,
            id="reference-to-unknown-object",
        ),
        pytest.param(
            "{table: stage}",
            "{table: stages}",
            "opportunity.StageName.transforms.0.picklist.table",
            "no table named 'stages' under `tables`",
            None,
            id="unknown-table",
        ),
        pytest.param(
            "from: last_name",
            "from: [last_name, organization_name]",
            "contact.LastName.from",
            "several source fields need a first `concat` or `coalesce` transform",
            None,
            id="several-fields-without-combining",
        ),
        pytest.param(
            "from: last_name\n        type: string",
            "value: Smith\n        type: integer",
            "contact.LastName.value",
            "the constant does not convert to integer",
            None,
            id="constant-of-the-wrong-type",
        ),
        pytest.param(
            "from: last_name\n",
            "from: last_name\n        value: Smith\n",
            "contact.LastName.value",
            "give `from` or `value`, not both",
            "value: Smith",
            id="from-and-value",
        ),
        pytest.param(
            "- to: LastName",
            "- to: Donor_Sync_Id__c",
            "contact.Donor_Sync_Id__c.to",
            "the external id field is sent from the record key",
            None,
            id="external-id-mapped",
        ),
        pytest.param(
            "{picklist: {table: stage}}",
            "{picklist: {table: stage, fallback: Other, on_missing: null}}",
            "opportunity.StageName.transforms.0.picklist",
            "give either `fallback` or `on_missing`, not both",
            None,
            id="fallback-and-on-missing",
        ),
        pytest.param(
            "        type: string\n        transforms: [trim]\n",
            "        type: string\n        transforms: [trim]\n"
            "      - to: Account\n        from: donor_id\n        reference: {entity: opportunity}\n",
            "contact",
            "dependency cycle: contact -> opportunity -> contact",
            "- name: contact",
            id="dependency-cycle",
        ),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str, says: str, at: str | None
) -> None:
    path, line = _broken(tmp_path, old, new, at)
    mapping, problems = validate_file(path)
    assert mapping is None
    matching = [p for p in problems if says in p.message]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert problem.file == str(path)
    assert problem.field == field
    assert problem.line == line, str(problem)
    assert str(problem).startswith(f"{path}:{problem.line}: {field}: ")
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert says in str(caught.value)
    assert str(path) in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        BASE.replace("from: last_name", "from: lastname")
        .replace("mode: upsert", "mode: sometimes")
        .replace("{table: stage}", "{table: stages}")
    )
    _, problems = validate_text(text, tmp_path / "x.yaml")
    fields = {p.field for p in problems}
    # the opportunity is invalid as a whole (bad mode), yet its fields' own problems are reported
    assert fields == {
        "contact.LastName.from",
        "opportunity.mode",
        "opportunity.StageName.transforms.0.picklist.table",
    }


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    _, missing = validate_file(tmp_path / "none.yaml")
    assert "cannot read" in missing[0].message
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nobjects:\n  - name: [unclosed\n", encoding="utf-8")
    _, problems = validate_file(broken)
    assert problems[0].line == 4
    assert "not valid YAML" in problems[0].message


def test_generated_reference_is_current() -> None:
    committed = docs.doc_path().read_text(encoding="utf-8")
    assert committed == docs.render(), (
        "docs/field-mappings.md is stale: run `donor-sync mapping docs --write`"
    )
    for text in ("npsp__Primary_Contact__r", "deal_contact_association", "set only if empty", "`picklist`"):
        assert text in committed
