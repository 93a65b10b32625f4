"""The embedding API's outbox side: deliver due messages, list what is stuck, retry dead
ones. Mixed into `runtime.api.Runtime`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from runtime.delivery import ChannelConfig, Deliverer
from runtime.outbox import LEASE, DrainReport, drain
from runtime.records import InvalidCommand, OutboxRow

if TYPE_CHECKING:
    from runtime.clock import Clock
    from runtime.store.base import Store

STATUSES = ("pending", "sent", "dead")


class OutboxApi:
    """Outbox delivery and the dead-letter list of `Runtime`."""

    store: Store
    clock: Clock
    channels: ChannelConfig | None
    _deliverer: Deliverer | None

    def deliverer(self) -> Deliverer:
        """The channel adapters (one HTTP client and mail connection, reused)."""
        if self._deliverer is None:
            self._deliverer = Deliverer(self.channels or ChannelConfig())
        return self._deliverer

    def drain_outbox(
        self,
        now: datetime | None = None,
        batch: int = 100,
        limit: int = 100_000,
        lease: timedelta = LEASE,
    ) -> DrainReport:
        """Deliver due messages (up to `limit`) in batches; a failed delivery is retried
        with backoff and becomes dead after the retry policy's last attempt. A batch is
        claimed for `lease` (at least batch × the HTTP timeout): if this process dies,
        another worker sends it after that."""
        at = now or self.clock.now()
        report = DrainReport()
        while report.claimed < limit:
            step = drain(
                self.store, self.deliverer(), at, min(batch, limit - report.claimed), lease
            )
            report.add(step)
            if step.claimed < batch:
                break
        return report

    def outbox(self, tenant: str, status: str | None = None) -> list[OutboxRow]:
        """The tenant's messages, oldest first, optionally of one status (`dead` lists the
        dead letters, each with its last error and attempt count)."""
        if status is not None and status not in STATUSES:
            raise InvalidCommand(f"no outbox status '{status}'; use one of {', '.join(STATUSES)}")
        with self.store.read() as tx:
            return tx.outbox(tenant, status)

    def retry_outbox(self, tenant: str, ids: Sequence[str]) -> int:
        """Send dead messages again (attempts start over); returns how many were dead."""
        with self.store.transaction() as tx:
            return tx.retry_outbox(tenant, list(ids), self.clock.now())

    def close_deliverer(self) -> None:
        if self._deliverer is not None:
            self._deliverer.close()
            self._deliverer = None
