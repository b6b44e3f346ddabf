"""The external target's preconditions (kcverify/targets/external/preconditions.py): statements and calls
run before the first payment of each (student, course) pair of a scenario with the ids bound, the
cleanup run with the scenario's prefix, and a failure named by the precondition that failed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from kcverify.targets.external.preconditions import PreconditionError, Preconditions
from kcverify.targets.external.profile import load_profile

PROFILE = """\
profile: 1
name: shop
http:
  services:
    shop: {{base_url: "http://shop.test"}}
  operations:
    create_payment: {{service: shop, method: POST, path: /pay}}
    confirm: {{service: shop, method: POST, path: "/pay/{{paymentId}}/ok"}}
    learning_view: {{service: shop, method: GET, path: "/s/{{studentId}}"}}
databases:
  connections:
    db: {{dsn: "sqlite://{db}"}}
  queries:
    payments: {{database: db, sql: "SELECT 1"}}
preconditions:
  sql:
    - database: db
      sql: "INSERT INTO students (id, prefix) VALUES (:student_id, :prefix) ON CONFLICT DO NOTHING"
    - database: db
      sql: "{course_sql}"
  http:
    - service: shop
      method: PUT
      path: "/admin/courses/{{courseId}}"
      body: {{title: "Course {{courseId}}", owner: "{{studentId}}"}}
  cleanup:
    - database: db
      sql: "DELETE FROM students WHERE id LIKE :prefix || '%'"
"""
COURSE_SQL = "INSERT INTO courses (id) VALUES (:course_id) ON CONFLICT DO NOTHING"


def make(tmp_path: Path, course_sql: str = COURSE_SQL, status: int = 201) -> tuple[Preconditions, Path, list[str]]:
    db = tmp_path / "shop.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE students (id TEXT PRIMARY KEY, prefix TEXT)")
        conn.execute("CREATE TABLE courses (id TEXT PRIMARY KEY)")
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE.format(db=db, course_sql=course_sql))
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path} {json.loads(request.content)}")
        return httpx.Response(status)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return Preconditions(load_profile(path, environ={}), client, {"shop": "http://shop.test"}), db, calls


def rows(db: Path, table: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())


def test_each_pair_is_prepared_once_and_the_cleanup_takes_the_prefix(tmp_path: Path) -> None:
    pre, db, calls = make(tmp_path)
    pre.begin("x1-")
    pre.before_payment("x1-s1", "c-yoga")
    pre.before_payment("x1-s1", "c-yoga")  # the same pair again: nothing more
    pre.before_payment("x1-s2", "c-yoga")
    assert rows(db, "students") == [("x1-s1", "x1-"), ("x1-s2", "x1-")]
    assert rows(db, "courses") == [("c-yoga",)]
    assert calls == ["PUT /admin/courses/c-yoga {'title': 'Course c-yoga', 'owner': 'x1-s1'}",
                     "PUT /admin/courses/c-yoga {'title': 'Course c-yoga', 'owner': 'x1-s2'}"]
    pre.begin("x2-")  # a new scenario prepares its pairs again
    pre.before_payment("x2-s1", "c-yoga")
    pre.cleanup()
    assert rows(db, "students") == [("x1-s1", "x1-"), ("x1-s2", "x1-")]
    pre.close()


def test_a_failing_statement_is_named(tmp_path: Path) -> None:
    pre, _, _ = make(tmp_path, course_sql="INSERT INTO catalogue (id) VALUES (:course_id)")
    pre.begin("x1-")
    with pytest.raises(PreconditionError, match=r"^preconditions\.sql\[1\] \(database db\): OperationalError: "
                                                r"no such table: catalogue"):
        pre.before_payment("x1-s1", "c1")


def test_a_refused_call_is_named(tmp_path: Path) -> None:
    pre, _, _ = make(tmp_path, status=409)
    pre.begin("x1-")
    with pytest.raises(PreconditionError, match=r"^preconditions\.http\[0\]: PUT http://shop\.test/admin/courses/c1 "
                                                r"answered 409$"):
        pre.before_payment("x1-s1", "c1")
