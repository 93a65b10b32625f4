"""Form endpoints: a template's form (JSON Schema plus a react-jsonschema-form UI schema and
its visibility / requiredness rules) for the caller, for a transition of a ticket, and — for
builders — as any role would see it."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import JSONBody, QueryParameter
from pydantic import Field

from builder_api.auth import require_admin
from builder_api.deps import Locale, PathStr, Rt, Who
from builder_api.forms import FormSchema, evaluate_rules, form, transition_form
from builder_api.models import Body
from builder_api.problems import ERRORS, ApiError
from builder_api.tickets import TENANT_PATH
from engine.blueprint import Blueprint
from runtime.api import Runtime
from runtime.commands import resolve_template

State = Annotated[
    str | None,
    QueryParameter(
        name="state",
        required=False,
        max_length=200,
        description="The state the form is for (the initial state when omitted).",
    ),
]
Pack = Annotated[
    str | None,
    QueryParameter(
        required=False, max_length=64, description="Which pack, when two have the template."
    ),
]


class RuleValues(Body):
    values: dict[str, Any] = Field(description="The form's values so far, by field name.")
    state: str | None = Field(None, max_length=200)


class RuleOutcome(Body):
    hidden: list[str]
    required: list[str]
    readonly: list[str]


def _template(rt: Runtime, tenant: str, template: str, pack: str | None) -> tuple[Blueprint, str]:
    bp, tpl = resolve_template(rt.current(tenant), f"{pack}/{template}" if pack else template)
    return bp, tpl.name


class FormController(Controller):
    path = TENANT_PATH
    tags = ["forms"]  # noqa: RUF012 (declared by Controller as an instance variable)

    @get(
        "/forms/{template:str}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="A template's form as the caller may fill it",
    )
    def get_form(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        template: PathStr,
        states: State = None,
        locale: Locale = None,
        pack: Pack = None,
    ) -> FormSchema:
        bp, name = _template(rt, tenant, template, pack)
        return form(bp, name, state=states, role=caller.actor, locale=locale)

    @post(
        "/forms/{template:str}/evaluate",
        sync_to_thread=True,
        status_code=200,
        responses=ERRORS,
        summary="Which fields are hidden, required or read-only for these values",
    )
    def evaluate_form(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        template: PathStr,
        data: JSONBody[RuleValues],
        pack: Pack = None,
    ) -> RuleOutcome:
        bp, name = _template(rt, tenant, template, pack)
        found = evaluate_rules(
            bp, name, data.values, caller.actor, rt.clock.now(), state=data.state
        )
        return RuleOutcome(**found)

    @get(
        "/tickets/{ticket_id:str}/transitions/{name:str}/form",
        sync_to_thread=True,
        responses=ERRORS,
        summary="The form a transition asks the caller to fill",
    )
    def get_transition_form(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        ticket_id: PathStr,
        name: PathStr,
        locale: Locale = None,
    ) -> FormSchema:
        ticket = rt.get(ticket_id, caller.actor)
        bp = rt.blueprint(tenant, ticket.pack, ticket.pack_version)
        return transition_form(bp, ticket.template, name, caller.actor, locale, state=ticket.state)

    @get(
        "/builder/packs/{pack:str}/forms/{template:str}",
        sync_to_thread=True,
        responses=ERRORS,
        summary="Preview a template's form as a role sees it (builders)",
    )
    def preview_form(
        self,
        rt: Rt,
        caller: Who,
        tenant: PathStr,
        pack: PathStr,
        template: PathStr,
        states: State = None,
        role: Annotated[
            str | None,
            QueryParameter(required=False, max_length=100, description="Preview as this role."),
        ] = None,
        locale: Locale = None,
    ) -> FormSchema:
        require_admin(caller)
        heads = rt.store_heads(tenant)
        if pack not in heads:
            raise ApiError(404, "not-found", f"no published pack '{pack}'")
        bp = rt.blueprint(tenant, pack, heads[pack])
        return form(bp, template, state=states, role=role, locale=locale)
