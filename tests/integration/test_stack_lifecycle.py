"""`kcverify stack` against the real programs: PostgreSQL, Redis and a Kafka KRaft broker started in a
temporary state directory. Nothing is skipped: a missing prerequisite fails the run with the
install command in the message.

The tests share one stack (module fixture) and run in file order: the later ones (crash recovery,
down) change it. Each still starts the stack itself if run alone."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from kcverify import stack
from kcverify.cli.main import cli
from kcverify.stack import daemons

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TOPICS = {"purchase-confirmed": 3, "purchase-created": 3, "purchase-confirmed.dlq": 1}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("stack") / "state"
    yield directory
    stack.down(directory, purge=True)


@pytest.fixture(scope="module")
def settings(state_dir: Path) -> dict[str, Any]:
    return stack.up(state_dir, timeout=180).settings


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["stack", *args], catch_exceptions=False)


def _roundtrip(bootstrap: str, topic: str, value: bytes) -> list[bytes]:
    """Produce value, then read the topic from the beginning with a fresh group until it shows up."""
    producer = Producer({"bootstrap.servers": bootstrap})
    errors: list[KafkaError] = []
    producer.produce(topic, key=b"purchase-1", value=value,
                     on_delivery=lambda err, _msg: errors.append(err) if err else None)
    assert producer.flush(30) == 0, "message not delivered within 30 s"
    assert not errors, errors
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    seen: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while value not in seen and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            seen.append(msg.value() or b"")
    finally:
        consumer.close()
    assert value in seen, f"{value!r} not consumed from {topic} (saw {seen})"
    return seen


def test_up_writes_settings(settings: dict[str, Any], state_dir: Path) -> None:
    assert settings["payments_dsn"].startswith("postgresql://")
    assert settings["payments_dsn"].endswith("/payments_db")
    assert settings["courses_dsn"].endswith("/courses_db")
    assert settings["kafka_bootstrap"].startswith("127.0.0.1:")
    assert settings["redis_url"].startswith("redis://127.0.0.1:")
    assert set(settings["pids"]) == {"postgres", "redis", "kafka"}
    assert settings["started_at"]
    on_disk = json.loads((state_dir / "stack.json").read_text())
    assert on_disk == settings == stack.load_settings(state_dir)


def test_postgres_both_databases_work(settings: dict[str, Any]) -> None:
    for key in ("payments_dsn", "courses_dsn"):
        with psycopg.connect(settings[key], autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO probe VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET note = %s",
                         (key, key))
            assert conn.execute("SELECT note FROM probe WHERE id = 1").fetchone() == (key,)
            database = conn.execute("SELECT current_database()").fetchone()
            assert database == (settings[key].rsplit("/", 1)[1],)


def test_redis_works(settings: dict[str, Any]) -> None:
    client = redis.Redis.from_url(settings["redis_url"])
    try:
        assert client.set("kcverify:probe", "ok")
        assert client.get("kcverify:probe") == b"ok"
    finally:
        client.close()


def test_kafka_topics_and_roundtrip(settings: dict[str, Any]) -> None:
    md = AdminClient({"bootstrap.servers": settings["kafka_bootstrap"]}).list_topics(timeout=10)
    for name, partitions in TOPICS.items():
        assert name in md.topics, f"topic {name} missing"
        assert len(md.topics[name].partitions) == partitions, name
    _roundtrip(settings["kafka_bootstrap"], "purchase-confirmed", b"first")


def test_status_all_up(state_dir: Path, settings: dict[str, Any]) -> None:
    assert all(s.up for s in stack.status(state_dir))
    result = _cli("status", "--state-dir", str(state_dir))
    assert result.exit_code == 0, result.output
    for name in ("postgres", "redis", "kafka"):
        assert f"{name}" in result.output


def test_up_again_is_idempotent(state_dir: Path, settings: dict[str, Any]) -> None:
    again = stack.up(state_dir)
    assert again.already_up and again.started == ()
    assert again.settings == settings
    result = _cli("up", "--state-dir", str(state_dir))
    assert result.exit_code == 0, result.output
    assert "already up" in result.output
    assert settings["kafka_bootstrap"] in result.output


def test_broker_crash_restarts_only_the_broker(state_dir: Path, settings: dict[str, Any]) -> None:
    before = stack.load_settings(state_dir)
    broker = before["pids"]["kafka"]
    os.kill(broker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while daemons.is_alive(broker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not daemons.is_alive(broker)
    assert _cli("status", "--state-dir", str(state_dir)).exit_code == 1

    result = stack.up(state_dir, timeout=180)

    assert result.started == ("kafka",)
    after = result.settings
    assert after["pids"]["kafka"] != broker
    assert after["pids"]["postgres"] == before["pids"]["postgres"]
    assert after["pids"]["redis"] == before["pids"]["redis"]
    # same port, same data: the message produced before the crash is still there
    assert after["kafka_bootstrap"] == before["kafka_bootstrap"]
    assert after["kafka_cluster_id"] == before["kafka_cluster_id"]
    seen = _roundtrip(after["kafka_bootstrap"], "purchase-confirmed", b"after-crash")
    assert b"first" in seen
    assert all(s.up for s in stack.status(state_dir))


def test_down_twice(state_dir: Path, settings: dict[str, Any]) -> None:
    pids = stack.load_settings(state_dir)["pids"]
    first = _cli("down", "--state-dir", str(state_dir))
    assert first.exit_code == 0, first.output
    assert "stopped" in first.output
    assert not any(daemons.is_alive(pid) for pid in pids.values())
    second = _cli("down", "--state-dir", str(state_dir))
    assert second.exit_code == 0, second.output
    assert "nothing running" in second.output
    assert _cli("status", "--state-dir", str(state_dir)).exit_code == 1
    with pytest.raises(stack.StackNotRunning):
        stack.load_settings(state_dir)


def test_missing_prerequisite_is_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    real_which = shutil.which
    # shutil.which is what kcverify.stack.prereqs looks programs up with
    monkeypatch.setattr("shutil.which",
                        lambda name, *a, **k: None if name == "redis-server" else real_which(name, *a, **k))
    result = CliRunner().invoke(cli, ["stack", "up", "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert "apt-get install -y redis-server" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s" / "stack.json").exists()
