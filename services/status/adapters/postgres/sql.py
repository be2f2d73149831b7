"""Statement pieces the repositories share."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Text,
    any_,
    bindparam,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID


def one_of(column: ColumnElement[UUID], ids: Sequence[UUID]) -> ColumnElement[bool]:
    """`column = ANY($1)` with the ids as one uuid[] parameter: the same statement text for
    every batch size, so it is prepared once per connection. An `IN` list is a different
    statement for each number of ids, each prepared anew (a round trip and a parse and
    plan in Postgres) once more sizes than asyncpg's statement cache holds have come."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(PG_UUID(as_uuid=True))))


def texts(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """`column = ANY($1)` with the values as one text[] parameter (as `one_of`)."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(Text)))
