"""The embedded SQLite store (pantau's default)."""

from pantau.store.sqlite.store import SQLiteOptions, SQLiteStore

__all__ = ["SQLiteOptions", "SQLiteStore"]
