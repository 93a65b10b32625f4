"""Form schemas for react-jsonschema-form: what a builder previews and an app renders.

    form(bp, "store_repair", state="resolved", role="store_manager", locale="zh")
    transition_form(bp, "store_repair", "wait_parts", actor, "en")
    evaluate_rules(bp, "store_repair", values, actor, now, state="new")

`schema` is the template's JSON Schema (`engine.form_schema`) filtered exactly as the
runtime filters it (`Runtime.form_schema`): fields the reader may not read are left out,
fields it may not write are readOnly. `uiSchema` is described in `form_ui`, `rules` in
`form_rules`.

Who reads: `role` is a role name, an `Actor`, or None for the builder's own view (every
field, all writable). Labels are in `locale`, else the actor's, else the pack's first.
Errors are the runtime's: NotFound (template, transition), InvalidCommand (state, role),
PermissionDenied (a transition the reader's roles may not take).
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, TypedDict

from builder_api.form_rules import FormRule, RuleOutcome, form_rules
from builder_api.form_rules import evaluate_rules as _evaluate
from builder_api.form_ui import UiSchema, field_ui
from dsl.diagnostics import did_you_mean
from engine.blueprint import Blueprint, TemplateBp, TransitionBp, compile_pack
from engine.form_schema import localized
from engine.model import Pack
from runtime import access
from runtime.actors import Actor
from runtime.commands import resolve_template
from runtime.records import InvalidCommand, NotFound, PermissionDenied

__all__ = [
    "FormRule",
    "FormSchema",
    "RuleOutcome",
    "evaluate_rules",
    "form",
    "transition_form",
]

PREVIEW_ID = "builder:preview"  # the id of the actor a bare role name stands for


class FormSchema(TypedDict):
    """A form ready for react-jsonschema-form, with the rules a UI re-evaluates."""

    template: str
    state: str | None  # the state the form is for (a transition form: where it is taken)
    locale: str
    transition: str | None  # set for a transition's form
    comment: Literal["required", "optional", "none"] | None  # a transition's comment mode
    schema: dict[str, Any]
    uiSchema: dict[str, Any]
    rules: list[FormRule]


def form(
    source: Blueprint | Pack,
    template: str,
    *,
    state: str | None = None,
    role: str | Actor | None = None,
    locale: str | None = None,
) -> FormSchema:
    """The form of `template` in `state` (the initial state when omitted) for `role`."""
    bp = blueprint(source)
    _bp, tpl = resolve_template([bp], template)
    actor = _reader(bp, role)
    at = _state(tpl, state)
    lang = locale or actor.locale or bp.model.locales[0]
    schema = tpl.form.json_schema(
        state=at, writable=access.writable(bp, actor, tpl, at) & tpl.field_names, locale=lang
    )
    readable = access.readable(bp, actor, tpl, at)
    order = [name for name in tpl.fields if name in readable]
    schema = _only(schema, order)
    return FormSchema(
        template=tpl.name,
        state=at,
        locale=lang,
        transition=None,
        comment=None,
        schema=schema,
        uiSchema=_ui(bp, tpl, schema, order, lang),
        rules=form_rules(tpl, order, readable),
    )


def transition_form(
    source: Blueprint | Pack,
    template: str,
    transition: str,
    actor: str | Actor | None,
    locale: str | None = None,
    *,
    state: str | None = None,
) -> FormSchema:
    """The form asked when taking `transition`: only the template fields its `form:`
    lists, in that order, all writable (the runtime lets a transition write them); those
    it `requires`, and those required after the move, are required.

    `state` is the state it is taken from (checked against its `from`); by default its
    only source state, if it has one.
    """
    bp = blueprint(source)
    _bp, tpl = resolve_template([bp], template)
    reader = _reader(bp, actor)
    tr = _transition(tpl, transition)
    _may_take(bp, reader, tr)
    at = _source(tpl, tr, state)
    lang = locale or reader.locale or bp.model.locales[0]
    fields = [name for name in tr.form if name in tpl.field_names]
    schema = _only(tpl.form.json_schema(state=tr.to, required=tr.requires, locale=lang), fields)
    title = localized(tr.title, lang, bp.model.locales) or tr.name
    schema["title"] = title
    schema.pop("description", None)  # the template's, not the transition's
    ui = _ui(bp, tpl, schema, fields, lang)
    ui["ui:title"] = title
    ui.pop("ui:description", None)
    readable = access.readable(bp, reader, tpl, at or tpl.workflow.initial)
    return FormSchema(
        template=tpl.name,
        state=at,
        locale=lang,
        transition=tr.name,
        comment=tr.comment,
        schema=schema,
        uiSchema=ui,
        rules=form_rules(tpl, fields, readable | frozenset(fields)),
    )


def evaluate_rules(
    source: Blueprint | Pack,
    template: str,
    values: Mapping[str, Any],
    actor: str | Actor | None,
    now: datetime,
    *,
    state: str | None = None,
) -> RuleOutcome:
    """Which fields are hidden, required and read-only for these values in `state` (the
    initial state when omitted), as the engine evaluates the template's rules."""
    bp = blueprint(source)
    _bp, tpl = resolve_template([bp], template)
    return _evaluate(bp, tpl, values, _reader(bp, actor), now, _state(tpl, state))


