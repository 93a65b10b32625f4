"""Row ids: UUIDv7 layout (time first, 74 random bits), so rows of a moment share index pages."""

from __future__ import annotations

import time
import uuid

from runtime.ids import new_id


def test_ids_are_uuid7_hex_and_unique() -> None:
    made = [new_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    for text in made[:100]:
        parsed = uuid.UUID(text)
        assert (len(text), parsed.version, parsed.variant) == (32, 7, uuid.RFC_4122)


def test_ids_start_with_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= int(made[:12], 16) <= after
    time.sleep(0.002)
    assert new_id()[:12] > made[:12]  # a later millisecond sorts after
