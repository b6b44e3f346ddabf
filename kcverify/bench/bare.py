"""The bare pipeline: the same load on the same stack with nothing of the reference in between, so a bench
separates the reference's own cost from the infrastructure's.

One purchase of the bare pipeline is: a record produced to a Kafka topic of its own (the producer waits for
the broker's acknowledgement), a consumer in a group of its own polls it, INSERTs one row into a table of
its own in courses_db (one transaction, the row stamped by PostgreSQL's `clock_timestamp()`), DELetes the
student's Redis key (and bumps its version, in the same script); offsets are committed once per polled
batch, when no fetched record is left (as the reference's consumers do, reference/membership.py); a
reader polls the student's view: Redis GET, and on a miss the key's version, a SELECT of the student's
rows and a SET only if the version is unchanged (the least a cache-aside read needs: a plain SET would
store what a read loaded before an INSERT after that INSERT's DEL, stale until it expires). The clients
and their settings are the
ones the reference's adapters use (confluent-kafka with an idempotent `acks=all` producer, `linger.ms=0`,
manual offset commits; psycopg 3; redis-py).

The load is the bench's: `Bench` drives this through the same open loop (`BareTarget` has the target
methods the bench calls), so hops and histograms mean the same: `confirm` is the produce acknowledged,
`commit` the row's `created_at`, `visible` the first read that lists it. Everything it creates (topic,
table, keys) carries a random suffix and is removed by `close()`."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kcverify.core.admin_calls import all_done, collector_paused
from kcverify.core.errors import TargetUnreachable
from kcverify.targets.base import HttpReply, Snapshot

PARTITIONS = 3
CACHE_SECONDS = 300
# DEL the value and bump the version, atomically; SET the value only if the version is the one read.
DELETE = "redis.call('DEL', KEYS[1]); return redis.call('INCR', KEYS[2])"
SET_IF_VERSION = ("if tonumber(redis.call('GET', KEYS[2]) or '0') == tonumber(ARGV[1]) then "
                  "redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]); return 1 end; return 0")
POLL_TIMEOUT = 0.1  # seconds a consumer poll waits for a record
BATCH = 64  # at most this many handled records wait for their commit (as the reference's GroupMember.BATCH)


class BareTarget:
    """The bare pipeline behind the few target methods `Bench` calls. `http` answers the bench's two
    requests (create = produce and wait for the acknowledgement, confirm = nothing more to do) and its
    learning read (GET, else SELECT + SET); `run_free` starts the consumer thread, `hold_all` stops it."""

    def __init__(self, stack: Mapping[str, Any]) -> None:
        import psycopg
        import redis
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        self._suffix = uuid.uuid4().hex[:12]
        self.topic = f"kcverify-bench-bare-{self._suffix}"
        self.table = f"kcverify_bench_bare_{self._suffix}"
        self._bootstrap = str(stack["kafka_bootstrap"])
        self._dsn = str(stack["courses_dsn"])
        common: dict[str, str | int | float | bool] = {"bootstrap.servers": self._bootstrap}
        self._admin = AdminClient(common)
        try:
            with collector_paused():
                futures = self._admin.create_topics([NewTopic(self.topic, PARTITIONS, 1)], request_timeout=10)
                all_done(futures.values(), 15)
                for future in futures.values():
                    future.result(timeout=15)
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                conn.execute(f"CREATE TABLE {self.table} (payment_id text PRIMARY KEY, student_id text NOT NULL,"
                             " created_at timestamptz NOT NULL DEFAULT clock_timestamp())")
                conn.execute(f"CREATE INDEX ON {self.table} (student_id)")
        except Exception as exc:  # a stack that is not there: one line, exit 2
            raise TargetUnreachable(f"bare pipeline: the stack did not answer: {exc}") from exc
        self._producer = Producer({**common, "client.id": "kcverify-bench-bare", "enable.idempotence": True,
                                   "acks": "all", "linger.ms": 0, "message.timeout.ms": 10000,
                                   "partitioner": "consistent_random", "allow.auto.create.topics": False})
        self._redis = redis.Redis.from_url(str(stack["redis_url"]))
        self._delete = self._redis.register_script(DELETE)
        self._set_if_version = self._redis.register_script(SET_IF_VERSION)
        self._local = threading.local()
        self._ids = iter(range(1, 1 << 62))
        self._ids_lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer: threading.Thread | None = None
        self._consumer_error: BaseException | None = None

    # --- what the bench calls -----------------------------------------------------------------------

    def now(self) -> float:
        return time.time()

    def student_id(self, name: str) -> str:
        return f"bare-{self._suffix}-{name}"

    def token(self, subject: str, role: str) -> str:
        return ""

    def sign(self, payment_id: str, body: bytes, at: float | None = None) -> str:
        return ""

    def http(self, service: str, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> HttpReply:
        if method == "POST" and path.endswith("/confirm"):
            return HttpReply(200, {}, b'{"status": "succeeded"}')  # produced and acknowledged at create
        if method == "POST":
            return self._produce(json.loads(body or b"{}"))
        return self._read(path.split("/")[-2])

    def run_free(self) -> None:
        self._stop.clear()
        self._consumer = threading.Thread(target=self._consume, name="kcverify-bench-bare-consumer", daemon=True)
        self._consumer.start()

    def hold_all(self) -> None:
        self._stop.set()
        if self._consumer is not None:
            self._consumer.join(timeout=30)
            self._consumer = None

    def snapshot(self) -> Snapshot:
        with self._conn().cursor() as cur:
            cur.execute(f"SELECT payment_id, created_at FROM {self.table}")
            rows = cur.fetchall()
        self._conn().commit()
        purchases = [{"paymentId": pid, "createdAt": at.isoformat()} for pid, at in rows]
        return Snapshot(at=time.time(), payments=[], purchases=purchases, topics={}, end_offsets={}, committed={},
                        traces=[], down=frozenset())

    def close(self) -> None:
        """Stop the consumer; drop the table, the topic and the keys."""
        try:
            self._clean_up()
        finally:
            del self._producer, self._admin  # destroyed here, not at a later collection (core/admin_calls.py)

    def _clean_up(self) -> None:
        self.hold_all()
        self._producer.flush(5)
        with contextlib.suppress(Exception):  # each part best effort: a stack going down takes them along
            import psycopg
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        with contextlib.suppress(Exception), collector_paused():  # waited for: a late callback could free a client
            futures = self._admin.delete_topics([self.topic], request_timeout=10)
            all_done(futures.values(), 15)
        with contextlib.suppress(Exception):
            keys = list(self._redis.scan_iter(match=f"bare:bare-{self._suffix}-*", count=1000))
            if keys:
                self._redis.delete(*keys)
        self._redis.close()

    # --- the pipeline -------------------------------------------------------------------------------

    def _conn(self) -> Any:
        """One PostgreSQL connection per thread (as the reference's pools give one per request)."""
        import psycopg
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = psycopg.connect(self._dsn)
        return conn

    def _produce(self, body: Mapping[str, Any]) -> HttpReply:
        with self._ids_lock:
            payment_id = f"bare-{self._suffix}-{next(self._ids)}"
        student = str(body.get("studentId"))
        done = threading.Event()
        failed: list[str] = []

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))
            done.set()

        self._producer.produce(self.topic, key=student.encode(),
                               value=json.dumps({"paymentId": payment_id, "studentId": student}).encode(),
                               on_delivery=report)
        deadline = time.monotonic() + 15
        while not done.is_set() and time.monotonic() < deadline:
            self._producer.poll(0.005)  # any thread's poll serves every delivery report
        if failed or not done.is_set():
            return HttpReply(503, {}, b"{}")
        return HttpReply(201, {}, json.dumps({"id": payment_id}).encode())

    def _read(self, student: str) -> HttpReply:
        key = f"bare:{student}"
        cached = self._redis.get(key)
        if cached is None:
            version = self._redis.get(f"{key}:version") or b"0"
            conn = self._conn()
            with conn.cursor() as cur:
                cur.execute(f"SELECT payment_id FROM {self.table} WHERE student_id = %s ORDER BY created_at",
                            (student,))
                ids = [row[0] for row in cur.fetchall()]
            conn.commit()
            cached = json.dumps({"purchases": [{"paymentId": i} for i in ids]}).encode()
            self._set_if_version(keys=[key, f"{key}:version"], args=[int(version), cached, CACHE_SECONDS])
        return HttpReply(200, {}, cached if isinstance(cached, bytes) else str(cached).encode())

    def _consume(self) -> None:
        from confluent_kafka import Consumer
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": f"kcverify-bench-bare-{self._suffix}",
                             "enable.auto.commit": False, "enable.auto.offset.store": False,
                             "enable.partition.eof": False, "partition.assignment.strategy": "range",
                             "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                             "heartbeat.interval.ms": 500, "allow.auto.create.topics": False})
        conn = self._conn()
        handled: dict[int | None, Any] = {}  # partition -> the last record handled there, its offset not committed yet
        since_commit = 0
        try:
            consumer.subscribe([self.topic])
            while not self._stop.is_set():
                message = consumer.poll(0 if handled else POLL_TIMEOUT) if since_commit < BATCH else None
                if message is None and handled:  # nothing fetched left (or a full batch): commit, as the reference does
                    for last in handled.values():
                        consumer.commit(message=last, asynchronous=False)
                    handled.clear()
                    since_commit = 0
                    continue
                if message is None or message.error():
                    continue
                record = json.loads(message.value() or b"{}")
                with conn.cursor() as cur:
                    cur.execute(f"INSERT INTO {self.table} (payment_id, student_id) VALUES (%s, %s)"
                                " ON CONFLICT (payment_id) DO NOTHING", (record["paymentId"], record["studentId"]))
                conn.commit()
                key = f"bare:{record['studentId']}"
                self._delete(keys=[key, f"{key}:version"])
                handled[message.partition()] = message
                since_commit += 1
        except BaseException as exc:  # shown by the bench as purchases never visible; kept for the report
            self._consumer_error = exc
        finally:
            with contextlib.suppress(Exception):  # a graceful stop commits what was handled
                for last in handled.values():
                    consumer.commit(message=last, asynchronous=False)
            consumer.close()
