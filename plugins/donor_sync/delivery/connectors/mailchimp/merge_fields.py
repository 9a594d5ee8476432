"""The merge fields a Mailchimp mapping writes, with the Mailchimp type each needs.

:meth:`MailchimpConnector.ensure_merge_fields` creates the ones an audience lacks, so a new
audience works without a manual setup step (one read when they all exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from donor_sync.delivery.mapping.model import DestinationMapping

#: Mapping field type -> Mailchimp merge field type.
MERGE_TYPES: dict[str, str] = {
    "string": "text",
    "picklist": "text",
    "boolean": "text",
    "number": "number",
    "integer": "number",
    "date": "date",
    "datetime": "text",
}


def merge_field_specs(mapping: DestinationMapping) -> dict[str, str]:
    """Return ``{TAG: Mailchimp type}`` of every ``merge:`` field the mapping's objects write.

    ``merge:<TAG>.<part>`` fields make an ``address`` merge field; an object's ``external_id``
    ``merge:<TAG>`` a text one (the record key is written there).
    """
    specs: dict[str, str] = {}
    for obj in mapping.objects:
        if obj.external_id and obj.external_id.startswith("merge:"):
            specs[obj.external_id.partition(":")[2].upper()] = "text"
        for item in obj.fields:
            kind, _, rest = item.to.partition(":")
            if kind != "merge" or not rest or not item.enabled:
                continue
            tag, _, part = rest.partition(".")
            specs[tag.upper()] = "address" if part else MERGE_TYPES.get(str(item.type or "string"), "text")
    return specs