# -- helpers ---------------------------------------------------------------------------------

# A builder asks for many forms of one draft: compile each pack once (by identity).
_COMPILED: dict[int, tuple[weakref.ref[Pack], Blueprint]] = {}
_COMPILED_MAX = 32


def blueprint(source: Blueprint | Pack) -> Blueprint:
    """The blueprint to read forms from; a pack (one that passed its checks) is compiled."""
    if isinstance(source, Blueprint):
        return source
    hit = _COMPILED.get(id(source))
    if hit is not None and hit[0]() is source:
        return hit[1]
    bp = compile_pack(source)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[id(source)] = (weakref.ref(source), bp)
    return bp


def _reader(bp: Blueprint, role: str | Actor | None) -> Actor:
    if isinstance(role, Actor):
        return role
    if role is None:
        return Actor.system()
    if role not in bp.roles:
        hint = did_you_mean(role, bp.roles)
        raise InvalidCommand(f"no role '{role}'" + (f"; {hint}" if hint else ""), role=role)
    return Actor.of(PREVIEW_ID, [role])


def _state(tpl: TemplateBp, state: str | None) -> str:
    if state is None:
        return tpl.workflow.initial
    if state not in tpl.workflow.states:
        hint = did_you_mean(state, tpl.workflow.states)
        raise InvalidCommand(
            f"workflow '{tpl.workflow.name}' has no state '{state}'"
            + (f"; {hint}" if hint else ""),
            state=state,
        )
    return state


def _transition(tpl: TemplateBp, name: str) -> TransitionBp:
    for tr in tpl.workflow.index.values():
        if tr.name == name:
            return tr
    hint = did_you_mean(name, tpl.workflow.names())
    raise NotFound(
        f"workflow '{tpl.workflow.name}' has no transition '{name}'"
        + (f"; {hint}" if hint else ""),
        transition=name,
    )


def _source(tpl: TemplateBp, tr: TransitionBp, state: str | None) -> str | None:
    if state is None:
        return next(iter(tr.sources)) if len(tr.sources) == 1 else None
    _state(tpl, state)
    if state not in tr.sources:
        raise InvalidCommand(
            f"'{tr.name}' is not taken from state '{state}' "
            f"(it leaves {', '.join(sorted(tr.sources))})",
            state=state,
            transition=tr.name,
        )
    return state


def _may_take(bp: Blueprint, actor: Actor, tr: TransitionBp) -> None:
    """The role part of the runtime's permission check; `only` needs a ticket."""
    if actor.is_system:
        return
    allowed = tr.roles & actor.roles if tr.roles else actor.roles & bp.staff_roles
    if not allowed:
        who = ", ".join(sorted(tr.roles)) if tr.roles else "staff"
        raise PermissionDenied(
            f"'{tr.name}' may be taken by {who}", transition=tr.name, reason="role"
        )


def _only(schema: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of the form schema with only `fields` (in that order)."""
    props = schema.get("properties", {})
    keep = [name for name in fields if name in props]
    out = copy.deepcopy(dict(schema))  # the engine's schema is cached and shared
    out["properties"] = {name: out["properties"][name] for name in keep}
    out["required"] = [name for name in out.get("required", []) if name in keep]
    return out


def _ui(
    bp: Blueprint, tpl: TemplateBp, schema: Mapping[str, Any], order: list[str], locale: str
) -> UiSchema:
    locales = bp.model.locales
    ui: UiSchema = {"ui:order": list(order)}
    title = localized(tpl.model.title, locale, locales)
    if title:
        ui["ui:title"] = title
    description = localized(tpl.model.description, locale, locales)
    if description:
        ui["ui:description"] = description
    for name in order:
        prop = schema["properties"][name]
        ui[name] = field_ui(
            tpl.fields[name],
            prop,
            locale,
            locales,
            name=name,
            read_only=bool(prop.get("readOnly")),
        )
    return ui
