"""Top-level sections of a pack whose entries may be spread over several files or
statements (the YAML merge and the DSL parser both need the list)."""

from __future__ import annotations

PACK_SECTIONS = frozenset(
    {
        "calendars",
        "roles",
        "skills",
        "teams",
        "templates",
        "workflows",
        "permissions",
        "rules",
        "sla",
        "messages",
        "canned_replies",
    }
)
