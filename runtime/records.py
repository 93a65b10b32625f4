"""Rows the runtime reads and writes, and the errors its commands raise.

These are plain dataclasses shared by every store (in-memory, SQLite, PostgreSQL): the
store contract is stated in these terms, so a store never sees a pydantic model or a
blueprint. Every row carries `tenant_id`; every key starts with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# What is wrong with one field value: defined by the engine, which validates field values.
from engine.form_schema import FieldProblem as FieldProblem

JSON = dict[str, Any]


# -- rows -----------------------------------------------------------------------------------


@dataclass(slots=True)
class TicketRow:
    """A ticket as stored. `fields` holds JSON values (dates as ISO text)."""

    tenant_id: str
    id: str
    ref: str
    pack: str
    pack_version: int
    template: str
    state: str
    fields: JSON
    version: int
    created_at: datetime
    updated_at: datetime
    state_entered_at: datetime
    title: str | None = None
    requester: str | None = None
    assignee: str | None = None  # a user id, or `role:<name>` for anyone in that role
    team: str | None = None
    channel: str | None = None
    watchers: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    parent_id: str | None = None
    link: str | None = None  # how this ticket is linked to its parent: child, related, follow_up
    closed: bool = False  # in a final state
    event_seq: int = 0  # number of events written for this ticket so far
    search_text: str = ""  # lower-cased ref, title and text values, for text search
    sla: JSON | None = None  # the SLA policy chosen and its clocks (see runtime.sla)


EventVisibility = Literal["public", "internal"]


@dataclass(slots=True)
class EventRow:
    """One entry of a ticket's timeline; `seq` counts from 1 per ticket."""

    tenant_id: str
    ticket_id: str
    seq: int
    at: datetime
    kind: str  # created, updated, transitioned, commented, assigned, rule, denied, ...
    actor: str
    data: JSON
    visibility: EventVisibility = "internal"


@dataclass(slots=True)
class AuditDraft:
    """An audit entry before the store numbers and chains it."""

    at: datetime
    actor: str
    action: str  # create, update, transition, comment, assign, publish, migrate, ...
    subject: str  # ticket id, or `pack:<name>` for a publish
    before: JSON | None
    after: JSON | None


@dataclass(slots=True)
class AuditRow:
    """An audit entry as stored: numbered per tenant, hash-chained to the previous one."""

    tenant_id: str
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    before: JSON | None
    after: JSON | None
    prev_hash: str
    hash: str


# pending: waiting for its first or next attempt (also while a worker holds it under a
# lease, see `Tx.claim_outbox`); sent: delivered; dead: given up on, listable and retryable.
OutboxStatus = Literal["pending", "sent", "dead"]


@dataclass(slots=True)
class OutboxRow:
    """A message to deliver after the command commits (notification, webhook).

    A pending row is due at `next_attempt_at` (the store sets it to `created_at` when a
    row is added without one). `attempts` counts the claims of the row so far.
    """

    tenant_id: str
    id: str
    created_at: datetime
    kind: str  # notify, webhook
    ticket_id: str | None
    payload: JSON
    status: OutboxStatus = "pending"
    attempts: int = 0
    next_attempt_at: datetime | None = None
    # email, sms, wecom, dingtalk, slack, push, webhook, in_app; None for a webhook action
    channel: str | None = None
    recipient: str | None = None  # the user id a notification is for
    last_error: str | None = None  # why the last attempt failed
    delivered_at: datetime | None = None


@dataclass(slots=True)
class PersonRow:
    """One person of a tenant's directory (agent, manager, customer). `data` is the
    person's JSON document: the runtime validates it, the store only keeps it."""

    tenant_id: str
    id: str
    data: JSON
    updated_at: datetime


TimerStatus = Literal["waiting", "fired", "cancelled"]


@dataclass(slots=True)
class TimerRow:
    """Something to do at `due_at`: a delayed rule, a scheduled event, an SLA point."""

    tenant_id: str
    id: str
    due_at: datetime
    kind: str  # rule, event, sla
    ticket_id: str | None
    payload: JSON
    key: str = ""  # lets a later command cancel timers it made obsolete
    status: TimerStatus = "waiting"
    fired_at: datetime | None = None


