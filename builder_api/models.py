"""Request and response bodies of the runtime endpoints: the HTTP contract, kept apart
from the runtime's own dataclasses so the wire format changes only on purpose."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from builder_api.problems import status_of
from runtime.api import Availability, BulkResult, Page
from runtime.sla import ClockView
from runtime.tickets import Ticket, TimelineEntry

MAX_TEXT = 100_000


class Body(BaseModel):
    """Request bodies refuse keys they do not know: a typo is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------


class CreateTicket(Body):
    template: str = Field(min_length=1, max_length=200, description="Template name.")
    fields: dict[str, Any] = Field(default_factory=dict, description="Field values by name.")
    title: str | None = Field(None, max_length=500)
    channel: str | None = Field(None, max_length=50, description="Intake channel, e.g. `web`.")
    requester: str | None = Field(
        None, max_length=200, description="Open on someone's behalf (staff only)."
    )


class UpdateTicket(Body):
    fields: dict[str, Any] = Field(description="Values to change, by field name.")
    expected_version: int | None = Field(
        None, ge=1, description="Refuse with `conflict` unless the ticket is at this version."
    )


class TakeTransition(Body):
    fields: dict[str, Any] = Field(default_factory=dict, description="Values its form asks for.")
    comment: str | None = Field(None, max_length=MAX_TEXT)
    expected_version: int | None = Field(None, ge=1)


class AddComment(Body):
    body: str = Field(min_length=1, max_length=MAX_TEXT)
    internal: bool = Field(False, description="An internal note, visible to staff only.")
    attachments: list[dict[str, Any]] | None = None


class Assign(Body):
    to: str = Field(
        min_length=1,
        max_length=200,
        description="`user:<id>` (or a bare id), `role:<name>`, `team:<name>` or `none`.",
    )
    expected_version: int | None = Field(None, ge=1)


class Transfer(Body):
    team: str = Field(min_length=1, max_length=200)
    note: str | None = Field(None, max_length=MAX_TEXT)
    reroute: bool = Field(True, description="Let routing pick the new assignee in the team.")
    expected_version: int | None = Field(None, ge=1)


class BulkCreateItem(CreateTicket):
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class BulkCreate(Body):
    items: list[BulkCreateItem] = Field(min_length=1, max_length=500)


class BulkAssign(Body):
    ticket_ids: list[str] = Field(min_length=1, max_length=500)
    to: str = Field(min_length=1, max_length=200)


class BulkTransition(Body):
    ticket_ids: list[str] = Field(min_length=1, max_length=500)
    transition: str = Field(min_length=1, max_length=200)
    fields: dict[str, Any] = Field(default_factory=dict)


# -- responses ----------------------------------------------------------------------------


class TicketOut(BaseModel):
    """A ticket as the caller may see it: fields it may not read are absent."""

    id: str
    ref: str
    template: str
    state: str
    version: int
    fields: dict[str, Any]
    title: str | None
    requester: str | None
    assignee: str | None
    team: str | None
    channel: str | None
    watchers: list[str]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    state_entered_at: datetime
    closed: bool
    pack: str
    pack_version: int
    parent_id: str | None
    link: str | None

    @classmethod
    def of(cls, t: Ticket) -> TicketOut:
        # Field by field: Ticket.to_dict (dataclasses.asdict) deep-copies every value,
        # which cost a create request ~40 us; the view is the caller's already.
        return cls.model_construct(**{name: getattr(t, name) for name in _TICKET_FIELDS})


_TICKET_FIELDS = tuple(TicketOut.model_fields)


class TicketPage(BaseModel):
    items: list[TicketOut]
    cursor: str | None = Field(
        description="Pass back as `cursor` for the next page; null at the end."
    )

    @classmethod
    def of(cls, page: Page) -> TicketPage:
        return cls(items=[TicketOut.of(t) for t in page.items], cursor=page.cursor)


class TransitionOut(BaseModel):
    name: str
    title: Any
    to: str
    allowed: bool
    reason: str | None
    missing: list[str] = Field(description="Fields to fill before it can be taken.")
    form: list[str] = Field(description="Fields its form asks for.")
    comment: Literal["required", "optional", "none"]

    @classmethod
    def of(cls, a: Availability) -> TransitionOut:
        return cls(
            name=a.name,
            title=a.title,
            to=a.to,
            allowed=a.allowed,
            reason=a.reason,
            missing=list(a.missing),
            form=list(a.form),
            comment=a.comment,
        )


class ClockOut(BaseModel):
    """One SLA clock; durations in seconds of business time."""

    metric: str
    policy: str
    state: Literal["running", "paused", "warning", "breached", "met", "stopped", "idle"]
    target_seconds: float
    elapsed_seconds: float
    remaining_seconds: float
    due: datetime | None
    priority: Any
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, c: ClockView) -> ClockOut:
        return cls(
            metric=c.metric,
            policy=c.policy,
            state=c.state,
            target_seconds=c.target.total_seconds(),
            elapsed_seconds=c.elapsed.total_seconds(),
            remaining_seconds=c.remaining.total_seconds(),
            due=c.due,
            priority=c.priority,
            history=c.history,
        )


class TimelineOut(BaseModel):
    seq: int
    at: datetime
    kind: str
    actor: str
    data: dict[str, Any]
    visibility: Literal["public", "internal"]

    @classmethod
    def of(cls, e: TimelineEntry) -> TimelineOut:
        visibility: Literal["public", "internal"] = (
            "public" if e.visibility == "public" else "internal"
        )
        return cls.model_construct(
            seq=e.seq, at=e.at, kind=e.kind, actor=e.actor, data=e.data, visibility=visibility
        )


class BulkError(BaseModel):
    code: str
    detail: str
    status: int


class BulkItemOut(BaseModel):
    index: int
    ok: bool
    ticket: TicketOut | None = None
    error: BulkError | None = None


def bulk_out(results: list[BulkResult]) -> list[BulkItemOut]:
    out = []
    for r in results:
        if r.error is None:
            assert r.ticket is not None
            out.append(BulkItemOut(index=r.index, ok=True, ticket=TicketOut.of(r.ticket)))
        else:
            err = BulkError(code=r.error.code, detail=r.error.message, status=status_of(r.error))
            out.append(BulkItemOut(index=r.index, ok=False, error=err))
    return out
