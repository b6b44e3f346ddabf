"""Identifiers. Random ids come from an IdSource so a seeded run produces the same ids every time;
event ids are derived from idempotency keys so a re-published event keeps its identity."""

from __future__ import annotations

import random
import re
import uuid
from typing import Protocol

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Namespace for event ids derived from idempotency keys (uuid5): the same logical event always has
# the same eventId, however many times an outbox relay or a reconciler publishes it.
EVENT_NAMESPACE = uuid.UUID("6f1c2a0e-5b7d-4e8a-9c3f-2d4b6a8e0c11")


class IdSource(Protocol):
    def uuid(self) -> str: ...


class RandomIds:
    def uuid(self) -> str:
        return str(uuid.uuid4())


class SeededIds:
    """Version-4-shaped uuids from a seeded generator: deterministic, still valid uuids."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def event_id_for(idempotency_key: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, idempotency_key))


def is_uuid(text: object) -> bool:
    return isinstance(text, str) and UUID_RE.match(text) is not None
