"""Records the mapping cannot render become dead letters: accounted for, never replayed blind."""

from __future__ import annotations

import psycopg
import pytest

from donor_sync.delivery.dlq import DeadLetterError, dead_letter_render_errors, list_dead_letters, replay
from donor_sync.delivery.mapping.render import RenderError
from tests.delivery.outbox.support import add_donor


def test_a_render_error_opens_one_letter_per_record_and_refuses_replay(db: psycopg.Connection) -> None:
    jane = add_donor(db, "Jane", "Okafor")
    error = RenderError(
        "value not in the lookup table",
        destination="salesforce",
        entity="contact",
        record_key=jane,
        field="Title",
    )
    assert dead_letter_render_errors(db, "salesforce", [error]) == 1
    assert dead_letter_render_errors(db, "salesforce", [error]) == 0, "the same record keeps its letter"
    db.commit()
    [letter] = list_dead_letters(db, destination="salesforce")
    assert (letter.entity, letter.record_key, str(letter.donor_id)) == ("contact", jane, jane)
    assert (letter.error_class, letter.error_code) == ("validation", "RENDER_ERROR")
    assert letter.message is not None
    assert "field Title" in letter.message
    assert "Okafor" not in letter.message
    with pytest.raises(DeadLetterError, match="could not be rendered"):
        replay(db, letter.dead_letter_id, actor="test")
