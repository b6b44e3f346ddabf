"""The profile's `preconditions`: what a system needs to exist before a payment can be made (a student's
row, a course in the catalogue), made by kcverify since its scenarios invent fresh ids, and the cleanup
after a scenario.

A scenario's students and courses are known only when it uses them, so the `sql` statements and `http`
calls run before the first payment of each (student, course) pair of the scenario, with `:prefix`,
`:student_id` and `:course_id` bound (SQL) or `{prefix}`, `{studentId}`, `{courseId}` filled (HTTP
templates); write them to be idempotent (`ON CONFLICT DO NOTHING`). `cleanup` runs once when the
scenario stops, with `:prefix`. Statements run on connections of their own, in autocommit, writable
(the snapshot queries' connections stay read-only)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from kcverify.targets.external.db import _postgres_sql, _sqlite_path
from kcverify.targets.external.profile import Profile
from kcverify.targets.external.templates import TemplateError, render, render_text
from kcverify.targets.http_client import HttpClient


class PreconditionError(Exception):
    """A precondition failed; the message names it (`preconditions.sql[0]: ...`)."""


class Preconditions:
    """Runs a profile's preconditions per (student, course) pair and its cleanup per scenario."""

    def __init__(self, profile: Profile, client: HttpClient, base_urls: Mapping[str, str]) -> None:
        section = profile.section("preconditions")
        self._sql: list[dict[str, Any]] = list(section.get("sql", []))
        self._http: list[dict[str, Any]] = list(section.get("http", []))
        self._cleanup: list[dict[str, Any]] = list(section.get("cleanup", []))
        self._dsns = {name: profile.resolve(spec["dsn"], "databases", "connections", name, "dsn")
                      for name, spec in profile.section("databases", "connections").items()}
        self._client = client
        self._base = dict(base_urls)
        self._conns: dict[str, Any] = {}
        self._prefix = ""
        self._done: set[tuple[str, str]] = set()

    @property
    def configured(self) -> bool:
        return bool(self._sql or self._http or self._cleanup)

    def begin(self, prefix: str) -> None:
        """A new scenario whose students' ids start with `prefix`."""
        self._prefix = prefix
        self._done.clear()

    def before_payment(self, student_id: str, course_id: str) -> None:
        """Run the preconditions for this pair unless this scenario already did. PreconditionError."""
        if (student_id, course_id) in self._done or not (self._sql or self._http):
            return
        params = {"prefix": self._prefix, "student_id": student_id, "course_id": course_id}
        for index, statement in enumerate(self._sql):
            self._execute(f"preconditions.sql[{index}]", statement, params)
        fields = {"prefix": self._prefix, "studentId": student_id, "courseId": course_id}
        for index, call in enumerate(self._http):
            self._call(f"preconditions.http[{index}]", call, fields)
        self._done.add((student_id, course_id))

    def cleanup(self) -> None:
        """Run the cleanup statements of the scenario that ends. PreconditionError."""
        for index, statement in enumerate(self._cleanup):
            self._execute(f"preconditions.cleanup[{index}]", statement, {"prefix": self._prefix})

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _connect(self, database: str) -> Any:
        dsn = self._dsns[database]
        if dsn.startswith("sqlite:"):
            return sqlite3.connect(_sqlite_path(dsn), isolation_level=None, check_same_thread=False, timeout=10)
        import psycopg

        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)

    def _execute(self, where: str, statement: dict[str, Any], params: dict[str, str]) -> None:
        database = str(statement["database"])
        try:
            conn = self._conns.get(database)
            if conn is None:
                conn = self._conns[database] = self._connect(database)
            sql = statement["sql"] if isinstance(conn, sqlite3.Connection) else _postgres_sql(statement["sql"])
            conn.execute(sql, params)
        except Exception as exc:
            dropped = self._conns.pop(database, None)
            if dropped is not None:
                dropped.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise PreconditionError(f"{where} (database {database}): {type(exc).__name__}: {first}") from exc

    def _call(self, where: str, call: dict[str, Any], fields: dict[str, str]) -> None:
        try:
            url = self._base[call["service"]] + render_text(call["path"], fields, lambda s: quote(s, safe=""))
            body = json.dumps(render(call["body"], fields)).encode() if "body" in call else None
        except TemplateError as exc:
            raise PreconditionError(f"{where}: {exc}") from exc
        try:
            response = self._client.request(call["method"], url, content=body,
                                             headers={"Content-Type": "application/json"} if body else {})
        except httpx.HTTPError as exc:
            raise PreconditionError(f"{where}: no response from {url}: {type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise PreconditionError(f"{where}: {call['method']} {url} answered {response.status_code}")
