"""Helpers of the end-to-end erasure test: the subject picked from the sample's truth, the same person
seeded in Mailchimp and Braze, a PII search over emulator snapshots, and the donor's old records
re-imported (a new CSV export of their rows, a new Stripe webhook event of their charge).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import requests
import tenacity

from donor_sync.delivery.connectors.braze.client import BrazeClient
from donor_sync.delivery.connectors.braze.client import default_retry as braze_retry
from donor_sync.delivery.connectors.mailchimp.client import MailchimpClient, base_url_for, subscriber_hash
from donor_sync.delivery.connectors.mailchimp.client import default_retry as mailchimp_retry
from donor_sync.demo_inputs import webhook_receiver
from sandbox.common.runner import Sandbox
from sandbox.emulators.braze import DEFAULT_API_KEY as BRAZE_KEY
from sandbox.emulators.mailchimp import DEFAULT_API_KEY as MAILCHIMP_KEY
from sandbox.emulators.mailchimp import DEFAULT_LIST_ID

#: The emulators whose whole state is searched for the subject's PII.
DESTINATIONS = ("salesforce", "hubspot", "mailchimp", "braze", "receiver")


@dataclass(frozen=True)
class Subject:
    """The person erased: their truth values, the golden donor they became, their source records."""

    person_id: str
    first: str
    last: str
    email: str
    phone: str  # E.164, +1 (NANP)
    street: str
    donor_id: UUID
    donor_ids: tuple[UUID, ...]  # the survivor and every donor merged into it
    records: tuple[tuple[str, str], ...]  # (truth source, source record id)

    @property
    def national(self) -> str:
        """The phone's ten national digits."""
        return self.phone[-10:]

    def needles(self) -> tuple[str, ...]:
        """Strings (case-insensitive substrings) that betray the person: email, name, street, phone.

        The last name is unique in the sample, so it stands for first+last name in every spelling
        the sources use ("Last, First", upper case, ...).
        """
        n = self.national
        number, name = self.street.split(" ", 2)[:2]
        return (
            self.email,
            self.last,
            f"{self.first} {self.last}",
            f"{number} {name}",  # "147 Greenwood" matches "... Street" and "... St"
            self.phone,
            n,
            f"{n[:3]}-{n[3:6]}-{n[6:]}",
            f"({n[:3]}) {n[3:6]}-{n[6:]}",
            f"{n[:3]}.{n[3:6]}.{n[6:]}",
            f"{n[:3]} {n[3:6]} {n[6:]}",
        )


