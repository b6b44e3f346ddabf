"""Start and stop the whole other system in this process: its own PostgreSQL database (`othersys_shop`,
schemas `billing` and `learning`, created at start), its Kafka topics, the payment and student services
on loopback ports (uvicorn in threads) and the enrollment worker. Infrastructure comes from a running
local stack (`stack.json`: a PostgreSQL server, Kafka bootstrap, Redis URL)."""

from __future__ import annotations

import gc
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import uvicorn
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.othersystem.common import CONFIRMED_TOPIC, CREATED_TOPIC, DEAD_LETTER_TOPIC, Flaws, flaws_from_env
from tests.othersystem.payments import PaymentService
from tests.othersystem.students import StudentService
from tests.othersystem.worker import Worker

DATABASE = "othersys_shop"
SCHEMA = """
CREATE SCHEMA IF NOT EXISTS billing;
CREATE SCHEMA IF NOT EXISTS learning;
CREATE TABLE IF NOT EXISTS learning.students (
  student_id text PRIMARY KEY, display_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS learning.courses (
  course_id text PRIMARY KEY, title text NOT NULL, published boolean NOT NULL DEFAULT true);
CREATE TABLE IF NOT EXISTS billing.payments (
  payment_id uuid PRIMARY KEY, student_ref text NOT NULL REFERENCES learning.students,
  course_ref text NOT NULL REFERENCES learning.courses, amount_minor integer NOT NULL,
  currency char(3) NOT NULL, state text NOT NULL, gateway text NOT NULL, gateway_ref text, meta jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(), confirmed_at timestamptz);
CREATE TABLE IF NOT EXISTS learning.course_enrollments (
  enrollment_id uuid PRIMARY KEY, student_ref text NOT NULL, course_ref text NOT NULL, tier integer NOT NULL,
  meta jsonb NOT NULL, meta_origin text NOT NULL, active boolean NOT NULL DEFAULT true,
  enrolled_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX IF NOT EXISTS enrollments_by_student ON learning.course_enrollments (student_ref, course_ref);
CREATE TABLE IF NOT EXISTS processed_events (
  event_id text NOT NULL, consumer text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (event_id, consumer));
"""


def database_dsn(server_dsn: str, name: str = DATABASE) -> str:
    parts = urlsplit(server_dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def prepare(server_dsn: str, bootstrap: str) -> str:
    """The system's database and topics (idempotent); returns the database's DSN."""
    with psycopg.connect(database_dsn(server_dsn, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    dsn = database_dsn(server_dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t, num_partitions=n, replication_factor=1)
              for t, n in ((CONFIRMED_TOPIC, 3), (CREATED_TOPIC, 3), (DEAD_LETTER_TOPIC, 1)) if t not in existing]
    collecting = gc.isenabled()
    gc.disable()  # no cyclic collection on librdkafka's thread while it completes the futures
    try:
        for future in admin.create_topics(wanted).values() if wanted else ():
            try:
                future.result(15)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    finally:
        if collecting:
            gc.enable()
    return dsn


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("a service did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class OtherSystem:
    """The running system: its URLs and DSN (what a profile points at) and how to stop it."""

    payment_url: str
    student_url: str
    dsn: str
    flaws: Flaws
    _servers: list[tuple[uvicorn.Server, threading.Thread]] = field(default_factory=list)
    _worker: Worker | None = None

    def stop(self) -> None:
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(10)
        if self._worker is not None:
            self._worker.stop()


def start_system(stack: dict[str, Any], *, webhook_secret: str, jwt_secret: str,
                 flaws: Flaws | None = None) -> OtherSystem:
    """Start everything on the stack described by `stack` (stack.json's settings); flaws default to
    $OTHERSYS_FLAWS. Returns once the worker owns its partitions."""
    chosen = flaws_from_env() if flaws is None else flaws
    dsn = prepare(stack["payments_dsn"], stack["kafka_bootstrap"])
    producer = Producer({"bootstrap.servers": stack["kafka_bootstrap"], "enable.idempotence": True})
    worker = Worker(dsn, stack["kafka_bootstrap"], stack["redis_url"], chosen)
    worker.start()
    payment, p_thread, payment_url = _serve(PaymentService(dsn, webhook_secret, producer, chosen).app)
    student, s_thread, student_url = _serve(StudentService(dsn, stack["redis_url"], jwt_secret, chosen).app)
    system = OtherSystem(payment_url, student_url, dsn, chosen, [(payment, p_thread), (student, s_thread)], worker)
    if not worker.assigned.wait(30):
        system.stop()
        raise RuntimeError("the enrollment worker got no partitions")
    return system
