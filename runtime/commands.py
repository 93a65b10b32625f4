"""The ticket commands, applied to a unit of work: create, update, transition, comment,
assign. Each checks permissions and values first and raises before changing anything;
the rule engine (`runtime.rules`) calls the same functions for automated actions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from dsl.diagnostics import did_you_mean
from engine.blueprint import Blueprint, TemplateBp, TransitionBp
from engine.fields import AttachmentsField, LocalizedText
from engine.form_schema import value_schema
from runtime import access, sla
from runtime.actors import Actor
from runtime.records import (
    FieldProblem,
    InvalidCommand,
    InvalidFields,
    NotFound,
    PermissionDenied,
    TicketRow,
    TransitionUnavailable,
)
from runtime.tickets import build_env, to_json_value
from runtime.unit import Signal, Tracked, Unit, snapshot

REF_PART = re.compile(r"\{(yyyy|yy|mm|dd|seq(?::(0?)(\d+))?)\}")
TEXT_TYPES = frozenset({"text", "long_text", "email", "phone", "url", "asset", "choice"})


def localized(
    text: LocalizedText | None, locale: str | None, default: str = "", fallback: str = ""
) -> str:
    """The text in `locale`, else in `fallback` (the pack's first locale), else any."""
    if text is None:
        return default
    if isinstance(text, str):
        return text
    for key in (locale, fallback):
        if key and key in text:
            return text[key]
    return next(iter(text.values()), default)


# -- checks ---------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or value == "" or value == []


def required_fields(
    tpl: TemplateBp, state: str, env: Mapping[str, Any], extra: Iterable[str] = ()
) -> list[str]:
    """Fields that must have a value in `state`."""
    names = [*tpl.required, *tpl.required_in.get(state, ()), *extra]
    names += [f for f, cond in tpl.required_if if cond.holds(env)]
    return list(dict.fromkeys(names))


def check_values(
    tpl: TemplateBp, values: dict[str, Any], required: Iterable[str], row: TicketRow | None = None
) -> None:
    """Validate the whole field set; builtin attributes in `required` are checked on `row`."""
    fields = [f for f in required if f in tpl.field_names]
    problems = list(tpl.form.validate(values, required=fields))
    problems += [
        FieldProblem(name, "invalid-character", "text may not contain the NUL character")
        for name, value in values.items()
        if _has_nul(value)
    ]
    for name in required:
        if name not in tpl.field_names and row is not None and _missing(getattr(row, name, None)):
            problems.append(FieldProblem(name, "required", f"'{name}' must be set"))
    if problems:
        names = ", ".join(dict.fromkeys(p.field for p in problems))
        raise InvalidFields(f"invalid values: {names}", sorted(problems, key=lambda p: p.field))


def _has_nul(value: Any) -> bool:
    # PostgreSQL cannot store U+0000 in text or JSON; refuse it the same way everywhere.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def check_writable(
    bp: Blueprint,
    actor: Actor,
    t_tpl: TemplateBp,
    state: str,
    names: Iterable[str],
    also: Iterable[str] = (),
    env: Mapping[str, Any] | None = None,
) -> None:
    allowed = access.writable(bp, actor, t_tpl, state) | frozenset(also)
    denied = sorted(n for n in names if n not in allowed)
    if env is not None:
        denied += sorted(
            n for n in names if n in t_tpl.readonly_if and t_tpl.readonly_if[n].holds(env)
        )
    computed = sorted(n for n, _ in t_tpl.computed if n in names)
    unknown = [n for n in names if n not in t_tpl.field_names and n not in access.ASSIGNMENT]
    if unknown:
        raise _unknown_fields(t_tpl, unknown)
    if computed:
        raise PermissionDenied(f"computed fields cannot be written: {', '.join(computed)}")
    if denied:
        raise PermissionDenied(
            f"you may not change {', '.join(dict.fromkeys(denied))} "
            f"of {t_tpl.name} tickets in state '{state}'",
            fields=list(dict.fromkeys(denied)),
        )


