"""The staging writer's COPY path keeps every value exactly, whatever shape the frame's columns have."""

from __future__ import annotations

import pandas as pd
import psycopg

from donor_sync.standardize.writer import copy_frame


def test_columns_concatenated_from_an_empty_frame_copy_exactly(db: psycopg.Connection) -> None:
    # pandas keeps each Arrow chunk of a concatenated string column, the empty one too; pyarrow's
    # CSV writer turns a column whose first chunk is empty into NUL bytes (the fuzz test found it).
    empty = pd.DataFrame({"name": pd.Series([], dtype="string[pyarrow]"), "n": pd.Series([], dtype="int64")})
    rows = pd.DataFrame({"name": pd.Series(["Debra", None], dtype="string[pyarrow]"), "n": [1, 2]})
    frame = pd.concat([empty, rows], ignore_index=True)
    assert frame["name"].array._pa_array.num_chunks == 2  # the shape that broke the writer
    db.execute("CREATE TEMP TABLE copied (name text, n bigint)")
    copy_frame(db, "copied", frame, ["name", "n"])
    assert db.execute("SELECT name, n FROM copied ORDER BY n").fetchall() == [("Debra", 1), (None, 2)]
