"""Bulk inserts for the batch paths: ``COPY … FROM STDIN`` on PostgreSQL, multi-row ``INSERT`` on SQLite.

Rows are dicts of column name to a Python value as the column's type stores it (dates, timezone-aware datetimes,
bytes, dicts for JSON columns); the caller supplies every column without a server default, since COPY applies no
Python-side defaults. The insert joins the session's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        # SQLAlchemy's "insertmanyvalues" turns an executemany into multi-row INSERTs of up to 1,000 rows.
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    json_columns = {name for name in columns if isinstance(table.c[name].type, JSON)}
    quoted = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in columns)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[name], ensure_ascii=False) if name in json_columns else row[name]
                                for name in columns])
    finally:
        cursor.close()
