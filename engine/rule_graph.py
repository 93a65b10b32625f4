"""Which rules can set off which: the static half of the rule-chain bound.

The runtime stops any chain after a fixed depth; here a loop that would always run to that
depth is refused when the pack is validated — a cycle of rules that have no condition and
no delay, linked by actions whose events always fire the next rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.blueprint import RuleBp, compile_rule
from engine.model import (
    AssignAction,
    CommentAction,
    CreateTicketAction,
    Pack,
    RaisePriorityAction,
    SetAction,
    TransitionAction,
)

ASSIGNMENT = frozenset({"assignee", "team"})


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event an action always causes: its key, the template of the ticket it happens
    to (None: the rule's own ticket), and the fields it changes."""

    key: str
    template: str | None = None
    fields: frozenset[str] = frozenset()


def _emitted(pack: Pack, rule: RuleBp) -> Iterator[Emitted]:
    for action in rule.actions:
        if isinstance(action, SetAction):
            fields = frozenset(action.set)
            yield Emitted("updated", None, fields)
            if fields & ASSIGNMENT:
                yield Emitted("assigned", None, fields)
        elif isinstance(action, RaisePriorityAction):
            yield Emitted("updated", None, frozenset({action.raise_priority.field}))
        elif isinstance(action, AssignAction):
            yield Emitted("assigned", None, ASSIGNMENT)
            yield Emitted("updated", None, ASSIGNMENT)
        elif isinstance(action, CommentAction):
            yield Emitted("commented")
        elif isinstance(action, CreateTicketAction):
            yield from _created(pack, action.create_ticket.template)
        elif isinstance(action, TransitionAction):
            yield from _transitioned(pack, rule, action)


def _created(pack: Pack, template: str) -> Iterator[Emitted]:
    tpl = pack.templates.get(template)
    if tpl is None or tpl.workflow not in pack.workflows:
        return
    yield Emitted("created", template)
    yield Emitted(f"entered:{pack.workflows[tpl.workflow].initial}", template)


def _transitioned(pack: Pack, rule: RuleBp, action: TransitionAction) -> Iterator[Emitted]:
    call = action.transition
    name = call if isinstance(call, str) else call.name
    for tname in rule.templates or pack.templates:
        tpl = pack.templates.get(tname)
        wf = pack.workflows.get(tpl.workflow) if tpl else None
        tr = wf.transitions.get(name) if wf else None
        if tr is None or tr.when:  # a guarded transition may not happen: not "always"
            continue
        for key in ("transitioned", f"transitioned:{name}", f"entered:{tr.to}"):
            yield Emitted(key, tname)


def _fires(target: RuleBp, ev: Emitted, source: RuleBp) -> bool:
    if target.event != ev.key:
        return False
    if target.fields and not target.fields & ev.fields:
        return False
    tpl_of_event = {ev.template} if ev.template else source.templates
    if tpl_of_event is None or target.templates is None:
        return True
    return bool(tpl_of_event & target.templates)


def unconditional_cycles(pack: Pack) -> list[list[str]]:
    """Cycles of rules that would fire each other without end, each as rule names."""
    fields = frozenset(f for tpl in pack.templates.values() for f in tpl.fields)
    rules = {
        name: compile_rule(name, rule, fields)
        for name, rule in sorted(pack.rules.items())
        if rule.enabled and rule.condition is None
    }
    always = {n: r for n, r in rules.items() if r.after is None}
    edges = {
        name: sorted(
            {t.name for ev in _emitted(pack, rule) for t in always.values() if _fires(t, ev, rule)}
        )
        for name, rule in always.items()
    }
    return _cycles(edges)


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected loop, found by depth-first search."""
    found: list[list[str]] = []
    seen: set[str] = set()
    for start in sorted(edges):
        if start in seen:
            continue
        stack: list[str] = []
        on_stack: set[str] = set()
        _walk(start, edges, stack, on_stack, seen, found)
    return found


def _walk(
    node: str,
    edges: dict[str, list[str]],
    stack: list[str],
    on_stack: set[str],
    seen: set[str],
    found: list[list[str]],
) -> None:
    seen.add(node)
    stack.append(node)
    on_stack.add(node)
    for nxt in edges.get(node, []):
        if nxt in on_stack:
            found.append([*stack[stack.index(nxt) :], nxt])
        elif nxt not in seen:
            _walk(nxt, edges, stack, on_stack, seen, found)
    stack.pop()
    on_stack.discard(node)
