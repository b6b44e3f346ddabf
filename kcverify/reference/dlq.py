"""Dead-letter replay (W8): after the cause is fixed, each dead letter's original event goes back to
its original topic. The replayer is itself a consumer group on the DLQ with committed offsets, so a
dead letter is replayed once, and a crash mid-replay at worst replays one again (the worker's
idempotency makes that harmless). A broker that refuses a replay stops it there: what was replayed is
counted, the rest stays in the DLQ for the next replay."""

from __future__ import annotations

import json

from kcverify.core.errors import BusUnavailable
from kcverify.reference import domain
from kcverify.reference.instrument import Tracer
from kcverify.reference.ports import Bus, Consumer

REPLAY_GROUP = "dlq-replayer"


class DeadLetterReplayer:
    def __init__(self, *, bus: Bus, tracer: Tracer) -> None:
        self._bus = bus
        self._tracer = tracer
        self._consumer: Consumer | None = None

    def replay_all(self) -> int:
        """Replay every dead letter not replayed yet; returns how many."""
        if self._consumer is None:
            self._consumer = self._bus.consumer(REPLAY_GROUP, [domain.TOPIC_DLQ])
        count = 0
        while (message := self._consumer.poll(0.5 if count == 0 else 0.1)) is not None:
            letter = json.loads(message.value)
            original = letter["originalEvent"]
            raw = original.encode() if isinstance(original, str) else domain.encode(original)
            headers = [(k, v) for k, v in message.headers]
            try:
                self._bus.publish(letter["originalTopic"], message.key, raw, headers)
            except BusUnavailable as exc:  # not committed: the next replay starts at this letter again
                self._tracer.emit("dlq-replayer", "replay_failed", originalOffset=letter.get("offset"), error=str(exc))
                self.close()
                break
            self._consumer.commit(message)
            self._tracer.emit("dlq-replayer", "replayed", reason=letter.get("reason"),
                              originalOffset=letter.get("offset"))
            count += 1
        return count

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
