"""The rules that show, require and lock a template's fields: exported for a UI (so it
knows which answers make it re-ask) and evaluated on the server with the engine's compiled
conditions, exactly as the runtime evaluates them.

Rule kinds: `visible_if` (shown only while true), `required_if` (required while true),
`readonly_if` (cannot be changed while true), `required_in` (required in the listed
states; its condition reads `state in [...]`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, TypedDict

from dsl.expressions import ExpressionError, names_in, parse_expression
from engine.blueprint import Blueprint, Condition, TemplateBp
from engine.expr_eval import EvalError, env_key
from runtime import access
from runtime.actors import Actor

RuleKind = Literal["visible_if", "required_if", "readonly_if", "required_in"]
KINDS: tuple[RuleKind, ...] = ("visible_if", "required_if", "readonly_if")


class FormRule(TypedDict):
    """One condition on one field.

    `depends_on`: the fields (of those the reader may see) whose values the condition
    reads; a UI re-evaluates the rule when one of them changes. `context`: the other names
    it reads (`state`, `now`, `actor.*`, `ticket.*`, `sla.*`), known to the server; a UI
    that cannot resolve them asks `evaluate_rules`.
    """

    field: str
    kind: RuleKind
    condition: str
    depends_on: list[str]
    context: list[str]
    states: list[str]  # required_in: the states; otherwise empty


class RuleOutcome(TypedDict):
    """Which fields the rules hide, require and lock for the given values (field order)."""

    hidden: list[str]
    required: list[str]
    readonly: list[str]


def form_rules(tpl: TemplateBp, fields: Iterable[str], visible: frozenset[str]) -> list[FormRule]:
    """The rules of `fields` (in that order); `visible`: the fields the reader may see."""
    rules: list[FormRule] = []
    for name in fields:
        spec = tpl.fields[name]
        for kind in KINDS:
            text = getattr(spec, kind, None)
            if text:
                depends_on, context = _reads(text, tpl.field_names, visible)
                rules.append(
                    FormRule(
                        field=name,
                        kind=kind,
                        condition=text,
                        depends_on=depends_on,
                        context=context,
                        states=[],
                    )
                )
        if spec.required_in:
            states = list(spec.required_in)
            text = f"state in [{', '.join(json.dumps(s) for s in states)}]"
            rules.append(
                FormRule(
                    field=name,
                    kind="required_in",
                    condition=text,
                    depends_on=[],
                    context=["state"],
                    states=states,
                )
            )
    return rules


def _reads(
    text: str, fields: frozenset[str], visible: frozenset[str]
) -> tuple[list[str], list[str]]:
    """(fields read that the reader may see, other names read), each once, in order."""
    try:
        keys = [env_key(n, fields) for n in names_in(parse_expression(text))]
    except ExpressionError:
        return [], []  # cannot happen for a compiled blueprint; nothing to report then
    unique = list(dict.fromkeys(keys))
    return [k for k in unique if k in visible], [k for k in unique if k not in fields]


def evaluate_rules(
    bp: Blueprint,
    tpl: TemplateBp,
    values: Mapping[str, Any],
    actor: Actor,
    now: datetime,
    state: str,
) -> RuleOutcome:
    """Evaluate every field rule on `values` (stored JSON forms, possibly half-filled) in
    `state`, for fields the actor may read.

    A value that cannot be read yet (a date still being typed) counts as empty. A
    condition that fails to evaluate (a number out of range) leaves the field visible, not
    required by it, and not locked by it.
    """
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    env = _env(tpl, values, actor, now, state)
    readable = access.readable(bp, actor, tpl, state)
    writable = access.writable(bp, actor, tpl, state)
    order = [name for name in tpl.fields if name in readable]
    required = {*tpl.required, *tpl.required_in.get(state, ())}
    required |= {f for f, cond in tpl.required_if if _holds(cond, env, False)}
    computed = {name for name, _cond in tpl.computed}
    return RuleOutcome(
        hidden=[
            f for f in order if f in tpl.visible_if and not _holds(tpl.visible_if[f], env, True)
        ],
        required=[f for f in order if f in required],
        readonly=[
            f
            for f in order
            if f in computed
            or f not in writable
            or (f in tpl.readonly_if and _holds(tpl.readonly_if[f], env, False))
        ],
    )


def _env(
    tpl: TemplateBp, values: Mapping[str, Any], actor: Actor, now: datetime, state: str
) -> dict[str, Any]:
    """What conditions read: the values as the runtime converts them, the state, `now` in
    the pack's time zone, the actor. Ticket attributes (`ticket.*`) are unknown: null."""
    env: dict[str, Any] = {}
    for name, value in values.items():
        if name in tpl.field_names and value is not None:
            try:
                env.update(tpl.form.to_env({name: value}))
            except ValueError:
                continue
    env["state"] = state
    env["now"] = now.astimezone(tpl.tz)
    env.update(actor.env())
    return env


def _holds(condition: Condition, env: Mapping[str, Any], failed: bool) -> bool:
    try:
        return condition.holds(env)
    except (EvalError, TypeError, ValueError, ArithmeticError):
        return failed
