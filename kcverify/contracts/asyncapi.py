"""What contracts/events/asyncapi.yaml says about the Kafka side of each topic, beyond the value's JSON
Schema: which field of the value the message key repeats (the message's `x-key-field`, beside its
`bindings.kafka.key` schema), and which headers every message must carry (its `headers` schema's
`required`). Checks read the key and header rules from here, never from the reference's code."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from kcverify.contracts import SAFE_LOADER, contracts_dir


@dataclass(frozen=True)
class TopicMessage:
    """The Kafka-level contract of the messages on one channel."""

    topic: str
    name: str  # the message's `name`, e.g. PURCHASE_CONFIRMED
    key_field: tuple[str, ...] | None  # path into the value the key repeats; None: not declared
    key_schema: dict[str, Any]
    required_headers: tuple[str, ...]


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((contracts_dir() / "events" / "asyncapi.yaml").read_text(),
                                       Loader=SAFE_LOADER)
    return loaded


def _resolve(node: Any) -> Any:
    """Follow a local `$ref` ('#/a/b') until a node that is not one; external refs are left as they are."""
    doc = document()
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        seen += 1
        if seen > 16:
            raise ValueError(f"asyncapi.yaml: $ref cycle at {node['$ref']}")
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@cache
def messages() -> dict[str, TopicMessage]:
    """topic -> its message contract, for every channel of the document."""
    out: dict[str, TopicMessage] = {}
    for channel in (document().get("channels") or {}).values():
        topic = channel.get("address")
        channel_messages = list((channel.get("messages") or {}).values())
        if not isinstance(topic, str) or len(channel_messages) != 1:
            continue  # one message per channel is what the purchase flow declares
        message = _resolve(channel_messages[0])
        kafka = ((message.get("bindings") or {}).get("kafka") or {})
        key_schema = _resolve(kafka.get("key") or {})
        headers = _resolve(message.get("headers") or {})
        key_field = message.get("x-key-field")
        out[topic] = TopicMessage(
            topic=topic,
            name=str(message.get("name", "")),
            key_field=tuple(key_field.split(".")) if isinstance(key_field, str) and key_field else None,
            key_schema=key_schema if isinstance(key_schema, dict) else {},
            required_headers=tuple(headers.get("required") or ()),
        )
    return out


def key_value(message: TopicMessage, value: Any) -> Any:
    """The value of the message's key field in a decoded message value; None when absent or undeclared."""
    if message.key_field is None:
        return None
    for part in message.key_field:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
