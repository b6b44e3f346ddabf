"""The database side of the external target: the profile's named queries, run read-only on its
connections (PostgreSQL through psycopg, or a SQLite file), their rows turned into the canonical shapes
of `Snapshot.payments` and `Snapshot.purchases`. Parameters are written `:name` in every dialect and
bound by the driver, never pasted into the SQL."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kcverify.core.clock import rfc3339
from kcverify.targets.external.profile import Profile

# The canonical columns each query must return (the rest of the canonical shape is optional).
REQUIRED = {
    "payments": ("id", "studentId", "courseId", "amountCents", "currency", "status", "metadata", "createdAt"),
    "purchases": ("purchaseId", "paymentId", "studentId", "courseId", "purchaseTier", "metadata", "metadataSource",
                  "isActive", "createdAt"),
    "processed_events": (),
}
OPTIONAL = {"payments": ("provider", "providerPaymentId", "confirmedAt")}
TIMES = ("createdAt", "confirmedAt")
JSON_COLUMNS = ("metadata",)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class QueryError(Exception):
    """A query could not run, or returned the wrong shape; the message names the query."""


def _postgres_sql(sql: str) -> str:
    """`:name` -> `%(name)s`, with a literal `%` doubled (psycopg's paramstyle); `::type` casts untouched."""
    return _PARAM.sub(lambda m: f"%({m.group(1)})s", sql.replace("%", "%%"))


def _sqlite_path(dsn: str) -> str:
    """`sqlite:///abs/path` (and `sqlite:////abs/path`) -> /abs/path; `sqlite:rel/path` -> rel/path."""
    path = dsn[len("sqlite:"):]
    path = path[2:] if path.startswith("//") else path
    return "/" + path.lstrip("/") if path.startswith("/") else path


class Databases:
    """One connection per named database, opened on first use and reopened after a failure."""

    def __init__(self, profile: Profile) -> None:
        self._profile = profile
        self._dsns = {name: profile.resolve(spec["dsn"], "databases", "connections", name, "dsn")
                      for name, spec in profile.section("databases", "connections").items()}
        self._queries = profile.section("databases", "queries")
        self._conns: dict[str, Any] = {}

    def has(self, query: str) -> bool:
        return query in self._queries

    def _connect(self, database: str) -> Any:
        dsn = self._dsns[database]
        if dsn.startswith("sqlite:"):
            conn = sqlite3.connect(f"file:{quote(_sqlite_path(dsn))}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False, timeout=10)
            conn.row_factory = sqlite3.Row
            return conn
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(dsn, autocommit=True, row_factory=dict_row, connect_timeout=10)

    def ping(self, database: str) -> None:
        """Connect to `database` (QueryError naming it when that fails): is it there at all?"""
        conn = self._conns.get(database)
        try:
            if conn is None:
                conn = self._conns[database] = self._connect(database)
            conn.execute("SELECT 1")
        except Exception as exc:
            self._conns.pop(database, None)
            if conn is not None:
                conn.close()
            raise QueryError(f"{type(exc).__name__}: {_first_line(exc)}") from exc

    def rows(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows of the named query, raw (as the driver returns them). QueryError names the query."""
        return self.execute(query, params)[1]

    def columns(self, query: str, params: Mapping[str, Any]) -> list[str]:
        """The names of the columns the query returns (known even when it returns no row)."""
        return self.execute(query, params)[0]

    def missing_column(self, query: str, params: Mapping[str, Any]) -> str | None:
        """The first canonical column the query does not return, or None."""
        columns = self.columns(query, params)
        return next((c for c in REQUIRED.get(query, ()) if c not in columns), None)

    def execute(self, query: str, params: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        spec = self._queries[query]
        database = spec["database"]
        for attempt in (1, 2):
            conn = self._conns.get(database)
            try:
                if conn is None:
                    conn = self._conns[database] = self._connect(database)
                sql = spec["sql"] if isinstance(conn, sqlite3.Connection) else _postgres_sql(spec["sql"])
                cursor = conn.execute(sql, dict(params))
                names = [str(d[0]) for d in cursor.description or ()]
                return names, [dict(row) for row in cursor.fetchall()]
            except Exception as exc:
                self._conns.pop(database, None)
                if conn is not None:
                    conn.close()
                if attempt == 2:
                    raise QueryError(f"query {query} (database {database}): {type(exc).__name__}: "
                                     f"{_first_line(exc)}") from exc
        raise AssertionError("unreachable")

    def canonical(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows in the canonical shape: JSON columns decoded, times as RFC 3339, flags as booleans.
        QueryError when a required column is missing."""
        columns, rows = self.execute(query, params)
        missing = [c for c in REQUIRED[query] if c not in columns]
        if missing:
            raise QueryError(f"query {query}: missing column {missing[0]}")
        return [_row(query, row) for row in rows]

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _row(query: str, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in JSON_COLUMNS:
        if isinstance(out.get(column), str | bytes):
            with contextlib.suppress(ValueError):  # a system that stores text: the checks show it as it is
                out[column] = json.loads(out[column])
    for column in TIMES:
        value = out.get(column)
        if isinstance(value, datetime):  # a `timestamp without time zone` holds UTC, not kcverify's local time
            out[column] = rfc3339((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[column] = rfc3339(float(value))
    if query == "purchases" and isinstance(out.get("isActive"), int):
        out["isActive"] = bool(out["isActive"])
    for column in OPTIONAL.get(query, ()):
        out.setdefault(column, None)
    return out
