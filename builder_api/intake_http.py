"""Intake endpoints: the public web form and QR form (no token: the tenant's intake config
says which role a visitor acts as, and a captcha can be required), the inbound email and
alarm webhooks a mail gateway or a monitoring system calls (`ticketflow:intake`), the
asset catalogue (`ticketflow:admin`) and a ticket's occurrences. Every intake item is
idempotent by key: a redelivery answers 200 with the first outcome and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get, post, put
from litestar.params import HeaderParameter, JSONBody, QueryParameter, RawBody
from pydantic import BaseModel, Field

from builder_api.auth import require_admin, require_intake
from builder_api.deps import Locale, PathStr, Rt, Who
from builder_api.models import Body
from builder_api.problems import ERRORS, ApiError, problem_responses
from builder_api.tickets import TENANT_PATH
from runtime.intake import IntakeResult
from runtime.intake_assets import Asset
from runtime.records import IntakeRow

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=500,
        description="A redelivery with the same key returns the first outcome.",
    ),
]
PUBLIC_ERRORS = problem_responses(400, 403, 404, 409, 413, 422)


class FormSubmission(Body):
    fields: dict[str, Any] = Field(description="The form's values by field name.")
    captcha: str | None = Field(None, max_length=4096, description="The captcha's answer.")
    name: str | None = Field(None, max_length=200, description="Who submits, for replies.")
    email: str | None = Field(None, max_length=254)


class IntakeOut(BaseModel):
    outcome: Literal["created", "attached", "commented", "resolved", "annotated", "ignored"]
    key: str
    ticket_id: str | None
    ref: str | None
    duplicate: bool = Field(description="True when the key was seen before: nothing changed.")
    occurrences: int | None = Field(description="Alarms: how often it fired on the ticket.")
    note: str | None

    @classmethod
    def of(cls, r: IntakeResult) -> IntakeOut:
        return cls(
            outcome=r.outcome,
            key=r.key,
            ticket_id=r.ticket_id,
            ref=r.ref,
            duplicate=r.duplicate,
            occurrences=r.occurrences,
            note=r.note,
        )


@dataclass(frozen=True, slots=True)
class PublicFormOut:
    """A public form: `captcha` says submissions must carry a captcha answer."""

    template: str
    schema: dict[str, Any]
    captcha: bool


class AssetOut(BaseModel):
    code: str
    type: str
    template: str
    name: str | None
    fields: dict[str, Any]

    @classmethod
    def of(cls, a: Asset) -> AssetOut:
        return cls(code=a.code, type=a.type, template=a.template, name=a.name, fields=a.fields)


@dataclass(frozen=True, slots=True)
class QrFormOut:
    """An asset's form: `form_data` holds the values to prefill (react-jsonschema-form)."""

    asset: AssetOut
    template: str
    schema: dict[str, Any]
    form_data: dict[str, Any]


class OccurrenceOut(BaseModel):
    key: str
    channel: str
    received_at: datetime
    outcome: str
    data: dict[str, Any]

    @classmethod
    def of(cls, row: IntakeRow) -> OccurrenceOut:
        return cls(
            key=row.key,
            channel=row.channel,
            received_at=row.received_at,
            outcome=row.outcome,
            data=row.data,
        )


class AssetCount(BaseModel):
    stored: int


def _answer(result: IntakeResult) -> Response[IntakeOut]:
    # A new item is 201; a redelivery (or an item that only joined an existing ticket) 200.
    status = 201 if result.outcome == "created" and not result.duplicate else 200
    return Response(IntakeOut.of(result), status_code=status)


