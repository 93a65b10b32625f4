"""Notifications: resolve recipients from the ticket and the directory, render the message
per recipient (their locale, only the fields their roles may read) and queue one outbox row
per recipient and channel. Rendering happens inside the command, so the message tells what
was true when it happened; a template that fails becomes a dead outbox row and a timeline
entry, never a failed command.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.message_check import TICKET_ATTRIBUTES
from engine.model import NotifySpec
from runtime import access
from runtime.actors import Actor
from runtime.commands import localized
from runtime.directory import TenantDirectory, actor_of
from runtime.records import OutboxRow
from runtime.render import RenderError, render
from runtime.unit import Tracked, Unit

# One notify action may reach a whole role; past this many people the rest are skipped
# and the timeline says so (a mis-targeted rule must not queue a million rows).
MAX_RECIPIENTS = 500

DEFAULT_MESSAGE = {
    "en": "{{ ticket.ref }} {{ ticket.title }}: now {{ ticket.state }}",
    "zh": "{{ ticket.ref }} {{ ticket.title }}：当前状态 {{ ticket.state }}",
}
SCHEDULED_MESSAGE = {"en": "Scheduled notice", "zh": "定时通知"}
MENTION_MESSAGE = {
    "en": "{{ author }} mentioned you on {{ ticket.ref }}: {{ excerpt }}",
    "zh": "{{ author }} 在 {{ ticket.ref }} 中提到了你：{{ excerpt }}",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    id: str
    person: Any  # PersonSpec, or None when the directory does not know the id


def resolve(
    t: Tracked, targets: Sequence[str], people: TenantDirectory, mentioned: Sequence[str] = ()
) -> tuple[list[Recipient], list[str]]:
    """Recipients of `targets` in order, each once, inactive people left out; and notes on
    targets that reached nobody."""
    ids: list[str] = []
    notes: list[str] = []
    for target in targets:
        found = _expand(t, target, people, mentioned)
        if not found:
            notes.append(f"{target}: nobody")
        ids.extend(found)
    out: list[Recipient] = []
    seen: set[str] = set()
    for pid in ids:
        person = people.get(pid)
        if pid in seen or (person is not None and not person.active):
            continue
        seen.add(pid)
        out.append(Recipient(pid, person))
    if len(out) > MAX_RECIPIENTS:
        notes.append(
            f"{len(out) - MAX_RECIPIENTS} recipients over the limit of {MAX_RECIPIENTS} skipped"
        )
        out = out[:MAX_RECIPIENTS]
    return out, notes


def _expand(
    t: Tracked, target: str, people: TenantDirectory, mentioned: Sequence[str]
) -> list[str]:
    row = t.row
    if target.startswith("field:"):
        value = row.fields.get(target[6:])
        return [value] if isinstance(value, str) and value else []
    if target == "team_lead":
        return _team_leads(t, people)
    if ":" in target:
        return _expand_people(target, people)
    if target == "requester":
        return [row.requester] if row.requester else []
    if target == "watchers":
        return list(row.watchers)
    if target == "mentioned":
        return list(mentioned)
    if target == "assignee":
        return _assignees(row.assignee, people)
    return []


def _team_leads(t: Tracked, people: TenantDirectory) -> list[str]:
    """Members of the ticket's team who hold the team's `lead_role`."""
    team = t.bp.model.teams.get(t.row.team or "")
    if team is None or team.lead_role is None:
        return []
    return list(people.with_role(team.lead_role, t.row.team))


def _assignees(assignee: str | None, people: TenantDirectory) -> list[str]:
    """`role:x` reaches everyone in the role, `pool:team` the team: whoever may act."""
    if assignee is None:
        return []
    if assignee.startswith("role:"):
        return list(people.with_role(assignee[5:]))
    if assignee.startswith("pool:"):
        return list(people.members(assignee[5:]))
    return [assignee]


def recipient_actor(r: Recipient, tenant: str) -> Actor:
    """Whom the message is rendered for: the directory's person, or — unknown to the
    directory — someone with no roles, who reads no custom fields."""
    return actor_of(r.person, tenant) if r.person is not None else Actor.of(r.id, (), tenant)


def context_for(t: Tracked, actor: Actor, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a message template reads, as `actor` may see the ticket: fields it may not read
    are None (they render as nothing)."""
    readable = access.readable(t.bp, actor, t.tpl, t.row.state)
    locale = actor.locale or t.bp.model.locales[0]
    recipient = {"id": actor.id, "name": actor.name or actor.id, "locale": locale}
    ticket = ticket_context(t, readable, locale)
    labels = option_labels(
        t.tpl.model.fields, ticket, locale, t.bp.model.locales[0], template_labels(t)
    )
    return {"ticket": ticket, "labels": labels, "recipient": recipient, **(extra or {})}


