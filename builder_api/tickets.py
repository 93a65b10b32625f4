"""Runtime endpoints: what agent desks, engineers' phones and the customer portal call.

Every handler is a thin call into the embedding API with the caller's actor, so a response
is filtered by the caller's permissions exactly as `Runtime` filters it; this module adds
only the HTTP shapes (bodies, query parameters, headers).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, patch, post
from litestar.params import HeaderParameter, JSONBody, QueryParameter

from builder_api.deps import PathStr, Rt, Who
from builder_api.models import (
    AddComment,
    Assign,
    BulkAssign,
    BulkCreate,
    BulkItemOut,
    BulkTransition,
    ClockOut,
    CreateTicket,
    TakeTransition,
    TicketOut,
    TicketPage,
    TimelineOut,
    Transfer,
    TransitionOut,
    UpdateTicket,
    bulk_out,
)
from builder_api.problems import ERRORS

TENANT_PATH = "/api/v1/tenants/{tenant:str}"
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="A retry with the same key returns the first ticket instead of a new one.",
        required=False,
    ),
]
SlaState = Annotated[
    str | None,
    QueryParameter(
        name="sla",
        description="Only tickets with a clock in this state.",
        required=False,
        pattern="^(running|paused|warning|breached|met|stopped|idle)$",
    ),
]


class TicketController(Controller):
    path = TENANT_PATH + "/tickets"
    tags = ["tickets"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @post("/", sync_to_thread=True, responses=ERRORS, status_code=201, summary="Open a ticket")
    def create_ticket(
        self, rt: Rt, caller: Who, data: JSONBody[CreateTicket], idempotency_key: IdempotencyKey
    ) -> TicketOut:
        t = rt.create(
            data.template,
            data.fields,
            caller.actor,
            channel=data.channel,
            title=data.title,
            idempotency_key=idempotency_key,
            requester=data.requester,
        )
        return TicketOut.of(t)

    @get("/", sync_to_thread=True, responses=ERRORS, summary="List tickets the caller may see")
    def list_tickets(
        self,
        rt: Rt,
        caller: Who,
        states: Annotated[
            list[str] | None,
            QueryParameter(name="state", required=False, description="Only these states."),
        ] = None,
        template: Annotated[list[str] | None, QueryParameter(required=False)] = None,
        assignee: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
        team: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
        requester: Annotated[str | None, QueryParameter(required=False, max_length=200)] = None,
        q: Annotated[
            str | None,
            QueryParameter(required=False, max_length=200, description="Text search."),
        ] = None,
        closed: Annotated[bool | None, QueryParameter(required=False)] = None,
        sla: SlaState = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, QueryParameter(required=False, max_length=500)] = None,
    ) -> TicketPage:
        page = rt.query(
            caller.actor,
            states=states or (),
            templates=template or (),
            assignee=assignee,
            team=team,
            requester=requester,
            text=q,
            closed=closed,
            sla_state=sla,
            limit=limit,
            cursor=cursor,
        )
        return TicketPage.of(page)

    @get("/{ticket_id:str}", sync_to_thread=True, responses=ERRORS, summary="One ticket")
    def get_ticket(self, rt: Rt, caller: Who, ticket_id: PathStr) -> TicketOut:
        return TicketOut.of(rt.get(ticket_id, caller.actor))

    @patch("/{ticket_id:str}", sync_to_thread=True, responses=ERRORS, summary="Change field values")
    def update_ticket(
        self, rt: Rt, caller: Who, ticket_id: PathStr, data: JSONBody[UpdateTicket]
    ) -> TicketOut:
        t = rt.update(ticket_id, data.fields, caller.actor, data.expected_version)
        return TicketOut.of(t)

    @get(
        "/{ticket_id:str}/transitions",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Transitions the caller may take now, and why others are not available",
    )
    def list_transitions(
        self,
        rt: Rt,
        caller: Who,
        ticket_id: PathStr,
        include_hidden: Annotated[bool, QueryParameter(required=False)] = False,
    ) -> list[TransitionOut]:
        found = rt.available_transitions(ticket_id, caller.actor, include_hidden)
        return [TransitionOut.of(a) for a in found]

    @post(
        "/{ticket_id:str}/transitions/{name:str}",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Take a transition",
    )
    def take_transition(
        self, rt: Rt, caller: Who, ticket_id: PathStr, name: PathStr, data: JSONBody[TakeTransition]
    ) -> TicketOut:
        t = rt.transition(
            ticket_id, name, caller.actor, data.fields, data.comment, data.expected_version
        )
        return TicketOut.of(t)

    @post(
        "/{ticket_id:str}/comments",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=201,
        summary="Comment",
    )
    def add_comment(
        self, rt: Rt, caller: Who, ticket_id: PathStr, data: JSONBody[AddComment]
    ) -> TicketOut:
        t = rt.comment(ticket_id, data.body, caller.actor, data.internal, data.attachments)
        return TicketOut.of(t)

    @post(
        "/{ticket_id:str}/assign",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Assign",
    )
    def assign_ticket(
        self, rt: Rt, caller: Who, ticket_id: PathStr, data: JSONBody[Assign]
    ) -> TicketOut:
        return TicketOut.of(rt.assign(ticket_id, data.to, caller.actor, data.expected_version))

    @post(
        "/{ticket_id:str}/claim",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Claim from a pool (the first claim wins)",
    )
    def claim_ticket(self, rt: Rt, caller: Who, ticket_id: PathStr) -> TicketOut:
        return TicketOut.of(rt.claim(ticket_id, caller.actor))

    @post(
        "/{ticket_id:str}/transfer",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Hand to another team",
    )
    def transfer_ticket(
        self, rt: Rt, caller: Who, ticket_id: PathStr, data: JSONBody[Transfer]
    ) -> TicketOut:
        t = rt.transfer(
            ticket_id, data.team, caller.actor, data.note, data.reroute, data.expected_version
        )
        return TicketOut.of(t)

    @get(
        "/{ticket_id:str}/timeline",
        sync_to_thread=True,
        responses=ERRORS,
        summary="History as the caller sees it",
    )
    def get_timeline(self, rt: Rt, caller: Who, ticket_id: PathStr) -> list[TimelineOut]:
        return [TimelineOut.of(e) for e in rt.timeline(ticket_id, caller.actor)]

    @get("/{ticket_id:str}/sla", sync_to_thread=True, responses=ERRORS, summary="SLA clocks")
    def get_sla(self, rt: Rt, caller: Who, ticket_id: PathStr) -> list[ClockOut]:
        return [ClockOut.of(c) for c in rt.sla(ticket_id, caller.actor)]

    # -- bulk: each item is its own transaction; one failure does not undo the others ------

    @post(
        "/bulk/create",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Open many tickets",
    )
    def bulk_create_tickets(
        self, rt: Rt, caller: Who, data: JSONBody[BulkCreate]
    ) -> list[BulkItemOut]:
        items: list[dict[str, Any]] = [i.model_dump() for i in data.items]
        return bulk_out(rt.bulk_create(items, caller.actor))

    @post(
        "/bulk/assign",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Assign many tickets",
    )
    def bulk_assign_tickets(
        self, rt: Rt, caller: Who, data: JSONBody[BulkAssign]
    ) -> list[BulkItemOut]:
        return bulk_out(rt.bulk_assign(data.ticket_ids, data.to, caller.actor))

    @post(
        "/bulk/transition",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=200,
        summary="Take one transition on many tickets",
    )
    def bulk_transition_tickets(
        self, rt: Rt, caller: Who, data: JSONBody[BulkTransition]
    ) -> list[BulkItemOut]:
        found = rt.bulk_transition(data.ticket_ids, data.transition, caller.actor, data.fields)
        return bulk_out(found)