class PublicIntakeController(Controller):
    """No token: what a customer's browser or phone calls."""

    path = TENANT_PATH + "/public"
    tags = ["intake"]  # noqa: RUF012 (declared by Controller as an instance variable)
    opt = {"public": True}  # noqa: RUF012
    security = [{}]  # noqa: RUF012 (no credentials)

    @get(
        "/forms/{template:str}",
        sync_to_thread=True,
        responses=PUBLIC_ERRORS,
        summary="A public form",
    )
    def public_form(
        self, rt: Rt, tenant: PathStr, template: PathStr, locale: Locale = None
    ) -> PublicFormOut:
        found = rt.public_form(tenant, template, locale)
        return PublicFormOut(template=found.template, schema=found.schema, captcha=found.captcha)

    @post(
        "/forms/{template:str}",
        sync_to_thread=True,
        responses=PUBLIC_ERRORS,
        status_code=201,
        summary="Submit a public form",
    )
    def submit_public_form(
        self,
        rt: Rt,
        tenant: PathStr,
        template: PathStr,
        data: JSONBody[FormSubmission],
        key: IdempotencyKey = None,
    ) -> Response[IntakeOut]:
        actor = rt.intake_actor(tenant, "web", name=data.name, email=data.email)
        result = rt.submit_form(
            tenant, template, data.fields, actor, channel="web", key=key, captcha=data.captcha
        )
        return _answer(result)

    @get("/qr/{code:str}", sync_to_thread=True, responses=PUBLIC_ERRORS, summary="Scan an asset")
    def qr_form(self, rt: Rt, tenant: PathStr, code: PathStr, locale: Locale = None) -> QrFormOut:
        actor = rt.intake_actor(tenant, "qr")
        if locale:
            actor = replace(actor, locale=locale)
        found = rt.qr_form(tenant, code, actor)
        return QrFormOut(
            asset=AssetOut.of(found.asset),
            template=found.template,
            schema=found.schema,
            form_data=found.form_data,
        )

    @post(
        "/qr/{code:str}",
        sync_to_thread=True,
        responses=PUBLIC_ERRORS,
        status_code=201,
        summary="Report on a scanned asset",
    )
    def submit_qr_form(
        self,
        rt: Rt,
        tenant: PathStr,
        code: PathStr,
        data: JSONBody[FormSubmission],
        key: IdempotencyKey = None,
    ) -> Response[IntakeOut]:
        actor = rt.intake_actor(tenant, "qr", name=data.name, email=data.email)
        found = rt.qr_form(tenant, code, actor)
        fields = {**found.form_data, **data.fields}
        result = rt.submit_form(tenant, found.template, fields, actor, channel="qr", key=key)
        return _answer(result)


class IntakeController(Controller):
    """What a mail gateway and a monitoring system call (`ticketflow:intake`)."""

    path = TENANT_PATH + "/intake"
    tags = ["intake"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @post(
        "/email",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=201,
        summary="An inbound email (the raw RFC 822 message as the body)",
    )
    def receive_email(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        body: RawBody,
        key: IdempotencyKey = None,
        recipient: Annotated[
            str | None,
            QueryParameter(
                required=False, max_length=254, description="The envelope recipient (RCPT TO)."
            ),
        ] = None,
    ) -> Response[IntakeOut]:
        require_intake(caller)
        if not body:
            raise ApiError(400, "invalid-request", "the body must be the RFC 822 message")
        return _answer(rt.receive_email(tenant, bytes(body), key=key, recipient=recipient))

    @post(
        "/alarms/{source:str}",
        sync_to_thread=True,
        responses=ERRORS,
        status_code=201,
        summary="An alarm from a monitoring system (repeats attach; a recovery resolves)",
    )
    def receive_alarm(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        source: PathStr,
        data: JSONBody[dict[str, Any]],
        key: IdempotencyKey = None,
    ) -> Response[IntakeOut]:
        require_intake(caller)
        return _answer(rt.receive_alarm(tenant, source, data, key=key))


class AssetController(Controller):
    path = TENANT_PATH
    tags = ["intake"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @get("/assets", sync_to_thread=True, responses=ERRORS, summary="The asset catalogue")
    def list_assets(self, rt: Rt, caller: Who, tenant: PathStr) -> list[AssetOut]:
        require_admin(caller)
        return [AssetOut.of(a) for a in rt.assets(tenant)]

    @put(
        "/assets",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Add or replace assets by code (all or nothing)",
    )
    def put_assets(
        self, rt: Rt, caller: Who, tenant: PathStr, data: JSONBody[list[dict[str, Any]]]
    ) -> AssetCount:
        require_admin(caller)
        return AssetCount(stored=rt.put_assets(tenant, data))

    @get(
        "/tickets/{ticket_id:str}/occurrences",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Intake items that reached a ticket (alarm repeats, email replies)",
    )
    def list_occurrences(
        self,
        rt: Rt,
        caller: Who,
        ticket_id: PathStr,
        after: Annotated[str | None, QueryParameter(required=False, max_length=600)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[OccurrenceOut]:
        rows = rt.occurrences(ticket_id, caller.actor, after, limit)
        return [OccurrenceOut.of(r) for r in rows]