@dataclass(slots=True)
class PackVersionRow:
    """One published, immutable version of a tenant's pack."""

    tenant_id: str
    pack: str
    version: int
    published_at: datetime
    published_by: str
    document: JSON  # the validated model, dumped by alias
    digest: str  # sha256 of the canonical document, to skip republishing the same pack


@dataclass(slots=True)
class TokenRow:
    """An API token: the secret is never stored, only its sha256 (`hash`). `id` is the
    public part shown in listings and used to revoke it."""

    tenant_id: str
    id: str
    hash: str
    user_id: str
    roles: list[str]
    name: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


@dataclass(slots=True)
class DraftRow:
    """A pack being edited in the builder: its files (name → text) as the admin wrote them,
    comments included. `revision` counts saves from 1; a save names the revision it read."""

    tenant_id: str
    pack: str
    files: dict[str, str]
    revision: int
    updated_at: datetime
    updated_by: str


IntakeOutcome = Literal["created", "attached", "commented", "resolved", "annotated"]


@dataclass(slots=True)
class IntakeRow:
    """One item received by an intake channel (web form, email, QR form, alarm), kept
    under its idempotency `key` so a redelivery returns the first outcome."""

    tenant_id: str
    key: str
    channel: str
    received_at: datetime
    outcome: str
    ticket_id: str | None = None
    data: JSON = field(default_factory=dict)


@dataclass(slots=True)
class AlarmRow:
    """A monitoring alarm being tracked: repeats of `key` within the dedup window attach
    to `ticket_id` instead of opening new tickets."""

    tenant_id: str
    key: str
    ticket_id: str
    first_at: datetime
    last_at: datetime
    count: int = 1
    resolved_at: datetime | None = None


@dataclass(slots=True)
class AssetRow:
    """A tenant's asset (machine, room, device) as its QR code names it. `data` holds its
    type, name, the template its QR form opens and values to prefill."""

    tenant_id: str
    code: str
    data: JSON
    updated_at: datetime


# -- queries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeeClause:
    """One way an actor may see tickets; a query returns tickets matching any clause.

    `kind`: `all` every ticket; `requester` tickets whose requester is one of `values`;
    `assignee` tickets assigned to one of `values`; `team` tickets of one of `values`.
    `templates` limits the clause to those templates (None: every template).
    """

    kind: Literal["all", "requester", "assignee", "team"]
    values: tuple[str, ...] = ()
    templates: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """Filters of a ticket listing. Empty tuples mean no filter on that column.

    Results are ordered by (created_at, id); `after` is the (created_at, id) of the last
    row of the previous page.
    """

    see: tuple[SeeClause, ...]
    states: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    requesters: tuple[str, ...] = ()
    text: str | None = None  # matched case-insensitively against search_text
    closed: bool | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 50


# -- errors ---------------------------------------------------------------------------------


class TicketflowError(Exception):
    """Base of every error a runtime command raises; `code` is stable for API clients."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(TicketflowError):
    """No such ticket for this tenant, or the actor may not see it (indistinguishable)."""

    code = "not-found"


class PermissionDenied(TicketflowError):
    """The actor may see the ticket but not do this."""

    code = "permission-denied"


class InvalidFields(TicketflowError):
    """Field values broke the template's rules; `problems` lists every failing field."""

    code = "invalid-fields"

    def __init__(self, message: str, problems: list[FieldProblem]) -> None:
        super().__init__(message, problems=problems)
        self.problems = problems


class TransitionUnavailable(TicketflowError):
    """The transition does not exist from the ticket's state, or its guard is false."""

    code = "transition-unavailable"


class Conflict(TicketflowError):
    """The ticket changed since it was read; read it again and retry."""

    code = "conflict"


class PublishRefused(TicketflowError):
    """A pack version cannot be published (invalid, or states in use vanish unmapped)."""

    code = "publish-refused"


class InvalidCommand(TicketflowError):
    """The command itself is malformed (unknown template, bad argument)."""

    code = "invalid-command"