# Each field's option labels by value (None for a field without options), in field order.
LabelTables = tuple[tuple[str, dict[Any, Any] | None], ...]


def option_labels(
    fields: Mapping[str, Any],
    values: Mapping[str, Any],
    locale: str,
    fallback: str,
    tables: LabelTables | None = None,
) -> dict[str, Any]:
    """`labels.<field>`: a choice's option label in `locale` (a multi_choice's labels
    joined), other fields as they are; None for a value not in `values`. `tables`: the
    `label_tables` of `fields`, when already at hand."""
    out: dict[str, Any] = {}
    for name, labels in label_tables(fields) if tables is None else tables:
        value = values.get(name)
        if labels is None or value is None:
            out[name] = value
            continue
        shown = [localized(labels.get(v), locale, str(v), fallback) for v in _as_list(value)]
        out[name] = ", ".join(shown) if isinstance(value, list) else shown[0]
    return out


def label_tables(fields: Mapping[str, Any]) -> LabelTables:
    """The option labels `option_labels` looks values up in."""
    out = []
    for name, spec in fields.items():
        options = getattr(spec, "options", None)
        labels = None
        if options is not None:
            labels = {o.value: o.label for o in options if not isinstance(o, str)}
        out.append((name, labels))
    return tuple(out)


def template_labels(t: Tracked) -> LabelTables:
    """The ticket template's `label_tables`, built once per blueprint."""
    return t.bp.memoised(("notify.labels", t.tpl.name), lambda: label_tables(t.tpl.model.fields))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ticket_context(t: Tracked, readable: frozenset[str] | None, locale: str) -> dict[str, Any]:
    """`ticket.<field>` (None where not `readable`; every field when None) and the ticket's
    attributes (`ref`, `state`, `state_title` in `locale` ...)."""
    row = t.row
    ticket: dict[str, Any] = {
        n: (row.fields.get(n) if readable is None or n in readable else None)
        for n in t.tpl.field_names
    }
    for name in TICKET_ATTRIBUTES:
        if name != "state_title":
            ticket[name] = getattr(row, name)
    state = t.tpl.workflow.states.get(row.state)
    title = state.title if state is not None else None
    ticket["state_title"] = localized(title, locale, row.state, t.bp.model.locales[0])
    return ticket


def queue(
    unit: Unit,
    t: Tracked,
    spec: NotifySpec,
    source: str,
    people: TenantDirectory,
    mentioned: Sequence[str] = (),
) -> dict[str, Any]:
    """Queue the notify action's messages; returns a summary for the timeline."""
    targets = [spec.to] if isinstance(spec.to, str) else list(spec.to)
    recipients, notes = resolve(t, targets, people, mentioned)
    text = t.bp.messages.get(spec.message) if spec.message else None
    queued = failed = 0
    for r in recipients:
        rows = _rows_for(unit, t, r, spec.via, text or DEFAULT_MESSAGE, source, spec.message)
        queued += len(rows)
        failed += sum(1 for row in rows if row.status == "dead")
        unit.outbox.extend(rows)
    return {
        "source": source,
        "to": targets,
        "via": list(spec.via),
        "message": spec.message,
        "recipients": [r.id for r in recipients],
        "queued": queued,
        "failed": failed,
        **({"notes": notes} if notes else {}),
    }


def _rows_for(
    unit: Unit,
    t: Tracked,
    r: Recipient,
    via: Iterable[str],
    text: Any,
    source: str,
    message: str | None,
    extra: dict[str, Any] | None = None,
) -> list[OutboxRow]:
    actor = recipient_actor(r, unit.tenant)
    ctx = context_for(t, actor, extra)
    return rendered_rows(unit, t, r, via, text, ctx, source, message, t.bp.model.locales[0])


def rendered_rows(
    unit: Unit,
    t: Tracked | None,
    r: Recipient,
    via: Iterable[str],
    text: Any,
    ctx: dict[str, Any],
    source: str,
    message: str | None,
    default_locale: str,
) -> list[OutboxRow]:
    """One row per channel of a message rendered for `r`; a render failure makes dead
    rows that say why (listable and retryable like any undelivered message)."""
    locale = ctx["recipient"]["locale"]
    error: str | None = None
    try:
        body = render(localized(text, locale, "", default_locale), ctx)
    except RenderError as exc:
        body, error = "", f"message {message or '(default)'} for {r.id}: {exc}"
    return [_row(unit, t, r, channel, locale, body, source, message, error) for channel in via]


