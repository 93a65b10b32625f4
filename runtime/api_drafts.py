"""Builder drafts as stored: a pack's files as the admin wrote them, saved with optimistic
concurrency (each save names the revision it read, so two admins never overwrite each
other unknowingly). What a draft means (validation, edits, graphs) is the builder's job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runtime.records import DraftRow, InvalidCommand, NotFound

if TYPE_CHECKING:
    from runtime.clock import Clock
    from runtime.store.base import Store

_PACK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_FILES = 200
MAX_DRAFT_BYTES = 5 * 1024 * 1024


class DraftApi:
    """Mixed into `Runtime`."""

    store: Store
    clock: Clock

    def drafts(self, tenant: str) -> list[DraftRow]:
        with self.store.read() as tx:
            return tx.drafts(tenant)

    def draft(self, tenant: str, pack: str) -> DraftRow:
        with self.store.read() as tx:
            row = tx.draft(tenant, pack)
        if row is None:
            raise NotFound(f"no draft of pack '{pack}'")
        return row

    def save_draft(
        self,
        tenant: str,
        pack: str,
        files: Mapping[str, str],
        by: str,
        expected_revision: int | None,
    ) -> DraftRow:
        """Create (`expected_revision` None) or replace a draft. Conflict when another save
        came first; the stored draft is then unchanged."""
        check_draft(pack, files)
        row = DraftRow(tenant, pack, dict(files), 0, self.clock.now(), by)
        with self.store.transaction() as tx:
            tx.put_draft(row, expected_revision)  # Conflict when another save came first
        return row

    def delete_draft(self, tenant: str, pack: str) -> None:
        with self.store.transaction() as tx:
            if not tx.delete_draft(tenant, pack):
                raise NotFound(f"no draft of pack '{pack}'")


def check_draft(pack: str, files: Mapping[str, str]) -> None:
    """Refuse names and sizes no pack could have (the content is the builder's to judge)."""
    if not _PACK_NAME.match(pack):
        raise InvalidCommand(
            f"'{pack}' is not a pack name: lower-case letters, digits and _, starting with a letter"
        )
    if not files:
        raise InvalidCommand("a draft needs at least one file")
    if len(files) > MAX_FILES:
        raise InvalidCommand(f"a draft has at most {MAX_FILES} files, not {len(files)}")
    size = sum(len(t.encode("utf-8")) for t in files.values())
    if size > MAX_DRAFT_BYTES:
        raise InvalidCommand(f"the draft is {size} bytes; at most {MAX_DRAFT_BYTES}")
