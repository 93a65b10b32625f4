"""The rule engine: signals from commands fire rules whose actions may cause further
signals, up to a bounded depth. Rules run in (priority desc, name) order, never in
declaration order, so the outcome does not depend on how the pack is written down.

A failing action does not undo the command that triggered it: the failure is written to
the ticket's timeline (`rule.failed`) and the rule's remaining actions are skipped.
"""

from __future__ import annotations

import json
from typing import Any

from engine.blueprint import RuleBp
from engine.fields import field_options
from engine.model import (
    AssignAction,
    CommentAction,
    CreateTicketAction,
    NotifyAction,
    RaisePriorityAction,
    ScheduleAction,
    SetAction,
    TransitionAction,
    WebhookAction,
)
from engine.values import parse_duration
from runtime import commands, notify
from runtime.actors import Actor
from runtime.assignment import route_ticket, strategies_of
from runtime.records import InvalidFields, OutboxRow, TicketflowError, TimerRow
from runtime.render import RenderError, render, render_value
from runtime.unit import Signal, Tracked, Unit

MAX_DEPTH = 8
# Two rules undoing each other double the signals at every level: the depth bound alone
# would still allow 2**8 firings, so one command's firings are capped as well.
MAX_FIRINGS = 64


def dispatch(unit: Unit) -> None:
    """Run every pending signal's rules until none are left."""
    envs = Envs(unit)
    while unit.signals:
        sig = unit.signals.popleft()
        t = unit.load(sig.ticket_id)
        if sig.key == "transition-action":
            envs.clear()
            run_actions(
                unit, t, [sig.data["action"]], f"transition:{sig.data['transition']}", sig.depth
            )
            continue
        for rule in t.bp.rules_for(sig.key, t.row.template):
            _consider(unit, t, rule, sig, envs)


class Envs:
    """The expression environments rule conditions read, built once per ticket and shared
    by the rules that follow, until a rule runs. A condition only reads its environment,
    so rules whose condition is false change nothing; a rule that runs (or is delayed, or
    stopped by a limit) may change any ticket, so every environment is built afresh after
    it. Lives for one `dispatch`: nothing outside the rules changes tickets meanwhile."""

    __slots__ = ("_built", "_unit")

    def __init__(self, unit: Unit) -> None:
        self._unit = unit
        self._built: dict[str, dict[str, Any]] = {}

    def of(self, t: Tracked) -> dict[str, Any]:
        env = self._built.get(t.row.id)
        if env is None:
            env = self._built[t.row.id] = commands.ticket_env(self._unit, t, None)
        return env

    def clear(self) -> None:
        self._built.clear()


def _consider(unit: Unit, t: Tracked, rule: RuleBp, sig: Signal, envs: Envs) -> None:
    if rule.fields and not rule.fields & sig.changed:
        return
    if rule.metric is not None and rule.metric != sig.data.get("metric"):
        return
    if rule.after is not None:
        envs.clear()
        _delay(unit, t, rule, sig)
        return
    fire(unit, t, rule, sig.depth, envs)


def fire(unit: Unit, t: Tracked, rule: RuleBp, depth: int, envs: Envs | None = None) -> bool:
    """Run a rule now if its condition holds; False when it did not run. `envs` gives the
    ticket's environment when one was built for an earlier rule of the same dispatch."""
    if rule.condition is not None:
        env = envs.of(t) if envs is not None else commands.ticket_env(unit, t, None)
        if not rule.condition.holds(env):
            return False
    if envs is not None:
        envs.clear()  # whatever happens next may change the ticket
    if depth >= MAX_DEPTH:
        unit.event(t, "rule.depth_limit", "system", {"rule": rule.name, "depth": depth})
        unit.notes.append(f"rule {rule.name} not run: chain deeper than {MAX_DEPTH}")
        return False
    if unit.fired >= MAX_FIRINGS:
        if unit.fired == MAX_FIRINGS:
            unit.event(t, "rule.limit", "system", {"rule": rule.name, "fired": unit.fired})
            unit.notes.append(f"rules stopped: more than {MAX_FIRINGS} fired in one command")
            unit.fired += 1
        return False
    unit.fired += 1
    unit.event(t, "rule", "system", {"rule": rule.name})
    unit.notes.append(f"rule {rule.name} fired on {t.row.ref}")
    run_actions(unit, t, rule.actions, f"rule:{rule.name}", depth + 1)
    return True


def _delay(unit: Unit, t: Tracked, rule: RuleBp, sig: Signal) -> None:
    assert rule.after is not None
    key = f"rule:{rule.name}"
    payload = {
        "rule": rule.name,
        "event": sig.key,
        "entered_at": t.row.state_entered_at.isoformat(),
    }
    due = unit.now + rule.after
    unit.timers.append(TimerRow(unit.tenant, unit.new_id(), due, "rule", t.row.id, payload, key))
    unit.event(t, "rule.delayed", "system", {"rule": rule.name, "due": due.isoformat()})