def _unknown_fields(tpl: TemplateBp, names: list[str]) -> InvalidFields:
    problems = []
    for name in names:
        hint = did_you_mean(name, sorted(tpl.field_names))
        message = f"'{tpl.name}' has no field '{name}'" + (f"; {hint}" if hint else "")
        problems.append(FieldProblem(name, "unknown-field", message))
    return InvalidFields(f"unknown fields: {', '.join(names)}", problems)


def ticket_env(unit: Unit, t: Tracked, actor: Actor | None) -> dict[str, Any]:
    """The expression environment of a ticket, with `sla.*` when it has clocks."""
    env = build_env(t.row, t.tpl, actor, unit.now)
    if t.row.sla:
        env.update(sla.env_values(t, unit.now))
    return env


def recompute(t: Tracked, now: datetime) -> None:
    """Refresh computed fields from the current values."""
    if not t.tpl.computed:
        return
    env = build_env(t.row, t.tpl, None, now)
    for name, cond in t.tpl.computed:
        value = to_json_value(cond.run(env))
        t.row.fields[name] = value
        env.update(t.tpl.form.to_env({name: value}))


# -- create ---------------------------------------------------------------------------------


def format_ref(pattern: str, seq: int, now: datetime, tz: str) -> str:
    local = now.astimezone(ZoneInfo(tz))

    def part(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("seq"):
            width = int(m.group(3) or 0)
            return str(seq).zfill(width)
        return {
            "yyyy": f"{local.year:04d}",
            "yy": f"{local.year % 100:02d}",
            "mm": f"{local.month:02d}",
            "dd": f"{local.day:02d}",
        }[name]

    return REF_PART.sub(part, pattern)


def search_text(row: TicketRow, tpl: TemplateBp, only: frozenset[str] | None = None) -> str:
    """The ticket's searchable text: reference, title, text values (of `only` fields)."""
    parts = [row.ref, row.title or ""]
    for name, value in row.fields.items():
        if only is not None and name not in only:
            continue
        spec = tpl.fields.get(name)
        if spec is not None and spec.type in TEXT_TYPES and isinstance(value, str):
            parts.append(value)
    return " ".join(parts).lower()


def create(
    unit: Unit,
    bp: Blueprint,
    tpl: TemplateBp,
    actor: Actor,
    values: Mapping[str, Any],
    *,
    title: str | None = None,
    channel: str | None = None,
    requester: str | None = None,
    parent: Tracked | None = None,
    link: str | None = None,
    depth: int = 0,
    ticket_id: str | None = None,
) -> Tracked:
    """A new ticket in the workflow's initial state."""
    if not access.can_create(bp, actor, tpl.name):
        raise PermissionDenied(f"you may not create {tpl.name} tickets")
    allowed_channels = tpl.model.channels
    if channel is not None and allowed_channels and channel not in allowed_channels:
        raise InvalidCommand(
            f"{tpl.name} tickets cannot come in over '{channel}'; "
            f"allowed: {', '.join(allowed_channels)}"
        )
    given = dict(values)
    state = tpl.workflow.initial
    _check_create_fields(bp, actor, tpl, state, given)
    fields = {**tpl.form.defaults(unit.now, bp.model.timezone), **given}
    row = _new_row(unit, bp, tpl, actor, fields, title, channel, requester)
    if ticket_id is not None:
        row.id = ticket_id
    if parent is not None:
        row.parent_id, row.link = parent.row.id, link
    routing = tpl.model.routing
    if routing is not None and routing.team:
        row.team = routing.team
    t = unit.add_new(row, bp)
    recompute(t, unit.now)
    env = build_env(row, tpl, actor, unit.now)
    check_values(tpl, row.fields, required_fields(tpl, state, env), row)
    row.search_text = search_text(row, tpl)
    unit.event(t, "created", actor, {"state": state, "fields": dict(row.fields)}, "public")
    unit.record(actor, "create", row.id, None, snapshot(row))
    unit.signal(Signal(row.id, "created", depth))
    unit.signal(Signal(row.id, f"entered:{state}", depth))
    if routing is not None and routing.strategy != "manual" and row.assignee is None:
        from runtime.assignment import route_ticket  # routing builds on these commands

        route_ticket(unit, t, depth)
    return t


def _check_create_fields(
    bp: Blueprint, actor: Actor, tpl: TemplateBp, state: str, given: Mapping[str, Any]
) -> None:
    unknown = [n for n in given if n not in tpl.field_names]
    if unknown:
        raise _unknown_fields(tpl, unknown)
    # The intake form: what the role may write in the initial state, plus the fields a new
    # ticket must have (whoever may open one must be able to fill them); defaults fill the rest.
    required = {*tpl.required, *tpl.required_in.get(state, ())}
    allowed = access.writable(bp, actor, tpl, state) | (
        required & access.readable(bp, actor, tpl, state)
    )
    computed = {n for n, _ in tpl.computed}
    denied = sorted(n for n in given if n not in allowed or n in computed)
    if denied:
        raise PermissionDenied(
            f"you may not set {', '.join(denied)} on a new {tpl.name} ticket", fields=denied
        )


def _new_row(
    unit: Unit,
    bp: Blueprint,
    tpl: TemplateBp,
    actor: Actor,
    fields: dict[str, Any],
    title: str | None,
    channel: str | None,
    requester: str | None,
) -> TicketRow:
    seq = unit.tx.next_sequence(unit.tenant, f"ref:{bp.pack}:{tpl.name}")
    now = unit.now
    return TicketRow(
        tenant_id=unit.tenant,
        id=unit.new_id(),
        ref=format_ref(tpl.model.ref, seq, now, bp.model.timezone),
        pack=bp.pack,
        pack_version=bp.version,
        template=tpl.name,
        state=tpl.workflow.initial,
        fields=fields,
        version=1,
        created_at=now,
        updated_at=now,
        state_entered_at=now,
        title=title,
        requester=requester if requester is not None else (None if actor.is_system else actor.id),
        channel=channel,
    )


# -- update ---------------------------------------------------------------------------------


def changes_of(t: Tracked, values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{field: {before, after}} for values that differ from the ticket's."""
    out = {}
    for name, value in values.items():
        before = getattr(t.row, name) if name in access.ASSIGNMENT else t.row.fields.get(name)
        if before != value:
            out[name] = {"before": before, "after": value}
    return out


def apply_changes(t: Tracked, changes: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
    if not changes:
        return
    for name, change in changes.items():
        if name in access.ASSIGNMENT:
            setattr(t.row, name, change["after"])
        else:
            t.row.fields[name] = change["after"]
    recompute(t, now)
    t.row.search_text = search_text(t.row, t.tpl)


def update(
    unit: Unit, t: Tracked, actor: Actor, values: Mapping[str, Any], depth: int = 0
) -> dict[str, dict[str, Any]]:
    """Change field values; returns what changed."""
    ensure_visible(unit, t, actor)
    env = ticket_env(unit, t, actor)
    check_writable(t.bp, actor, t.tpl, t.row.state, values, env=env)
    changes = changes_of(t, values)
    if not changes:
        return {}
    before = snapshot(t.row)
    apply_changes(t, changes, unit.now)
    env = ticket_env(unit, t, actor)
    try:
        check_values(t.tpl, t.row.fields, required_fields(t.tpl, t.row.state, env), t.row)
    except InvalidFields:
        _restore(t, before)
        raise
    record_update(unit, t, actor, changes, before, depth)
    return changes


def _restore(t: Tracked, before: dict[str, Any]) -> None:
    t.row.fields = before["fields"]
    for name in ("state", "assignee", "team", "title"):
        setattr(t.row, name, before[name])
    # apply_changes rebuilt it from the refused values; a rule's refused set is caught and
    # the command goes on, so what it wrote would otherwise be stored and searchable.
    t.row.search_text = search_text(t.row, t.tpl)


def record_update(
    unit: Unit,
    t: Tracked,
    actor: Actor | str,
    changes: Mapping[str, Mapping[str, Any]],
    before: dict[str, Any],
    depth: int,
) -> None:
    unit.event(t, "updated", actor, {"changes": dict(changes)})
    unit.record(
        actor, "update", t.row.id, _diff(before, changes, "before"), _diff(before, changes, "after")
    )
    unit.signal(Signal(t.row.id, "updated", depth, frozenset(changes)))
    if "assignee" in changes or "team" in changes:
        unit.signal(Signal(t.row.id, "assigned", depth, frozenset(changes)))


def _diff(
    before: dict[str, Any], changes: Mapping[str, Mapping[str, Any]], side: str
) -> dict[str, Any]:
    return {name: change[side] for name, change in changes.items()}


def ensure_visible(unit: Unit, t: Tracked, actor: Actor) -> None:
    """NotFound unless the actor may see the ticket: another tenant's or a hidden ticket
    looks exactly like one that does not exist."""
    if actor.is_automation or t.seen_by == actor.id:
        return
    env = None
    if access.needs_env_to_see(t.bp, actor, t.row.template):
        env = ticket_env(unit, t, actor)
    if not access.can_see(t.bp, actor, t.row, env):
        raise NotFound(f"no ticket '{t.row.id}'", ticket_id=t.row.id)
    t.seen_by = actor.id


# -- transition -----------------------------------------------------------------------------


def find_transition(t: Tracked, name: str) -> TransitionBp:
    wf = t.tpl.workflow
    tr = wf.transition(t.row.state, name)
    if tr is not None:
        return tr
    here = [x.name for x in wf.by_state.get(t.row.state, ())]
    if name in wf.names():
        raise TransitionUnavailable(
            f"'{name}' cannot be taken from state '{t.row.state}'; "
            f"from here: {', '.join(here) or 'none'}",
            transition=name,
            state=t.row.state,
        )
    hint = did_you_mean(name, sorted(wf.names()))
    raise TransitionUnavailable(
        f"workflow '{wf.name}' has no transition '{name}'" + (f"; {hint}" if hint else ""),
        transition=name,
        state=t.row.state,
    )


def transition(
    unit: Unit,
    t: Tracked,
    actor: Actor,
    name: str,
    values: Mapping[str, Any] | None = None,
    comment: str | None = None,
    depth: int = 0,
) -> TransitionBp:
    """Take a transition: permission, guard, values, checks; then move and signal."""
    ensure_visible(unit, t, actor)
    tr = find_transition(t, name)
    refusal = access.transition_refusal(t.bp, actor, t.row, tr)
    if refusal is not None:
        raise PermissionDenied(refusal.message, transition=name, reason=refusal.code)
    values = dict(values or {})
    env = ticket_env(unit, t, actor)
    if values:
        check_writable(t.bp, actor, t.tpl, t.row.state, values, (*tr.form, *tr.requires), env)
    if tr.guard is not None and not tr.guard.holds(env):
        raise TransitionUnavailable(
            f"'{name}' is not available: its condition `{tr.guard.text}` is false",
            transition=name,
            state=t.row.state,
        )
    _check_comment(tr, comment)
    before = snapshot(t.row)
    changes = changes_of(t, values)
    source = t.row.state
    apply_changes(t, changes, unit.now)
    t.row.state = tr.to
    try:
        _check_arrival(unit, t, actor, tr, bool(changes))
    except Exception:
        _restore(t, before)
        raise
    _record_transition(unit, t, actor, tr, source, changes, comment, before, depth)
    return tr


def _check_comment(tr: TransitionBp, comment: str | None) -> None:
    if tr.comment == "required" and not (comment and comment.strip()):
        raise InvalidFields(
            f"'{tr.name}' needs a comment",
            [FieldProblem("comment", "required", f"'{tr.name}' needs a comment saying why")],
        )
    if tr.comment == "none" and comment:
        raise InvalidCommand(f"'{tr.name}' takes no comment")


def _check_arrival(unit: Unit, t: Tracked, actor: Actor, tr: TransitionBp, changed: bool) -> None:
    env = ticket_env(unit, t, actor)
    required = required_fields(t.tpl, tr.to, env, tr.requires)
    if changed:
        check_values(t.tpl, t.row.fields, required, t.row)
    else:
        # Nothing changed: the stored values were valid, only requiredness can fail here.
        _check_required(t, required)
    failed = [c for c in tr.checks if not c.condition.holds(env)]
    if failed:
        first = t.bp.model.locales[0]
        messages = [localized(c.message, actor.locale, fallback=first) for c in failed]
        raise InvalidFields(
            f"'{tr.name}' refused: " + "; ".join(messages),
            [FieldProblem("", "check", m) for m in messages],
        )


def _check_required(t: Tracked, required: Iterable[str]) -> None:
    fields = t.row.fields
    missing = [
        name
        for name in required
        if _missing(fields.get(name) if name in t.tpl.field_names else getattr(t.row, name, None))
    ]
    if missing:
        check_values(t.tpl, fields, missing, t.row)  # the form words the problems


def _record_transition(
    unit: Unit,
    t: Tracked,
    actor: Actor,
    tr: TransitionBp,
    source: str,
    changes: dict[str, dict[str, Any]],
    comment: str | None,
    before: dict[str, Any],
    depth: int,
) -> None:
    row = t.row
    row.state_entered_at = unit.now
    row.closed = tr.to in t.tpl.workflow.finals
    data: dict[str, Any] = {"transition": tr.name, "from": source, "to": tr.to}
    if changes:
        data["changes"] = changes
    if comment:
        data["comment"] = comment
    unit.event(t, "transitioned", actor, data, "public")
    if not actor.is_automation and access.is_staff(t.bp, actor):
        unit.note_activity(row.id).staff_response = True
    after = {"state": tr.to, **{k: c["after"] for k, c in changes.items()}}
    unit.record(
        actor, "transition", row.id, {"state": source, **_diff(before, changes, "before")}, after
    )
    for key in ("transitioned", f"transitioned:{tr.name}", f"left:{source}", f"entered:{tr.to}"):
        unit.signal(Signal(row.id, key, depth, frozenset(changes), {"transition": tr.name}))
    if changes:
        unit.signal(Signal(row.id, "updated", depth, frozenset(changes)))
    for action in tr.actions:
        unit.signal(
            Signal(
                row.id, "transition-action", depth, data={"action": action, "transition": tr.name}
            )
        )


# -- comment and assign -----------------------------------------------------------------------

MENTION = re.compile(r"(?<![\w@])@([\w.\-]+)")


def comment(
    unit: Unit,
    t: Tracked,
    actor: Actor,
    body: str,
    internal: bool = False,
    attachments: list[dict[str, Any]] | None = None,
    depth: int = 0,
) -> None:
    ensure_visible(unit, t, actor)
    if not body.strip():
        raise InvalidFields("empty comment", [FieldProblem("body", "required", "write something")])
    if internal and not access.is_staff(t.bp, actor):
        raise PermissionDenied("only staff may write internal notes")
    mentions = sorted(set(MENTION.findall(body)))
    data: dict[str, Any] = {"body": body, "internal": internal, "mentions": mentions}
    if attachments:
        data["attachments"] = check_attachments(attachments)
    if mentions:
        from runtime.notify import queue_mentions  # notifications build on these commands

        people = unit.people()
        known = [m for m in mentions if people.get(m) is not None]
        unit.mentions[t.row.id] = known
        data["notified"] = queue_mentions(unit, t, actor, body, internal, people, known)
    unit.event(t, "commented", actor, data, "internal" if internal else "public")
    if not internal and not actor.is_automation:
        if access.is_staff(t.bp, actor):
            unit.note_activity(t.row.id).staff_response = True
        elif actor.id == t.row.requester:
            unit.note_activity(t.row.id).requester_comment = True
    unit.record(actor, "comment", t.row.id, None, {"internal": internal, "body": body})
    unit.signal(Signal(t.row.id, "commented", depth, data={"internal": internal}))


MAX_ATTACHMENTS = 20
_ATTACHMENTS = Draft202012Validator(
    value_schema(AttachmentsField(type="attachments", max_items=MAX_ATTACHMENTS), nullable=False)
)


def check_attachments(items: Any) -> list[dict[str, Any]]:
    """A comment's attachments are file metadata ({id, name, content_type?, size?, url?});
    the files themselves live in the tenant's file store."""
    problems = [
        FieldProblem(
            "attachments"
            + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
            "invalid",
            e.message,
        )
        for e in _ATTACHMENTS.iter_errors(items)
    ]
    if problems:
        raise InvalidFields(
            "invalid attachments: " + "; ".join(f"{p.field}: {p.message}" for p in problems),
            problems,
        )
    return [dict(item) for item in items]


ASSIGN_TARGET = re.compile(r"^(?:(user|role|team):(\S+)|requester|none)$")


def assign(unit: Unit, t: Tracked, actor: Actor, to: str, depth: int = 0) -> None:
    """Assign to `user:<id>`, `role:<name>`, `team:<name>`, `requester` or `none`; a bare
    id means a user."""
    ensure_visible(unit, t, actor)
    target = to if ":" in to or to in ("requester", "none") else f"user:{to}"
    m = ASSIGN_TARGET.match(target)
    if m is None:
        raise InvalidCommand(
            f"cannot assign to '{to}': write user:<id>, role:<name> or team:<name>"
        )
    kind, value = m.group(1), m.group(2)
    values: dict[str, Any]
    if kind == "team":
        if t.bp.teams and value not in t.bp.teams:
            hint = did_you_mean(value, sorted(t.bp.teams))
            raise InvalidCommand(f"no team '{value}'" + (f"; {hint}" if hint else ""))
        values = {"team": value}
    elif kind == "role":
        if value not in t.bp.roles:
            raise InvalidCommand(f"no role '{value}'")
        values = {"assignee": f"role:{value}"}
    elif target == "requester":
        values = {"assignee": t.row.requester}
    elif target == "none":
        values = {"assignee": None}
    else:
        values = {"assignee": value}
    check_writable(t.bp, actor, t.tpl, t.row.state, values)
    changes = changes_of(t, values)
    if not changes:
        return
    before = snapshot(t.row)
    apply_changes(t, changes, unit.now)
    unit.event(t, "assigned", actor, {"changes": changes}, "public")
    unit.record(
        actor, "assign", t.row.id, _diff(before, changes, "before"), _diff(before, changes, "after")
    )
    unit.signal(Signal(t.row.id, "assigned", depth, frozenset(changes)))


def resolve_template(blueprints: Iterable[Blueprint], name: str) -> tuple[Blueprint, TemplateBp]:
    """The template called `name` among the tenant's current packs (`pack/template` to
    choose when two packs have one of that name)."""
    pack_name, _, tpl_name = name.rpartition("/")
    found = [
        (bp, bp.templates[tpl_name])
        for bp in blueprints
        if tpl_name in bp.templates and (not pack_name or bp.pack == pack_name)
    ]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        packs = ", ".join(f"{bp.pack}/{tpl_name}" for bp, _ in found)
        raise InvalidCommand(f"'{name}' is in several packs; say which: {packs}")
    known = sorted({t for bp in blueprints for t in bp.templates})
    hint = did_you_mean(tpl_name, known)
    raise NotFound(f"no template '{name}'" + (f"; {hint}" if hint else ""), template=name)
