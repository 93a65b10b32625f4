"""Draining the outbox: claim due messages under a lease, deliver them, record the outcome.

Delivery is at-least-once. A claim bumps the message's attempt count and hides it until
the lease ends; a worker killed mid-delivery leaves it to be claimed again after the
lease, and a late worker whose lease ran out cannot overwrite the newer attempt's outcome
(`finish_outbox` checks the attempt count). Every message keeps its id across attempts,
sent to receivers as `X-Ticketflow-Message-Id` / `Message-ID`, so they can de-duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from runtime.delivery import Deliverer, DeliveryError, next_attempt
from runtime.records import OutboxRow
from runtime.store.base import Store

LEASE = timedelta(minutes=5)


@dataclass(slots=True)
class DrainReport:
    """What one drain did."""

    sent: int = 0
    retrying: int = 0
    dead: int = 0
    lost: int = 0  # outcomes not written: another worker re-claimed the message meanwhile
    errors: list[str] = field(default_factory=list)

    @property
    def claimed(self) -> int:
        return self.sent + self.retrying + self.dead + self.lost

    def add(self, other: DrainReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        self.lost += other.lost
        self.errors.extend(other.errors)


@dataclass(frozen=True, slots=True)
class _Outcome:
    row: OutboxRow
    status: str
    next_attempt_at: datetime | None
    error: str | None
    delivered_at: datetime | None


def drain(
    store: Store, deliverer: Deliverer, now: datetime, batch: int = 100, lease: timedelta = LEASE
) -> DrainReport:
    """Deliver up to `batch` due messages; the outcomes are written in one transaction.

    The lease covers the whole batch even if every message waits out its timeout, so a
    slow batch is not claimed a second time by another worker while this one still sends.
    """
    lease = max(lease, timedelta(seconds=batch * deliverer.config.timeout))
    with store.transaction() as tx:
        rows = tx.claim_outbox(now, batch, now + lease)
    outcomes = [_attempt(deliverer, row, now) for row in rows]
    report = DrainReport()
    if not outcomes:
        return report
    with store.transaction() as tx:
        for o in outcomes:
            written = tx.finish_outbox(
                o.row.tenant_id,
                o.row.id,
                o.row.attempts,
                o.status,
                o.next_attempt_at,
                o.error,
                o.delivered_at,
            )
            _count(report, o, written)
    return report


def _attempt(deliverer: Deliverer, row: OutboxRow, now: datetime) -> _Outcome:
    try:
        deliverer.deliver(row, attempt=row.attempts)
    except DeliveryError as exc:
        wait = None if exc.permanent else next_attempt(row.attempts, deliverer.config.retry, row.id)
        if wait is None:
            reason = (
                exc.message
                if exc.permanent
                else f"gave up after {row.attempts} attempts: {exc.message}"
            )
            return _Outcome(row, "dead", None, reason, None)
        return _Outcome(row, "pending", now + wait, exc.message, None)
    # A message sent after failures keeps its last error: the retries stay explainable.
    return _Outcome(row, "sent", None, row.last_error, now)


def _count(report: DrainReport, o: _Outcome, written: bool) -> None:
    if not written:
        report.lost += 1
    elif o.status == "sent":
        report.sent += 1
    elif o.status == "dead":
        report.dead += 1
        report.errors.append(f"{o.row.id}: {o.error}")
    else:
        report.retrying += 1
        report.errors.append(f"{o.row.id}: {o.error}")