def run_actions(unit: Unit, t: Tracked, actions: Any, source: str, depth: int) -> None:
    for action in actions:
        try:
            _run(unit, t, action, source, depth)
        except (TicketflowError, RenderError) as exc:
            _failed(unit, t, source, exc)
            return


def _failed(unit: Unit, t: Tracked, source: str, exc: TicketflowError | RenderError) -> None:
    """Record why an automated action failed, with every field problem spelt out."""
    if isinstance(exc, RenderError):
        data: dict[str, Any] = {"source": source, "error": "render", "message": str(exc)}
    else:
        data = {"source": source, "error": exc.code, "message": exc.message}
    if isinstance(exc, InvalidFields):
        data["problems"] = [f"{p.field}: {p.message}" for p in exc.problems]
        data["message"] = "; ".join(data["problems"])
    unit.event(t, "rule.failed", "system", data)
    unit.notes.append(f"{source} failed on {t.row.ref}: {data['message']}")


def _run(unit: Unit, t: Tracked, action: Any, source: str, depth: int) -> None:
    system = Actor.system(unit.tenant)
    if isinstance(action, SetAction):
        commands.update(unit, t, system, dict(action.set), depth)
    elif isinstance(action, TransitionAction):
        call = action.transition
        name, as_ = (call, "system") if isinstance(call, str) else (call.name, call.as_)
        _transition(unit, t, name, as_, depth)
    elif isinstance(action, AssignAction):
        _assign(unit, t, action, depth)
    elif isinstance(action, NotifyAction):
        _notify(unit, t, action, source)
    elif isinstance(action, WebhookAction):
        _webhook(unit, t, action, source)
    elif isinstance(action, CommentAction):
        _comment(unit, t, action, depth)
    elif isinstance(action, CreateTicketAction):
        _create_linked(unit, t, action, depth)
    elif isinstance(action, ScheduleAction):
        _schedule(unit, t, action)
    elif isinstance(action, RaisePriorityAction):
        _raise_priority(unit, t, action, depth)


def _transition(unit: Unit, t: Tracked, name: str, as_: str, depth: int) -> None:
    """`as: system` bypasses role checks; `as: <role>` takes the transition in that role,
    so the transition's role rules still apply."""
    actor = Actor.system(unit.tenant)
    if as_ != "system":
        actor = Actor.automation_as(as_, unit.tenant)
    commands.transition(unit, t, actor, name, depth=depth)


def _assign(unit: Unit, t: Tracked, action: AssignAction, depth: int) -> None:
    spec = action.assign
    system = Actor.system(unit.tenant)
    if spec.to is None:
        # A strategy (or the template's own routing) picks the person; `team` narrows it.
        chain = strategies_of(spec.strategy) or None
        decision = route_ticket(unit, t, depth, chain, spec.team)
        unplaced = decision is None or (decision.assignee is None and not decision.pooled)
        if unplaced and spec.team:
            # Nobody (or no strategy): the ticket still goes to the team's queue.
            commands.assign(unit, t, system, f"team:{spec.team}", depth)
        return
    target = spec.to
    if target == "assignee":
        return
    if target.startswith("field:"):
        # The person a user field names (an approver, the customer's account manager).
        person = t.row.fields.get(target[6:])
        if not isinstance(person, str) or not person:
            unit.notes.append(f"assign to {target} on {t.row.ref}: the field is empty")
            return
        target = f"user:{person}"
    commands.assign(unit, t, system, target, depth)


def _notify(unit: Unit, t: Tracked, action: NotifyAction, source: str) -> None:
    summary = notify.queue(
        unit, t, action.notify, source, unit.people(), unit.mentions.get(t.row.id, ())
    )
    unit.event(t, "notify.queued", "system", summary)
    if summary["failed"]:
        unit.notes.append(f"{source}: {summary['failed']} message(s) could not be rendered")


def _webhook(unit: Unit, t: Tracked | None, action: WebhookAction, source: str) -> OutboxRow:
    """One outbox row: the body is rendered now (what was true when it happened) from
    every field — the receiver is a system the admin chose, not a person."""
    spec = action.webhook
    context = template_context(t) if t is not None else {"ticket": {}}
    if spec.body is not None:
        body = render(spec.body, context)
    else:
        body = json.dumps({"source": source, **context}, default=str, ensure_ascii=False)
    ticket = {"id": t.row.id, "ref": t.row.ref} if t is not None else None
    payload = {
        "source": source,
        "ref": ticket["ref"] if ticket else None,
        "ticket": ticket,
        "url": spec.url,
        "method": spec.method,
        "secret": spec.secret,
        "body": body,
        "content_type": "application/json" if _is_json(body) else "text/plain; charset=utf-8",
    }
    row = OutboxRow(
        unit.tenant, unit.new_id(), unit.now, "webhook", t.row.id if t else None, payload
    )
    row.channel = "webhook"
    unit.outbox.append(row)
    if t is not None:
        unit.event(t, "webhook.queued", "system", {"source": source, "url": spec.url})
    return row


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _comment(unit: Unit, t: Tracked, action: CommentAction, depth: int) -> None:
    spec = action.comment
    locale = t.bp.model.locales[0]
    text = commands.localized(t.bp.messages.get(spec.message), locale, spec.message)
    body = render(text, template_context(t))
    commands.comment(unit, t, Actor.system(unit.tenant), body, spec.internal, depth=depth)


