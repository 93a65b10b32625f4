"""The embedding API: `Runtime.open(...)`, then commands and reads scoped to the actor's
tenant. Each command is one database transaction."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from threading import Lock
from typing import Any

from dsl.diagnostics import render_text
from engine.blueprint import Blueprint, RuleBp
from engine.load import PackResult, load_pack_path
from engine.model import Pack
from runtime import access, commands, ids, packs, rules, schedules, sla
from runtime.actors import Actor
from runtime.api_drafts import DraftApi
from runtime.api_intake import IntakeApi
from runtime.api_outbox import OutboxApi
from runtime.api_people import PeopleApi
from runtime.api_tokens import TokenApi
from runtime.clock import Clock, SystemClock
from runtime.delivery import ChannelConfig, Deliverer
from runtime.directory import Directory
from runtime.intake import IntakeConfig
from runtime.records import (
    Conflict,
    InvalidCommand,
    NotFound,
    PackVersionRow,
    PublishRefused,
    TicketflowError,
    TicketQuery,
    TimerRow,
)
from runtime.sla import ClockView
from runtime.store import open_store
from runtime.store.base import Store, Tx
from runtime.tickets import Ticket, TimelineEntry, build_env, mask_event, view
from runtime.unit import Signal, Tracked, Unit

DEFAULT_DATABASE = "sqlite:///tickets.db"


@dataclass(frozen=True, slots=True)
class Availability:
    """A transition from the ticket's current state, as one actor sees it."""

    name: str
    title: Any
    to: str
    allowed: bool
    reason: str | None = None
    missing: tuple[str, ...] = ()  # fields that must be filled before it can be taken
    form: tuple[str, ...] = ()
    comment: str = "optional"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; pass `cursor` back for the next one."""

    items: list[Ticket]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class BulkResult:
    """The outcome of one item of a bulk command."""

    index: int
    ticket: Ticket | None = None
    error: TicketflowError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Outcome:
    """What a command did, for `simulate` and callers that want the detail."""

    notes: list[str] = field(default_factory=list)


class Runtime(PeopleApi, OutboxApi, TokenApi, IntakeApi, DraftApi):
    """Runs tickets of any published pack. Thread-safe: share one per process."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        new_id: Callable[[], str] | None = None,
        channels: ChannelConfig | None = None,
        intake: IntakeConfig | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.intake_config = intake
        self._deliverer: Deliverer | None = None
        self.clock = clock or SystemClock()
        self.new_id = new_id or ids.new_id
        self._blueprints: dict[tuple[str, str, int], Blueprint] = {}
        self._lock = Lock()
        self.last_notes: list[str] = []
        self._timer_failures: dict[str, int] = {}
        self._timer_conflicts: dict[str, int] = {}
        self.directory = Directory(self.current)

    # -- set-up ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        packs: str | Path | Sequence[str | Path] = (),
        database_url: str | None = DEFAULT_DATABASE,
        clock: Clock | None = None,
        tenant: str = "default",
        new_id: Callable[[], str] | None = None,
        channels: ChannelConfig | None = None,
        intake: IntakeConfig | None = None,
    ) -> Runtime:
        """Open a database and publish the packs at these paths to `tenant` (a pack that
        is already the latest version is not published again). `channels` says how
        messages leave (mail server, chat endpoints, secrets); see docs/delivery.md."""
        rt = cls(open_store(database_url), clock, new_id, channels, intake)
        paths = [packs] if isinstance(packs, str | Path) else list(packs)
        for path in paths:
            rt.publish(path, tenant=tenant)
        return rt

    def close(self) -> None:
        self.close_deliverer()
        self.store.close()

    def publish(
        self,
        pack: str | Path | PackResult | Pack,
        tenant: str = "default",
        actor: Actor | None = None,
        migrate: Mapping[str, str] | None = None,
    ) -> PackVersionRow:
        """Publish a pack as a new immutable version (see `runtime.packs.publish`)."""
        model = _valid_pack(pack)
        who = actor or Actor.system(tenant)
        now = self.clock.now()
        with self.store.transaction() as tx:
            row, bp = packs.publish(tx, tenant, model, who, now, migrate)
            if bp is not None:
                tx.add_timers(schedules.timers_for(bp, tenant, now, self.new_id))
        if bp is not None:
            with self._lock:
                self._blueprints[(tenant, row.pack, row.version)] = bp
        return row

    def store_heads(self, tenant: str) -> dict[str, int]:
        """The newest published version number of each of the tenant's packs."""
        with self.store.read() as tx:
            return tx.pack_heads(tenant)

    def versions(self, tenant: str, pack: str) -> list[PackVersionRow]:
        with self.store.read() as tx:
            return tx.pack_versions(tenant, pack)

    def blueprint(self, tenant: str, pack: str, version: int) -> Blueprint:
        """The compiled blueprint of a published version (compiled once, then cached)."""
        key = (tenant, pack, version)
        found = self._blueprints.get(key)
        if found is not None:
            return found
        with self.store.read() as tx:
            return self._compile(tx, tenant, pack, version)

    def _compile(self, tx: Tx, tenant: str, pack: str, version: int) -> Blueprint:
        row = tx.pack_version(tenant, pack, version)
        if row is None:
            raise NotFound(f"pack '{pack}' has no version {version}")
        bp = packs.blueprint_of(row)
        with self._lock:
            self._blueprints[(tenant, pack, version)] = bp
        return bp

    def current(self, tenant: str) -> list[Blueprint]:
        """The latest version of each of the tenant's packs."""
        with self.store.read() as tx:
            return self._current_in(tx, tenant)

    def _current_in(self, tx: Tx, tenant: str) -> list[Blueprint]:
        """`current`, read in a transaction the caller holds (a command's own, so that
        it opens no second one)."""
        out = []
        for pack, version in tx.pack_heads(tenant).items():
            found = self._blueprints.get((tenant, pack, version))
            out.append(found if found is not None else self._compile(tx, tenant, pack, version))
        return out

    # -- the command loop ----------------------------------------------------------------------

    def _unit(self, tx: Any, tenant: str, now: datetime, actor: Actor | None = None) -> Unit:
        unit = Unit(tx, tenant, now, self.blueprint, self.new_id, actor)
        unit.directory = self.directory.snapshot
        return unit

    def _command(self, actor: Actor, work: Callable[[Unit], Tracked]) -> Ticket:
        """Run `work` and the rules it sets off in one transaction; the caller gets the
        ticket as it stands after the rules, with its final version."""
        with self.store.transaction() as tx:
            unit = self._unit(tx, actor.tenant, self.clock.now(), actor)
            t = work(unit)
            _settle(unit)
        self.last_notes = unit.notes
        return self._view(t, actor)

    def _view(self, t: Tracked, actor: Actor) -> Ticket:
        return view(t.row, access.readable(t.bp, actor, t.tpl, t.row.state))

    def _on_ticket(
        self,
        ticket_id: str,
        actor: Actor,
        expected_version: int | None,
        do: Callable[[Unit, Tracked], object],
    ) -> Ticket:
        """A command on one ticket: visible to the actor, at the version it expects."""

        def work(unit: Unit) -> Tracked:
            t = unit.load(ticket_id)
            commands.ensure_visible(unit, t, actor)
            self._expect(t, expected_version)
            do(unit, t)
            return t

        return self._command(actor, work)

    @staticmethod
    def _expect(t: Tracked, expected_version: int | None) -> None:
        if expected_version is not None and t.row.version != expected_version:
            raise Conflict(
                f"{t.row.ref} is at version {t.row.version}, not {expected_version}: "
                "it changed since you read it; reload and retry",
                ticket_id=t.row.id,
                version=t.row.version,
            )

    # -- commands ------------------------------------------------------------------------------

    def create(
        self,
        template: str,
        fields: Mapping[str, Any],
        actor: Actor,
        *,
        channel: str | None = None,
        title: str | None = None,
        idempotency_key: str | None = None,
        requester: str | None = None,
    ) -> Ticket:
        """Open a ticket. With an idempotency key, a retry returns the first ticket."""

        def work(unit: Unit) -> Tracked:
            # The packs' heads are read in the command's transaction: one transaction
            # per create, not a read before it.
            bp, tpl = commands.resolve_template(self._current_in(unit.tx, actor.tenant), template)
            if requester is not None and not access.is_staff(bp, actor):
                raise InvalidCommand("only staff may open a ticket on someone else's behalf")
            ticket_id = self.new_id()
            if idempotency_key is not None:
                existing = unit.tx.claim_idempotency_key(actor.tenant, idempotency_key, ticket_id)
                if existing is not None:
                    return unit.load(existing)
            return commands.create(
                unit,
                bp,
                tpl,
                actor,
                fields,
                title=title,
                channel=channel,
                requester=requester,
                ticket_id=ticket_id,
            )

        try:
            return self._command(actor, work)
        except Conflict:
            if idempotency_key is None:
                raise
            # Another process claimed the key at the same moment and has committed since.
            return self._command(actor, work)

    def update(
        self,
        ticket_id: str,
        fields: Mapping[str, Any],
        actor: Actor,
        expected_version: int | None = None,
    ) -> Ticket:
        """Change field values."""
        return self._on_ticket(
            ticket_id, actor, expected_version, lambda u, t: commands.update(u, t, actor, fields)
        )

    def transition(
        self,
        ticket_id: str,
        name: str,
        actor: Actor,
        fields: Mapping[str, Any] | None = None,
        comment: str | None = None,
        expected_version: int | None = None,
    ) -> Ticket:
        """Take a transition, with the values its form asks for."""
        return self._on_ticket(
            ticket_id,
            actor,
            expected_version,
            lambda u, t: commands.transition(u, t, actor, name, fields, comment),
        )

    def comment(
        self,
        ticket_id: str,
        body: str,
        actor: Actor,
        internal: bool = False,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Ticket:
        """Add a public comment, or an internal note (staff only)."""
        return self._on_ticket(
            ticket_id,
            actor,
            None,
            lambda u, t: commands.comment(u, t, actor, body, internal, attachments),
        )

    def assign(
        self, ticket_id: str, to: str, actor: Actor, expected_version: int | None = None
    ) -> Ticket:
        """Assign to `user:<id>` (or a bare id), `role:<name>`, `team:<name>` or `none`."""
        return self._on_ticket(
            ticket_id, actor, expected_version, lambda u, t: commands.assign(u, t, actor, to)
        )

    # -- bulk ----------------------------------------------------------------------------------

    def _bulk(self, calls: Iterable[Callable[[], Ticket]]) -> list[BulkResult]:
        """Each item is its own transaction: one failure does not undo the others."""
        out = []
        for index, call in enumerate(calls):
            try:
                out.append(BulkResult(index, ticket=call()))
            except TicketflowError as exc:
                out.append(BulkResult(index, error=exc))
        return out

    def bulk_create(self, items: Sequence[Mapping[str, Any]], actor: Actor) -> list[BulkResult]:
        """Items are {template, fields, channel?, title?, idempotency_key?, requester?}."""

        def one(item: Mapping[str, Any]) -> Callable[[], Ticket]:
            return partial(
                self.create,
                item["template"],
                item.get("fields", {}),
                actor,
                channel=item.get("channel"),
                title=item.get("title"),
                idempotency_key=item.get("idempotency_key"),
                requester=item.get("requester"),
            )

        return self._bulk(one(item) for item in items)

    def bulk_assign(self, ticket_ids: Sequence[str], to: str, actor: Actor) -> list[BulkResult]:
        return self._bulk(partial(self.assign, i, to, actor) for i in ticket_ids)

    def bulk_transition(
        self,
        ticket_ids: Sequence[str],
        name: str,
        actor: Actor,
        fields: Mapping[str, Any] | None = None,
    ) -> list[BulkResult]:
        return self._bulk(partial(self.transition, i, name, actor, fields) for i in ticket_ids)

    # -- reads ---------------------------------------------------------------------------------

    def _read(self, ticket_id: str, actor: Actor) -> tuple[Unit, Tracked]:
        with self.store.read() as tx:
            unit = self._unit(tx, actor.tenant, self.clock.now())
            t = unit.load(ticket_id)
            commands.ensure_visible(unit, t, actor)
            return unit, t

    def get(self, ticket_id: str, actor: Actor) -> Ticket:
        """The ticket with the fields the actor may read; NotFound if it may not see it."""
        _, t = self._read(ticket_id, actor)
        return self._view(t, actor)

    def form_schema(self, template: str, actor: Actor, state: str | None = None) -> dict[str, Any]:
        """The JSON Schema of a template's form for this actor in `state` (the initial
        state when omitted): fields it may not write are read-only, fields it may not read
        are left out, labels are in the actor's locale."""
        bp, tpl = commands.resolve_template(self.current(actor.tenant), template)
        at = state or tpl.workflow.initial
        if at not in tpl.workflow.states:
            raise InvalidCommand(f"workflow '{tpl.workflow.name}' has no state '{at}'")
        schema = tpl.form.json_schema(
            state=at,
            writable=access.writable(bp, actor, tpl, at) & tpl.field_names,
            locale=actor.locale or bp.model.locales[0],
        )
        readable = access.readable(bp, actor, tpl, at)
        props = {k: v for k, v in schema.get("properties", {}).items() if k in readable}
        required = [k for k in schema.get("required", []) if k in props]
        return {**schema, "properties": props, "required": required}

    def available_transitions(
        self, ticket_id: str, actor: Actor, include_hidden: bool = False
    ) -> list[Availability]:
        """Transitions from the current state: allowed, or why not. Those whose guard is
        false are hidden unless `include_hidden`."""
        unit, t = self._read(ticket_id, actor)
        env = build_env(t.row, t.tpl, actor, unit.now)
        out = []
        for tr in t.tpl.workflow.by_state.get(t.row.state, ()):
            item = _availability(t, actor, tr, env)
            if item is not None or include_hidden:
                out.append(
                    item
                    or Availability(
                        tr.name,
                        tr.title,
                        tr.to,
                        False,
                        f"condition `{tr.guard.text if tr.guard else ''}` is false",
                    )
                )
        return out

    def sla(self, ticket_id: str, actor: Actor) -> list[ClockView]:
        """The ticket's SLA clocks: state, target, elapsed and remaining business time, due
        instant, and the history that explains them."""

        unit, t = self._read(ticket_id, actor)
        return list(sla.views(t, unit.now))

    def timeline(self, ticket_id: str, actor: Actor) -> list[TimelineEntry]:
        """The ticket's history as the actor may see it: customers get public entries only."""
        _, t = self._read(ticket_id, actor)
        with self.store.read() as tx:
            events = tx.events(actor.tenant, ticket_id)
        staff = access.is_staff(t.bp, actor)
        readable = access.readable(t.bp, actor, t.tpl, t.row.state)
        return [mask_event(e, readable) for e in events if staff or e.visibility == "public"]

    def query(
        self,
        actor: Actor,
        *,
        states: Sequence[str] = (),
        templates: Sequence[str] = (),
        assignee: str | None = None,
        team: str | None = None,
        requester: str | None = None,
        text: str | None = None,
        closed: bool | None = None,
        sla_state: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Tickets the actor may see, filtered, oldest first, a page at a time.
        `sla_state` keeps tickets with a clock in that state (running, paused, warning,
        breached, met, stopped)."""
        if not 1 <= limit <= 500:
            raise InvalidCommand("limit must be between 1 and 500")
        if sla_state is not None and sla_state not in sla.DISPLAY_STATES:
            raise InvalidCommand(
                f"unknown SLA state '{sla_state}'; one of {', '.join(sla.DISPLAY_STATES)}"
            )
        current = self.current(actor.tenant)
        clauses = [c for bp in current for c in access.see_clauses(bp, actor)]
        items: list[Ticket] = []
        after = _decode_cursor(cursor)
        while len(items) < limit and clauses:
            q = TicketQuery(
                see=tuple(dict.fromkeys(clauses)),
                states=tuple(states),
                templates=tuple(templates),
                assignees=(assignee,) if assignee else (),
                teams=(team,) if team else (),
                requesters=(requester,) if requester else (),
                text=text,
                closed=closed,
                after=after,
                limit=limit,
            )
            with self.store.read() as tx:
                rows = tx.query_tickets(actor.tenant, q)
                unit = self._unit(tx, actor.tenant, self.clock.now())
                for row in rows:
                    t = unit.add_loaded(row)
                    if len(items) < limit and _shown(t, actor, unit.now, text, sla_state):
                        items.append(self._view(t, actor))
            if len(rows) < limit:
                return Page(items, None)
            after = (rows[-1].created_at, rows[-1].id)
        last = items[-1] if items else None
        return Page(items, _encode_cursor(last.created_at, last.id) if last else None)

    # -- due work --------------------------------------------------------------------------------

    def run_due(self, now: datetime | None = None, limit: int = 100_000, batch: int = 100) -> int:
        """Fire timers due at `now` (the clock's now by default), earliest first; returns
        how many fired. Timers are taken `batch` at a time in one transaction (on
        PostgreSQL locked with SKIP LOCKED, so several workers share the work); if any of
        them fails the batch is retried one timer per transaction."""
        at = now or self.clock.now()
        fired = 0
        while fired < limit:
            size = min(batch, limit - fired)
            try:
                done = self._fire_batch(at, size)
            except Exception:
                done = self._fire_singly(at, size)
            if done == 0:
                break
            fired += done
        return fired

    def _fire_batch(self, at: datetime, size: int) -> int:
        with self.store.transaction() as tx:
            due = tx.due_timers(at, size)
            # Ticket by ticket (each ticket's timers still in due order), so that workers
            # whose batches share tickets touch them in the same order instead of deadlocking.
            for timer in sorted(due, key=lambda x: (x.tenant_id, x.ticket_id or "", x.due_at)):
                self._fire_timer(tx, timer, at)
        return len(due)

    def _fire_singly(self, at: datetime, size: int) -> int:
        done = 0
        for _ in range(size):
            timer: TimerRow | None = None
            try:
                with self.store.transaction() as tx:
                    due = tx.due_timers(at, 1)
                    if not due:
                        return done
                    timer = due[0]
                    self._fire_timer(tx, timer, at)
            except Conflict:
                # A command changed the ticket meanwhile: a retry reads it afresh.
                if timer is None or self._conflicts(timer) > 3:
                    return done
                continue
            except Exception as exc:
                if timer is None or not self._failed_twice(timer):
                    return done  # e.g. a deadlock or a lost connection: retried next time
                self._give_up(timer, at, exc)
            done += 1
        return done

    def _conflicts(self, timer: TimerRow) -> int:
        count = self._timer_conflicts.get(timer.id, 0) + 1
        self._timer_conflicts[timer.id] = count
        return count

    def _failed_twice(self, timer: TimerRow) -> bool:
        """A timer that fails twice in a row on its own is set aside rather than retried
        forever; one failure may be the database's (deadlock, restart)."""
        count = self._timer_failures.get(timer.id, 0) + 1
        self._timer_failures[timer.id] = count
        return count >= 2

    def _fire_timer(self, tx: Any, timer: TimerRow, at: datetime) -> None:
        unit = self._unit(tx, timer.tenant_id, at)
        self._fire(unit, timer)
        _settle(unit)
        tx.mark_timer(timer, "fired", at)
        self.last_notes = unit.notes
        self._timer_conflicts.pop(timer.id, None)
        self._timer_failures.pop(timer.id, None)

    def _run_schedule(self, unit: Unit, timer: TimerRow) -> None:
        """Run a scheduled rule if its version is still the newest (a newer version has
        timers of its own), then set the timer for the next run."""
        pack, version = timer.payload["pack"], timer.payload["version"]
        with_heads = unit.tx.pack_heads(unit.tenant)
        if with_heads.get(pack) != version:
            return
        bp = self.blueprint(unit.tenant, pack, version)
        rule = bp.rules_by_name.get(timer.payload["rule"])
        if rule is None or rule.cron is None:
            return
        rules.run_scheduled(unit, bp, rule)
        _schedule_next(unit, bp, rule, max(unit.now, timer.due_at))

    def _give_up(self, timer: TimerRow, at: datetime, exc: Exception) -> None:
        """A timer that fails on its own is set aside (cancelled) and the failure recorded,
        so it cannot block the queue."""
        with self.store.transaction() as tx:
            tx.mark_timer(timer, "cancelled", at)
            if timer.ticket_id is None:
                return
            unit = self._unit(tx, timer.tenant_id, at)
            try:
                t = unit.load(timer.ticket_id)
            except NotFound:
                return
            data = {"timer": timer.kind, "payload": timer.payload, "error": repr(exc)[:500]}
            unit.event(t, "timer.failed", "system", data)
            unit.flush()

    def _fire(self, unit: Unit, timer: TimerRow) -> None:
        if timer.kind == "schedule":
            self._run_schedule(unit, timer)
            return
        if timer.ticket_id is None:
            return
        try:
            t = unit.load(timer.ticket_id)
        except NotFound:
            return
        payload = timer.payload
        if timer.kind == "event":
            unit.event(t, "event", "system", {"event": payload["event"], "timer": timer.id})
            unit.signal(Signal(timer.ticket_id, f"event:{payload['event']}", 0))
        elif timer.kind == "sla":
            from runtime import sla

            sla.fire(unit, t, payload)
        elif timer.kind == "rule":
            rule = t.bp.rules_by_name.get(payload["rule"])
            if rule is not None and _still_applies(t, payload):
                rules.fire(unit, t, rule, 0)


def _schedule_next(unit: Unit, bp: Blueprint, rule: RuleBp, at: datetime) -> None:
    unit.timers.extend(schedules.timers_for(bp, unit.tenant, at, unit.new_id, (rule,)))


def _settle(unit: Unit) -> None:
    """Run the rules, then bring SLA clocks up to date (which may fire more rules), and
    write everything."""
    for _ in range(4):
        rules.dispatch(unit)
        for t in list(unit.tracked.values()):
            if t.dirty and t.tpl.model.sla:
                from runtime import sla

                env = build_env(t.row, t.tpl, None, unit.now)
                sla.evaluate(unit, t, unit.activity.pop(t.row.id, None), env)
        if not unit.signals:
            break
    unit.flush()


def _shown(
    t: Tracked, actor: Actor, now: datetime, text: str | None, sla_state: str | None = None
) -> bool:
    """A row the store matched is shown if the actor may see it and, for a text search,
    the text is in what the actor may read (never only in a hidden field); with
    `sla_state`, if one of its clocks is in that state."""
    if sla_state is not None and all(c.state != sla_state for c in sla.views(t, now)):
        return False
    env = None
    if access.needs_env_to_see(t.bp, actor, t.row.template):
        env = build_env(t.row, t.tpl, actor, now)
    if not access.can_see(t.bp, actor, t.row, env):
        return False
    if not text:
        return True
    readable = access.readable(t.bp, actor, t.tpl, t.row.state)
    return text.lower() in commands.search_text(t.row, t.tpl, readable)


def _still_applies(t: Tracked, payload: dict[str, Any]) -> bool:
    """A delayed `entered:` rule is void once the ticket has left that state."""
    event = str(payload.get("event", ""))
    if event.startswith("entered:"):
        return t.row.state == event[8:] and t.row.state_entered_at.isoformat() == payload.get(
            "entered_at"
        )
    return True


def _availability(t: Tracked, actor: Actor, tr: Any, env: Mapping[str, Any]) -> Availability | None:
    if tr.guard is not None and not tr.guard.holds(env):
        return None
    refusal = access.transition_refusal(t.bp, actor, t.row, tr)
    base = dict(name=tr.name, title=tr.title, to=tr.to, form=tr.form, comment=tr.comment)
    if refusal is not None:
        return Availability(allowed=False, reason=refusal.message, **base)
    needed = commands.required_fields(t.tpl, tr.to, env, tr.requires)
    missing = tuple(
        n
        for n in needed
        if commands._missing(
            t.row.fields.get(n) if n in t.tpl.field_names else getattr(t.row, n, None)
        )
        and n not in tr.form
    )
    if missing:
        return Availability(
            allowed=False, reason=f"first fill in: {', '.join(missing)}", missing=missing, **base
        )
    return Availability(allowed=True, **base)


def _valid_pack(pack: str | Path | PackResult | Pack) -> Pack:
    if isinstance(pack, Pack):
        return pack
    result = pack if isinstance(pack, PackResult) else load_pack_path(pack)
    if not result.ok or result.pack is None:
        errors = [d for d in result.diagnostics if d.is_error]
        text = render_text(errors[:20], result.texts)
        raise PublishRefused(f"the pack has {len(errors)} error(s):\n{text}")
    return result.pack


def _encode_cursor(created_at: datetime, ticket_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), ticket_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, ticket_id = json.loads(raw)
        return datetime.fromisoformat(when), str(ticket_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCommand("invalid cursor: pass back the cursor of the previous page") from exc
