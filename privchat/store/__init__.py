"""PostgreSQL access: the pool (`db`), the migration runner (`migrate`) and one module per table family."""

from .db import Connection, Database, Record

__all__ = ["Connection", "Database", "Record"]