def template_context(t: Tracked) -> dict[str, Any]:
    """What rule templates (comments, webhook bodies, created tickets' values) read: every
    field and attribute of the ticket, as the system sees it."""
    first = t.bp.model.locales[0]
    ticket = notify.ticket_context(t, None, first)
    return {
        "ticket": ticket,
        "labels": notify.option_labels(
            t.tpl.model.fields, ticket, first, first, notify.template_labels(t)
        ),
    }


def _create_linked(unit: Unit, t: Tracked, action: CreateTicketAction, depth: int) -> None:
    spec = action.create_ticket
    tpl = t.bp.templates[spec.template]
    values = _values(tpl, spec.fields, template_context(t))
    child = commands.create(
        unit,
        t.bp,
        tpl,
        Actor.system(unit.tenant),
        values,
        title=t.row.title,
        channel=None,
        requester=_requester_of_linked(unit, t),
        parent=t,
        link=spec.link,
        depth=depth,
    )
    unit.event(
        t,
        "linked",
        "system",
        {"ticket": child.row.id, "ref": child.row.ref, "link": spec.link},
        "public",
    )


def _requester_of_linked(unit: Unit, t: Tracked) -> str | None:
    """Whoever set the automation off asked for the linked ticket (an engineer's parts
    request); when a timer did, the parent's requester."""
    actor = unit.actor
    if actor is not None and not actor.is_automation:
        return actor.id
    return t.row.requester


def _typed(tpl: Any, name: str, value: Any) -> Any:
    """Rendered text becomes a number where the field holds numbers."""
    spec = tpl.fields.get(name)
    if not isinstance(value, str) or spec is None:
        return value
    try:
        if spec.type in ("integer", "rating"):
            return int(value)
        if spec.type in ("number", "money"):
            return float(value)
    except ValueError:
        return value  # the field check then names the field and the bad value
    if spec.type == "boolean" and value in ("True", "False", "true", "false"):
        return value.lower() == "true"
    return value


def _schedule(unit: Unit, t: Tracked, action: ScheduleAction) -> None:
    spec = action.schedule
    due = unit.now + parse_duration(spec.after)
    unit.timers.append(
        TimerRow(
            unit.tenant,
            unit.new_id(),
            due,
            "event",
            t.row.id,
            {"event": spec.event},
            f"event:{spec.event}",
        )
    )
    unit.event(t, "scheduled", "system", {"event": spec.event, "due": due.isoformat()})


def _raise_priority(unit: Unit, t: Tracked, action: RaisePriorityAction, depth: int) -> None:
    spec = action.raise_priority
    options = field_options(t.tpl.fields.get(spec.field)) or []
    current = t.row.fields.get(spec.field)
    if spec.to is not None:
        target = spec.to
        if current in options and options.index(target) >= options.index(current):
            return  # already at or above the target: raising never lowers
    else:
        # Options are declared most urgent first: one step up is the one before.
        if current not in options or options.index(current) == 0:
            return
        target = options[options.index(current) - 1]
    commands.update(unit, t, Actor.system(unit.tenant), {spec.field: target}, depth)


def run_scheduled(unit: Unit, bp: Any, rule: RuleBp) -> None:
    """A scheduled rule's actions: they have no ticket of their own, so only actions that
    need none run (create_ticket, notify, webhook); others are noted and skipped."""
    unit.notes.append(f"scheduled rule {rule.name} ran")
    for action in rule.actions:
        try:
            if isinstance(action, CreateTicketAction):
                _create_scheduled(unit, bp, action)
            elif isinstance(action, NotifyAction):
                _notify_without_ticket(unit, bp, action, f"rule:{rule.name}")
            elif isinstance(action, WebhookAction):
                _webhook(unit, None, action, f"rule:{rule.name}")
            else:
                unit.notes.append(f"scheduled rule {rule.name}: an action needs a ticket; skipped")
        except (TicketflowError, RenderError) as exc:
            unit.notes.append(f"scheduled rule {rule.name} failed: {exc}")


def _notify_without_ticket(unit: Unit, bp: Any, action: NotifyAction, source: str) -> None:
    count = notify.queue_without_ticket(unit, bp, action.notify, source, unit.people())
    unit.notes.append(f"{source}: {count} message(s) queued")


def _create_scheduled(unit: Unit, bp: Any, action: CreateTicketAction) -> None:
    spec = action.create_ticket
    tpl = bp.templates[spec.template]
    values = _values(tpl, spec.fields, {"ticket": {}})
    commands.create(unit, bp, tpl, Actor.system(unit.tenant), values, channel=None, depth=1)


def _values(tpl: Any, fields: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A create_ticket action's values: templates rendered, numbers typed."""
    return {k: _typed(tpl, k, render_value(v, context)) for k, v in fields.items()}
