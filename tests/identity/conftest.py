"""Small labelled donor records shared by the identity tests."""

from __future__ import annotations

import pandas as pd
import pytest

# person: the true donor; household: people sharing an address
ROWS = [
    # id, person, first, last, email, phone, street, city, state, postal
    (
        "r1",
        "p1",
        "Robert",
        "Smithers",
        "rob.smithers@example.org",
        "(617) 555-0101",
        "12 Elm Street",
        "Boston",
        "MA",
        "02110",
    ),
    (
        "r2",
        "p1",
        "Bob",
        "Smithers",
        "rob.smithers@example.org",
        "",
        "12 Elm St",
        "Boston",
        "MA",
        "02110-1234",
    ),
    ("r3", "p1", "Robert", "Smithers", "", "617-555-0101", "12 Elm St", "Boston", "MA", "02110"),
    (
        "r4",
        "p2",
        "Mary",
        "Smithers",
        "mary.s@example.org",
        "(617) 555-0101",
        "12 Elm Street",
        "Boston",
        "MA",
        "02110",
    ),
    (
        "r5",
        "p3",
        "Alice",
        "Nguyen",
        "alice.nguyen@example.com",
        "312-555-0199",
        "9 Lake Shore Dr",
        "Chicago",
        "IL",
        "60611",
    ),
    (
        "r6",
        "p3",
        "Alcie",
        "Nguyen",
        "alice.nguyen@example.com",
        "",
        "9 Lake Shore Drive",
        "Chicago",
        "IL",
        "60611",
    ),
    (
        "r7",
        "p4",
        "Jonathan",
        "Okafor",
        "jon.okafor@example.net",
        "206-555-0142",
        "400 Pine St",
        "Seattle",
        "WA",
        "98101",
    ),
    ("r8", "p4", "Jon", "Okafor", "", "(206) 555-0142", "400 Pine Street", "Seattle", "WA", "98101"),
    ("r9", "p5", "Priya", "Raman", "priya.raman@example.com", "", "77 Oak Ave", "Austin", "TX", "73301"),
]


@pytest.fixture
def donors() -> pd.DataFrame:
    """Nine donor records of five people; p1 and p2 are a household (Robert and Mary Smithers)."""
    columns = [
        "record_id",
        "person",
        "first_name",
        "last_name",
        "email",
        "phone",
        "street",
        "city",
        "state",
        "postal_code",
    ]
    frame = pd.DataFrame(ROWS, columns=columns)
    frame["country"] = "US"
    return frame
