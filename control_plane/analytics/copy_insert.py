"""Insert many rows once each: binary COPY into a temporary table, then INSERT ... ON CONFLICT (record_id) DO NOTHING.

Two round trips per table whatever the number of rows, no SQL compiled per row, and the unique record_id keeps
ingest exactly-once (a NATS message delivered again, or a record repeated inside one batch, inserts nothing).
Django's bulk_create managed ~1,000 rows/s here; COPY in text format with a Django model object per row ~6,000
records/s through the bridge. Binary COPY with the column types fixed up front lets psycopg's C code write each
value without looking up an adapter for it, about twice the rows per second of text COPY for these tables.

Rows are tuples in the order of the columns named. Values must already be what their column takes (text cut to
length, aware datetimes or epoch seconds for `epoch_columns`, ints, floats, Decimal or int for decimals, bytes);
JSON columns take JSON text, staged as `text` and cast by PostgreSQL, since psycopg's binary jsonb adapter would
store a str as a JSON string.

The staging tables live as long as the database session (`ON COMMIT DELETE ROWS`): creating one per transaction
and emptying it with TRUNCATE (a new file and catalog rows each time, for three tables) was most of PostgreSQL's
work for a small fetch, 10-11.5 ms of its CPU for 180 records against 5.7-6 ms now (the bridge at an edge's
low traffic stores one fetch of ~200 records every 50 ms). Rows staged by an earlier call in the same transaction
are inserted again by the next call's INSERT and skipped by ON CONFLICT; commit empties the table.

`Derived` rows come from the same staged rows, in SQL: a request's budget-usage row and its body-less proxy log
repeat its analytics record, and copying them as rows of their own cost the bridge a formatted row and PostgreSQL a
parsed and staged row each (`bench/bench_ingest.py --logs-from-analytics`, alternated with the tree before: ingest
33,154 and 34,344 rows/s before, 54,075 and 44,975 after; the bridge's CPU per request beside a two-worker edge
53-58 us before, 43-46 after). Only what the analytics table lacks (`staged_only` columns: the method, the path,
whether to derive) is staged besides.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from django.db import connection, models

_EPOCH = "epoch"
"""A DateTimeField given as seconds since the epoch (a float): staged as float8, converted by to_timestamp()."""


# psycopg binary type per Django field type: the binary wire format must match the column's type exactly (an int4
# sent to an int2 column is refused), so every field type a staged column can have is listed; KeyError otherwise.
_BINARY_TYPES = {
    "CharField": "text",  # varchar's binary input is text's
    "TextField": "text",
    "DateTimeField": "timestamptz",
    "BigIntegerField": "int8",
    "IntegerField": "int4",
    "PositiveIntegerField": "int4",
    "SmallIntegerField": "int2",
    "PositiveSmallIntegerField": "int2",
    "FloatField": "float8",
    "DecimalField": "numeric",
    "BooleanField": "bool",
    "BinaryField": "bytea",
    "JSONField": "text",
    _EPOCH: "float8",
}


@dataclass(frozen=True)
class Derived:
    """Rows of `model` built from each staged row where the staged boolean column `where` is true: `select[i]` is the
    SQL value of `columns[i]`, over the staged columns (quoted names; an epoch column is float8 there, a JSON one
    text). Inserted ON CONFLICT (record_id) DO NOTHING, like the staged rows themselves."""

    model: type[models.Model]
    columns: tuple[str, ...]
    select: tuple[str, ...]
    where: str


@dataclass(frozen=True)
class _Plan:
    create: str
    copy: str
    insert: str
    types: tuple[str, ...]
    derived: tuple[str, ...] = ()


def _column(model: type[models.Model], name: str, epoch_columns: tuple[str, ...]) -> tuple[str, str]:
    """(quoted column, how it is staged: a Django field type or _EPOCH) of a concrete field."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, f"{model.__name__}.{name} is not a concrete column"
    kind = field.get_internal_type()
    if name in epoch_columns:
        assert kind == "DateTimeField", f"{model.__name__}.{name} is not a datetime"
        kind = _EPOCH
    return connection.ops.quote_name(field.column), kind