def _row(
    unit: Unit,
    t: Tracked | None,
    r: Recipient,
    channel: str,
    locale: str,
    body: str,
    source: str,
    message: str | None,
    error: str | None,
) -> OutboxRow:
    person = r.person
    to: dict[str, Any] = {"id": r.id}
    if person is not None:
        contact = (("name", person.name), ("email", person.email), ("phone", person.phone))
        to.update({k: v for k, v in contact if v})
        to.update(person.chat)
    ref = t.row.ref if t is not None else None
    payload = {
        "source": source,
        "ref": ref,
        "ticket": {"id": t.row.id, "ref": ref} if t is not None else None,
        "channel": channel,
        "to": to,
        "locale": locale,
        "subject": _subject(ref, t.row.title if t is not None else None, body),
        "body": body,
        "message": message,
    }
    ticket_id = t.row.id if t is not None else None
    row = OutboxRow(unit.tenant, unit.new_id(), unit.now, "notify", ticket_id, payload)
    row.channel, row.recipient = channel, r.id
    if error is not None:
        row.status, row.last_error = "dead", error
    elif channel == "in_app":
        # The in-app inbox is the outbox itself: it is delivered once committed.
        row.status, row.delivered_at = "sent", unit.now
    return row


def queue_without_ticket(
    unit: Unit, bp: Any, spec: NotifySpec, source: str, people: TenantDirectory
) -> int:
    """A scheduled rule's notice (no ticket: only user, role and team recipients)."""
    targets = [spec.to] if isinstance(spec.to, str) else list(spec.to)
    ids = [i for target in targets for i in _expand_people(target, people)]
    text = bp.messages.get(spec.message) if spec.message else None
    count = 0
    for pid in dict.fromkeys(ids):
        person = people.get(pid)
        if person is not None and not person.active:
            continue
        locale = (person.locale if person is not None else None) or bp.model.locales[0]
        name = (person.name if person is not None else None) or pid
        ctx = {"ticket": {}, "recipient": {"id": pid, "name": name, "locale": locale}}
        rows = rendered_rows(
            unit, None, Recipient(pid, person), spec.via, text or SCHEDULED_MESSAGE, ctx,
            source, spec.message, bp.model.locales[0],
        )  # fmt: skip
        unit.outbox.extend(rows)
        count += len(rows)
    return count


def _expand_people(target: str, people: TenantDirectory) -> list[str]:
    kind, _, name = target.partition(":")
    if kind == "user":
        return [name]
    if kind == "role":
        return list(people.with_role(name))
    if kind == "team":
        return list(people.members(name))
    return []


def _subject(ref: str | None, title: str | None, body: str) -> str:
    first = body.strip().splitlines()[0] if body.strip() else (title or "")
    first = first if len(first) <= 120 else first[:119] + "…"
    return f"[{ref}] {first}" if ref else first


def queue_mentions(
    unit: Unit,
    t: Tracked,
    author: Actor,
    body: str,
    internal: bool,
    people: TenantDirectory,
    mentions: Sequence[str],
) -> list[str]:
    """Tell each mentioned person who may read the comment; returns whom it reached."""
    reached: list[str] = []
    excerpt = body if len(body) <= 200 else body[:199] + "…"
    for pid in mentions:
        person = people.get(pid)
        if person is None or not person.active or pid == author.id:
            continue
        actor = actor_of(person, unit.tenant)
        if not _may_read(unit, t, actor, internal):
            continue
        extra = {"author": author.name or author.id, "excerpt": excerpt}
        r = Recipient(pid, person)
        unit.outbox.extend(
            _rows_for(unit, t, r, person.notify_via, MENTION_MESSAGE, "mention", None, extra)
        )
        reached.append(pid)
    return reached


def _may_read(unit: Unit, t: Tracked, actor: Actor, internal: bool) -> bool:
    from runtime.commands import ticket_env

    if internal and not access.is_staff(t.bp, actor):
        return False
    env = (
        ticket_env(unit, t, actor) if access.needs_env_to_see(t.bp, actor, t.row.template) else None
    )
    return access.can_see(t.bp, actor, t.row, env)