def _truth(sample: Path, name: str) -> list[dict[str, str]]:
    with (sample / "truth" / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def choose_subject(conn: psycopg.Connection, sample: Path) -> Subject:
    """Return the first sample person fit to be the subject of the test, as resolved in ``conn``.

    Fit: a phone (NANP), an email, no household (no one else shares their address), a last name
    no one else's name, email or street contains, seen through two sources one of which is a CSV
    export; every staged record of theirs resolved to one golden donor, merged from at least two
    source records, that reached both Salesforce and HubSpot.
    """
    persons = _truth(sample, "persons.csv")
    records: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in _truth(sample, "records.csv"):
        records[row["person_id"]].append((row["source"], row["source_record_id"]))
    sources: dict[str, set[str]] = defaultdict(set)
    for row in _truth(sample, "appearances.csv"):
        sources[row["person_id"]].add(row["source"])
    for person in persons:
        pid, last = person["person_id"], person["last_name"]
        if person["household_id"] or not person["email"] or not person["phone"].startswith("+1"):
            continue
        if len(sources[pid]) < 2 or not any(s.endswith("_export") for s in sources[pid]):
            continue
        others = " ".join(
            f"{p['first_name']} {p['last_name']} {p['email']} {p['street']} {p['city']} {p['employer']}"
            for p in persons
            if p["person_id"] != pid
        ).lower()
        if last.lower() in others:
            continue
        donors = conn.execute(
            "SELECT DISTINCT coalesce(d.merged_into, d.donor_id) FROM staging.donors s"
            " JOIN core.donors d ON d.donor_id = s.donor_id"
            " WHERE s.last_name ILIKE %(last)s OR lower(s.email) = lower(%(email)s) OR s.phone = %(phone)s",
            {"last": last, "email": person["email"], "phone": person["phone"]},
        ).fetchall()
        if len(donors) != 1:
            continue
        donor = UUID(str(donors[0][0]))
        facts = conn.execute(
            "SELECT array_agg(DISTINCT d.donor_id),"
            " (SELECT count(*) FROM core.donor_sources s WHERE s.role = 'source'"
            "   AND s.donor_id IN (SELECT donor_id FROM core.donors WHERE %(d)s IN (donor_id, merged_into))),"
            " (SELECT array_agg(DISTINCT s.system::text) FROM core.donor_sources s"
            "   WHERE s.role = 'destination' AND s.donor_id = %(d)s)"
            " FROM core.donors d WHERE %(d)s IN (d.donor_id, d.merged_into)",
            {"d": donor},
        ).fetchone()
        assert facts is not None
        if facts[1] < 2 or not {"salesforce", "hubspot"} <= set(facts[2] or ()):
            continue
        return Subject(
            pid,
            person["first_name"],
            last,
            person["email"],
            person["phone"],
            person["street"],
            donor,
            tuple(sorted((UUID(str(d)) for d in facts[0]), key=lambda u: u != donor)),
            tuple(records[pid]),
        )
    raise AssertionError("no sample person fits the end-to-end erasure test; change the sample's seed")


# -- the ESPs (issue 8 pushes to them; until then the test seeds them) ------------------------------


def seed_email_platforms(box: Sandbox, subject: Subject) -> None:
    """Put the subject in Mailchimp (a list member) and Braze (their profile by donor id, and an
    email-only profile from a sign-up form), over HTTPS with donor-sync's own clients."""
    ca = str(box.tls.ca_cert)
    no_wait = tenacity.wait_none()
    mailchimp = MailchimpClient(
        base_url_for(MAILCHIMP_KEY, box["mailchimp"].base_url),
        MAILCHIMP_KEY,
        verify=ca,
        retry=lambda: mailchimp_retry(attempts=3, wait=no_wait),
    )
    number, rest = subject.street.split(" ", 1)
    mailchimp.request(
        "PUT",
        f"/lists/{DEFAULT_LIST_ID}/members/{subscriber_hash(subject.email)}",
        json={
            "email_address": subject.email,
            "status_if_new": "subscribed",
            "merge_fields": {
                "FNAME": subject.first,
                "LNAME": subject.last,
                "PHONE": subject.phone,
                "ADDRESS": {"addr1": f"{number} {rest}", "city": "Anytown", "state": "CA", "zip": "94122"},
            },
        },
    )
    braze = BrazeClient(
        box["braze"].base_url, BRAZE_KEY, verify=ca, retry=lambda: braze_retry(attempts=3, wait=no_wait)
    )
    braze.post(
        "/users/track",
        {
            "attributes": [
                {
                    "external_id": str(subject.donor_id),
                    "email": subject.email,
                    "phone": subject.phone,
                    "first_name": subject.first,
                    "last_name": subject.last,
                    "home_city": "Anytown",
                    "street_address": subject.street,
                },
                {
                    "user_alias": {"alias_name": "signup-4711", "alias_label": "newsletter_form"},
                    "email": subject.email,
                    "first_name": subject.first,
                },
            ]
        },
    )


# -- the PII search ---------------------------------------------------------------------------------


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(str(key), f"{path}/{key}#key")
            yield from _strings(item, f"{path}/{key}")
    elif isinstance(value, list | tuple | set):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif value is not None:
        yield path, str(value)


def snapshot_hits(snapshot: Any, subject: Subject) -> list[str]:
    """Return the JSON paths of ``snapshot`` whose string holds a needle, or the phone's digits."""
    needles = [n.lower() for n in subject.needles()]
    hits = []
    for path, text in _strings(snapshot):
        lowered = text.lower()
        if any(n in lowered for n in needles) or subject.national in re.sub(r"\D", "", text):
            hits.append(path)
    return hits


def emulator_hits(
    box: Sandbox, subject: Subject, names: tuple[str, ...] = DESTINATIONS
) -> dict[str, list[str]]:
    """Return, per emulator, where its whole state (``snapshot()``) still holds the subject's PII."""
    found: dict[str, list[str]] = {}
    for name in names:
        emulator = box[name].emulator
        with emulator.lock:
            state = json.loads(json.dumps(emulator.snapshot(), default=str))
        hits = snapshot_hits(state, subject)
        if hits:
            found[name] = hits
    return found


def verify_signature(delivery: dict[str, Any], secret: str) -> bool:
    """Check a delivery's ``X-DonorSync-Signature`` (``v1=`` HMAC-SHA256 of ``"{timestamp}.{body}"``)."""
    headers = delivery["headers"]
    timestamp = headers["x-donorsync-timestamp"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}.{delivery['text']}".encode(), hashlib.sha256
    ).hexdigest()
    given = [
        p.strip()[3:] for p in headers["x-donorsync-signature"].split(",") if p.strip().startswith("v1=")
    ]
    return any(hmac.compare_digest(expected, g) for g in given)


