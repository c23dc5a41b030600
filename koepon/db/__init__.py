"""The database layer: connections, the private cluster, migrations, SQL splitting, schema diff,
lint rules, the pgTAP runner and the test templates. Imports only settings and errors."""

from .connection import (
    connect,
    create_database,
    dbname,
    drop_database,
    redact,
    throwaway,
    unique_name,
    with_dbname,
)

__all__ = ["connect", "create_database", "dbname", "drop_database", "redact", "throwaway", "unique_name",
           "with_dbname"]
