"""Where a personal value still lives: the search the erasure tests run over every table's text
columns after an account is erased (tests/auth and tests/reliability share it)."""

from __future__ import annotations

import psycopg
from psycopg import sql

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "inet", "ARRAY", "USER-DEFINED", "name")


def places_holding(db_url: str, needle: str) -> list[str]:
    """Every (schema.table.column) of every table whose text holds `needle` (case-insensitive)."""
    found = []
    with psycopg.connect(db_url) as conn:
        cols = conn.execute(
            "select c.table_schema, c.table_name, c.column_name from information_schema.columns c "
            "join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name "
            "where t.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema') "
            "and c.data_type = any(%s)", (list(TEXT_TYPES),)).fetchall()
        assert len(cols) > 100  # the search really covers the schema
        for schema, table, column in cols:
            q = sql.SQL("select count(*) from {}.{} where strpos(lower({}::text), lower(%s)) > 0").format(
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column))
            if conn.execute(q, (needle,)).fetchone()[0]:
                found.append(f"{schema}.{table}.{column}")
    return found