# -- re-importing the old records ---------------------------------------------------------------


def reexport_csv_rows(sample: Path, drop: Path, subject: Subject) -> list[Path]:
    """Drop a new export of each CSV the subject's rows came from, holding only those rows (byte
    for byte as first exported), settled an hour ago; return the files."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for source, record_id in subject.records:
        if source.startswith("csv/"):
            wanted[source.removeprefix("csv/")].add(record_id)
    written = []
    for name, ids in sorted(wanted.items()):
        lines = (sample / "csv" / f"{name}.csv").read_bytes().splitlines(keepends=True)
        header, rows = lines[0], lines[1:]
        mine = [line for line in rows if line.split(b",", 1)[0].decode("ascii", "replace") in ids]
        assert len(mine) == len(ids), (name, len(mine), len(ids))
        target = drop / f"{name}_reexport.csv"
        target.write_bytes(header + b"".join(mine))
        settled = time.time() - 3600
        os.utime(target, (settled, settled))
        written.append(target)
    return written


def redeliver_charge_events(box: Sandbox, db_url: str, subject: Subject) -> int:
    """Have Stripe send a new signed ``charge.succeeded`` event for each of the subject's charges
    (as on a replay from Stripe's dashboard) to the real webhook receiver; return how many landed."""
    charges = [rid for source, rid in subject.records if source == "stripe/charges"]
    assert charges, "the subject paid through Stripe"
    stripe = box["stripe"]
    ca = str(box.tls.ca_cert)
    delivered = 0
    with (
        webhook_receiver(db_url, box.tls.server_cert, box.tls.server_key) as url,
        requests.Session() as http,
    ):
        http.trust_env = False
        http.patch(
            f"{stripe.admin_url}/settings",
            json={"webhook_endpoint_url": f"{url}/stripe", "webhook_ca_cert": ca},
            verify=ca,
            timeout=10,
        ).raise_for_status()
        for charge_id in charges:
            charge = http.get(
                f"{stripe.base_url}/v1/charges/{charge_id}",
                headers={"Authorization": "Bearer sk_test_sandbox"},
                verify=ca,
                timeout=10,
            )
            charge.raise_for_status()
            created = http.post(
                f"{stripe.admin_url}/events",
                json={"type": "charge.succeeded", "object": charge.json(), "deliver": True},
                verify=ca,
                timeout=30,
            )
            created.raise_for_status()
            delivered += int(created.json()["delivery"].get("status") == 200)
    return delivered
