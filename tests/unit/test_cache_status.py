"""Cache-Status is read as RFC 8941 structured field, not by substring."""

from __future__ import annotations

import pytest

from kcverify.evidence.cache_status import is_hit, parse, was_stored

NAME = "student-service"


@pytest.mark.parametrize(("value", "hit", "stored"), [
    ("student-service; hit", True, False),
    ("student-service;hit;ttl=120", True, False),
    ("student-service ; hit ; ttl=120", True, False),
    ("student-service; fwd=miss; stored", False, True),
    ("student-service;fwd=miss;stored", False, True),
    ("student-service;fwd=miss", False, False),
    ('"student-service";hit', True, False),
    ("student-service;hit=?1", True, False),
    ("cdn; hit, student-service; fwd=miss", False, False),  # the service's own member decides
    ("student-service; fwd=miss; detail=hitch", False, False),  # "hit" inside another value is no hit
    ("", False, False),
    (None, False, False),
])
def test_hits_and_stores_are_read_from_the_parameters(value: str | None, hit: bool, stored: bool) -> None:
    assert is_hit(value, NAME) is hit
    assert was_stored(value, NAME) is stored


def test_members_keep_their_order_and_parameters() -> None:
    [cdn, service] = parse("cdn; hit; ttl=30, student-service; fwd=miss; stored")
    assert (cdn.cache, cdn.params) == ("cdn", {"hit": True, "ttl": "30"})
    assert (service.cache, service.params) == ("student-service", {"fwd": "miss", "stored": True})