# How a column is staged and then read from the staging table, when not as itself.
_STAGED = {"JSONField": "{c}::text AS {c}", _EPOCH: "extract(epoch FROM {c})::float8 AS {c}"}
_SELECTED = {"JSONField": "{c}::jsonb", _EPOCH: "to_timestamp({c})"}


def _insert_derived(derived: Derived, staging: str) -> str:
    quote = connection.ops.quote_name
    table = quote(derived.model._meta.db_table)
    names = ", ".join(_column(derived.model, name, ())[0] for name in derived.columns)
    values = ", ".join(derived.select)
    return (
        f"INSERT INTO {table} ({names}) SELECT {values} FROM {staging} WHERE {quote(derived.where)} "
        "ON CONFLICT (record_id) DO NOTHING"
    )


def _digest(text: str) -> str:
    return hashlib.blake2s(text.encode(), digest_size=4).hexdigest()


@cache
def _plan(
    model: type[models.Model],
    columns: tuple[str, ...],
    epoch_columns: tuple[str, ...],
    staged_only: tuple[tuple[str, str], ...] = (),
    derived: tuple[Derived, ...] = (),
) -> _Plan:
    quote = connection.ops.quote_name
    fields = [_column(model, name, epoch_columns) for name in columns]
    extra = [(quote(name), kind) for name, kind in staged_only]
    names = ", ".join(column for column, _ in fields)
    staged = ", ".join(_STAGED.get(kind, "{c}").format(c=c) for c, kind in fields)
    staged += "".join(f", NULL::{_BINARY_TYPES[kind]} AS {c}" for c, kind in extra)
    selected = ", ".join(_SELECTED.get(kind, "{c}").format(c=c) for c, kind in fields)
    table = quote(model._meta.db_table)
    # A staging table lives as long as the session: one with other columns needs a name of its own.
    shape = "_" + _digest("|".join(f"{name}:{kind}" for name, kind in staged_only)) if staged_only else ""
    staging = quote(f"staging_{model._meta.db_table}{shape}")
    copied = ", ".join([names, *(c for c, _ in extra)])
    return _Plan(
        create=(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS SELECT {staged} FROM {table} WITH NO DATA"
        ),
        copy=f"COPY {staging} ({copied}) FROM STDIN (FORMAT BINARY)",
        insert=f"INSERT INTO {table} ({names}) SELECT {selected} FROM {staging} ON CONFLICT (record_id) DO NOTHING",
        types=tuple(_BINARY_TYPES[kind] for _, kind in [*fields, *extra]),
        derived=tuple(_insert_derived(d, staging) for d in derived),
    )


def copy_insert_new(
    model: type[models.Model],
    columns: tuple[str, ...],
    rows: list[tuple],
    *,
    epoch_columns: tuple[str, ...] = (),
    staged_only: tuple[tuple[str, str], ...] = (),
    derived: tuple[Derived, ...] = (),
) -> int:
    """Insert the rows whose record_id is not stored yet, and their `derived` rows; returns how many were new.

    `epoch_columns`: datetime columns whose values in `rows` are seconds since the epoch; PostgreSQL converts them
    (a Python datetime per value cost ~10% of the bridge's ingest thread once model objects were gone).
    `staged_only`: (name, field type) of values each row carries after `columns`, staged for `derived` only.

    Must run inside the caller's transaction (the staging table is emptied at commit).
    """
    if not rows:
        return 0
    if connection.get_autocommit():  # each statement would commit: the staged rows gone before the INSERT
        raise RuntimeError("copy_insert_new must run inside a transaction (transaction.atomic)")
    plan = _plan(model, columns, epoch_columns, staged_only, derived)
    with connection.cursor() as cursor:
        cursor.execute(plan.create)
        with cursor.cursor.copy(plan.copy) as copy:
            copy.set_types(list(plan.types))
            write = copy.write_row
            for row in rows:
                write(row)
        cursor.execute(plan.insert)
        inserted = cursor.rowcount
        for statement in plan.derived:
            cursor.execute(statement)
            inserted += cursor.rowcount
    return inserted
