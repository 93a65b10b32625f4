"""The embedding API's intake side: inbound email, monitoring alarms, public web and QR
forms, and the asset catalogue QR codes name. Every item is stored under an idempotency
key in the transaction that acts on it, so a redelivery returns the first outcome and
changes nothing. Mixed into `runtime.api.Runtime`; the HTTP layer calls these."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dsl.diagnostics import did_you_mean, sort_diagnostics
from dsl.source_map import SourceMap
from engine.blueprint import Blueprint, TemplateBp
from engine.errors import translate
from engine.people import PersonSpec
from runtime import access, commands
from runtime.actors import Actor
from runtime.directory import actor_of
from runtime.intake import (
    AlarmSource,
    EmailRoute,
    IntakeConfig,
    IntakeRefused,
    IntakeResult,
    Outcome,
    ResolveByTransition,
    TenantIntake,
    alarm_key,
    check_against,
    check_payload,
    fit_value,
    intake_key,
    payload_value,
    without_nul,
)
from runtime.intake_assets import (
    Asset,
    AssetError,
    AssetsFile,
    AssetSpec,
    asset_row,
    check_assets,
    read_assets_file,
    slots_for,
)
from runtime.intake_mail import InboundEmail, find_refs, parse_email, ref_regex, strip_quoted
from runtime.records import (
    AlarmRow,
    Conflict,
    IntakeRow,
    InvalidCommand,
    InvalidFields,
    NotFound,
    PermissionDenied,
    SeeClause,
    TicketQuery,
    TransitionUnavailable,
)

if TYPE_CHECKING:
    from dsl.diagnostics import Diagnostic
    from runtime.clock import Clock
    from runtime.delivery import ChannelConfig
    from runtime.directory import Directory
    from runtime.store.base import Store
    from runtime.tickets import Ticket
    from runtime.unit import Tracked, Unit

# Checks whether a captcha answer is right: (tenant, the answer the form sent) -> ok.
CaptchaCheck = Callable[[str, str | None], bool]
ATTEMPTS = 5  # an intake item is retried this often when a concurrent write got in first
MAX_TITLE = 200
# What a step of an intake command did: the ticket, the outcome, what to record with it.
Step = tuple["Tracked", Outcome, dict[str, Any]]


class _Seen(Exception):
    """The key was stored meanwhile: abandon this attempt and return the first outcome."""

    def __init__(self, row: IntakeRow) -> None:
        super().__init__(row.key)
        self.row = row


@dataclass(frozen=True, slots=True)
class QrForm:
    """What scanning an asset's code opens: its template's form, prefilled."""

    asset: Asset
    template: str  # pack/template
    schema: dict[str, Any]
    form_data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublicForm:
    """A template's public web form."""

    template: str  # pack/template
    schema: dict[str, Any]
    captcha: bool


class IntakeApi:
    """Intake channels and the asset catalogue of `Runtime`."""

    store: Store
    clock: Clock
    new_id: Callable[[], str]
    directory: Directory
    channels: ChannelConfig | None
    intake_config: IntakeConfig | None
    # Set by the HTTP layer to check web form captchas; None refuses forms that need one.
    captcha_check: CaptchaCheck | None = None
    _unit: Callable[..., Unit]
    _command: Callable[[Actor, Callable[[Unit], Tracked]], Ticket]
    _read: Callable[[str, Actor], tuple[Unit, Tracked]]
    current: Callable[[str], list[Any]]
    form_schema: Callable[..., dict[str, Any]]

    # -- configuration ------------------------------------------------------------------------

    def intake_channels(self, tenant: str) -> TenantIntake:
        """The tenant's intake channels as configured (all closed without a config)."""
        config = self.intake_config
        return config.tenant(tenant) if config is not None else TenantIntake()

    def check_intake(self, tenant: str) -> list[Diagnostic]:
        """Problems of the tenant's intake config against its published packs: unknown
        templates, roles, fields, transitions, and roles not allowed what they will do."""
        if self.intake_config is None:
            return []
        return check_against(self.intake_config, tenant, self.current(tenant))

    def intake_actor(
        self,
        tenant: str,
        channel: str,
        person: str | None = None,
        name: str | None = None,
        email: str | None = None,
    ) -> Actor:
        """Who a public web or QR submitter acts as: the channel's configured role, under
        `person` (e.g. a portal session's id) or a fresh id, so that no two anonymous
        submitters see each other's tickets."""
        section = self.intake_channels(tenant)
        config = section.web if channel == "web" else section.qr if channel == "qr" else None
        if config is None:
            raise IntakeRefused(f"tenant '{tenant}' has no {channel} intake", channel=channel)
        who = person or f"{channel}:{self.new_id()}"
        return Actor.of(who, config.roles, tenant, name=name, email=email)

    # -- email --------------------------------------------------------------------------------

    def receive_email(
        self, tenant: str, raw: bytes, *, key: str | None = None, recipient: str | None = None
    ) -> IntakeResult:
        """An inbound RFC 822 message: a comment on the ticket whose reference is in the
        subject (if the sender may see it), else a new ticket by the route of its recipient
        (`recipient`, the envelope's, when given; else its headers'). The Message-ID is the
        idempotency key unless `key` is given."""
        section = self.intake_channels(tenant).email
        if section is None:
            raise IntakeRefused(f"tenant '{tenant}' takes no email", channel="email")
        mail = parse_email(raw, section.max_bytes)
        fallback = "sha256:" + hashlib.sha256(raw).hexdigest()
        ikey = intake_key("email", key or mail.message_id or fallback)
        seen = self._seen(tenant, ikey)
        if seen is not None:
            return seen
        recipients = (recipient.lower(),) if recipient else mail.recipients
        route = section.route(recipients)
        if route is None:
            to = ", ".join(recipients) or "no recipient"
            raise IntakeRefused(f"no email route takes mail to {to}", recipients=list(recipients))
        data = _mail_data(mail, route)
        if section.ignore_auto_replies and (mail.auto_reply or self._from_us(mail)):
            note = "an automatic reply" if mail.auto_reply else "sent by ticketflow itself"
            return self._ignore(tenant, ikey, "email", note, data)
        actor, person = self._sender(tenant, mail, route)
        target = self._referenced(tenant, mail.subject, actor)
        if target is not None:
            body = strip_quoted(mail.body) or _attachment_note(mail) or "(empty reply)"

            def reply(unit: Unit) -> Step:
                t = unit.load(target)
                commands.comment(unit, t, actor, body)
                return t, "commented", data

            return self._run(actor, ikey, "email", reply)
        work = self._email_ticket(tenant, mail, route, actor, person, data)
        return self._run(actor, ikey, "email", work)

    def _email_ticket(
        self,
        tenant: str,
        mail: InboundEmail,
        route: EmailRoute,
        actor: Actor,
        person: PersonSpec | None,
        data: dict[str, Any],
    ) -> Callable[[Unit], Step]:
        bp, tpl = commands.resolve_template(self.current(tenant), route.template)
        to = next((a for a in mail.recipients if route.takes(a)), None)
        values: dict[str, Any] = dict(route.defaults)
        for name, part in route.sender_fields.items():
            found = _person_part(person, part) if person is not None else None
            if found is not None and found != "":
                values[name] = fit_value(tpl, name, found)
        for name, part in route.fields.items():
            text = mail.part(part, to)
            if text:
                values[name] = fit_value(tpl, name, text)
        title = (mail.part(route.title, to) if route.title else "")[:MAX_TITLE] or None

        def work(unit: Unit) -> Step:
            t = commands.create(unit, bp, tpl, actor, values, title=title, channel="email")
            return t, "created", data

        return work

    def _sender(
        self, tenant: str, mail: InboundEmail, route: EmailRoute
    ) -> tuple[Actor, PersonSpec | None]:
        """The directory person with the sender's address, else a guest (or a refusal)."""
        with self.store.read() as tx:
            people = self.directory.snapshot(tx, tenant)
        for spec in people.people.values():
            if spec.active and spec.email and spec.email.lower() == mail.from_address:
                return actor_of(spec, tenant), spec
        if route.unknown_senders == "refuse" or route.guest_role is None:
            mailbox = "this address" if route.to == "*" else route.to
            raise IntakeRefused(
                f"{mail.from_address} is not in the directory, and mail to {mailbox} is "
                "taken from known people only",
                sender=mail.from_address,
            )
        name = mail.from_name or None
        guest = Actor.of(
            mail.from_address, [route.guest_role], tenant, name=name, email=mail.from_address
        )
        return guest, None

    def _from_us(self, mail: InboundEmail) -> bool:
        smtp = self.channels.smtp if self.channels is not None else None
        return smtp is not None and parseaddr(smtp.sender)[1].lower() == mail.from_address

    def _referenced(self, tenant: str, subject: str, actor: Actor) -> str | None:
        """The id of the first ticket referenced in the subject that the sender may see."""
        blueprints = self.current(tenant)
        patterns = {
            f"{bp.pack}/{name}": regex
            for bp in blueprints
            for name, tpl in bp.templates.items()
            if (regex := ref_regex(tpl.model.ref)) is not None
        }
        for ref, key in find_refs(subject, patterns):
            pack, _, template = key.partition("/")
            query = TicketQuery(
                see=(SeeClause("all"),), templates=(template,), text=ref.lower(), limit=100
            )
            with self.store.read() as tx:
                unit = self._unit(tx, tenant, self.clock.now())
                for row in tx.query_tickets(tenant, query):
                    if row.ref != ref or row.pack != pack:
                        continue
                    try:
                        commands.ensure_visible(unit, unit.add_loaded(row), actor)
                    except NotFound:
                        continue
                    return row.id
        return None

    # -- alarms -------------------------------------------------------------------------------

    def receive_alarm(
        self, tenant: str, source: str, payload: Mapping[str, Any], *, key: str | None = None
    ) -> IntakeResult:
        """An alarm from a monitoring system. A new alarm opens a ticket; a repeat within
        the source's window of the previous one, while its ticket is open and the alarm
        not resolved, attaches to that ticket; a "resolved" payload takes the configured
        transition or adds an internal note. `key` (e.g. the event id) makes a redelivery
        return the first outcome; without it every call is a new occurrence."""
        spec = self._alarm_source(tenant, source)
        text = check_payload(payload)
        akey = alarm_key(source, spec, payload)
        ikey = intake_key("alarm", key if key is not None else self.new_id())
        seen = self._seen(tenant, ikey)
        if seen is not None:
            return seen
        actor = Actor.of(f"alarm:{source}", [spec.role], tenant, name=source)
        data: dict[str, Any] = {"source": source, "alarm": akey, "payload": json.loads(text)}
        if spec.status is not None and spec.status.is_resolved(payload):
            return self._alarm_resolved(tenant, source, spec, payload, actor, akey, ikey, data)
        bp, tpl = commands.resolve_template(self.current(tenant), spec.template)
        values, title = _alarm_values(spec, tpl, payload)

        def work(unit: Unit) -> Step:
            new_id = self.new_id()
            claim = AlarmRow(tenant, akey, new_id, unit.now, unit.now)
            stored = unit.tx.claim_alarm(claim)
            if stored is not None:
                t = _try_load(unit, stored.ticket_id)
                if t is not None and _repeats(stored, t, spec, unit):
                    stored.count += 1
                    stored.last_at = unit.now
                    unit.tx.update_alarm(stored)
                    return t, "attached", {**data, "occurrences": stored.count}
            t = commands.create(
                unit, bp, tpl, actor, values, title=title, channel="alarm", ticket_id=new_id
            )
            if stored is not None:  # the window passed, or the ticket was closed: start over
                stored.ticket_id, stored.last_at, stored.count = new_id, unit.now, 1
                stored.resolved_at = None
                unit.tx.update_alarm(stored)
            return t, "created", {**data, "occurrences": 1}

        return self._run(actor, ikey, "alarm", work)

    def _alarm_source(self, tenant: str, source: str) -> AlarmSource:
        sources = self.intake_channels(tenant).alarm
        spec = sources.get(source)
        if spec is None:
            hint = did_you_mean(source, sorted(sources))
            raise NotFound(
                f"no alarm source '{source}' for tenant '{tenant}'" + (f"; {hint}" if hint else ""),
                source=source,
            )
        return spec

    def _alarm_resolved(
        self,
        tenant: str,
        source: str,
        spec: AlarmSource,
        payload: Mapping[str, Any],
        actor: Actor,
        akey: str,
        ikey: str,
        data: dict[str, Any],
    ) -> IntakeResult:
        with self.store.read() as tx:
            known = tx.alarm(tenant, akey)
        if known is None:
            return self._ignore(tenant, ikey, "alarm", "no alarm of this key is open", data)
        note = _alarm_note(source, spec, payload)

        def work(unit: Unit) -> Step:
            # Locked now: a repeat of this alarm waits until we are done.
            stored = unit.tx.claim_alarm(known) or known
            t = unit.load(stored.ticket_id)
            if stored.resolved_at is not None or t.row.closed:
                done = "its ticket is closed" if t.row.closed else "it was resolved before"
                return t, "ignored", {**data, "note": done, "occurrences": stored.count}
            outcome, why = _resolve(unit, t, actor, spec, payload, note)
            stored.resolved_at = unit.now
            unit.tx.update_alarm(stored)
            return t, outcome, {**data, "note": why, "occurrences": stored.count}

        return self._run(actor, ikey, "alarm", work)

    # -- forms --------------------------------------------------------------------------------

    def public_form(self, tenant: str, template: str, locale: str | None = None) -> PublicForm:
        """A template's public web form, as an anonymous submitter sees it."""
        bp, tpl = self._public_template(tenant, template)
        web = self.intake_channels(tenant).web
        assert web is not None  # _public_template checked it
        actor = Actor.of("web:form", web.roles, tenant, locale=locale)
        name = f"{bp.pack}/{tpl.name}"
        return PublicForm(name, self.form_schema(name, actor), web.captcha)

    def submit_form(
        self,
        tenant: str,
        template: str,
        fields: Mapping[str, Any],
        actor: Actor,
        *,
        channel: str = "web",
        key: str | None = None,
        captcha: str | None = None,
    ) -> IntakeResult:
        """A public web form (`channel="web"`: the template must be public, and the captcha
        answer right when the tenant asks for one) or a QR form (`"qr"`) submitted: a new
        ticket. `key` makes a resubmission return the first ticket."""
        if actor.tenant != tenant:
            raise InvalidCommand(f"the actor is of tenant '{actor.tenant}', not '{tenant}'")
        if channel == "web":
            bp, tpl = self._public_template(tenant, template)
            web = self.intake_channels(tenant).web
            if web is not None and web.captcha:
                self._check_captcha(tenant, captcha)
        elif channel == "qr":
            if self.intake_channels(tenant).qr is None:
                raise IntakeRefused(f"tenant '{tenant}' has no qr intake", channel="qr")
            bp, tpl = self._template_for(tenant, template, "qr")
        else:
            raise InvalidCommand(f"forms come in over 'web' or 'qr', not '{channel}'")
        ikey = intake_key(channel, key if key is not None else self.new_id())
        seen = self._seen(tenant, ikey)
        if seen is not None:
            return seen
        values = dict(fields)

        def work(unit: Unit) -> Step:
            t = commands.create(unit, bp, tpl, actor, values, channel=channel)
            return t, "created", {"template": f"{bp.pack}/{tpl.name}"}

        return self._run(actor, ikey, channel, work)

    def _template_for(
        self, tenant: str, template: str, channel: str
    ) -> tuple[Blueprint, TemplateBp]:
        bp, tpl = commands.resolve_template(self.current(tenant), template)
        if tpl.model.channels and channel not in tpl.model.channels:
            raise InvalidCommand(
                f"{tpl.name} tickets cannot come in over '{channel}'; "
                f"its channels: {', '.join(tpl.model.channels)}",
                template=tpl.name,
                channel=channel,
            )
        return bp, tpl

    def _public_template(self, tenant: str, template: str) -> tuple[Blueprint, TemplateBp]:
        web = self.intake_channels(tenant).web
        if web is None:
            raise IntakeRefused(f"tenant '{tenant}' has no public web forms", channel="web")
        bp, tpl = self._template_for(tenant, template, "web")
        if not {tpl.name, f"{bp.pack}/{tpl.name}"} & set(web.templates):
            raise IntakeRefused(
                f"{tpl.name} has no public form; public: {', '.join(web.templates) or 'none'}",
                template=tpl.name,
            )
        return bp, tpl

    def _check_captcha(self, tenant: str, answer: str | None) -> None:
        check = self.captcha_check
        if check is None:
            raise IntakeRefused(
                "public forms of this tenant need a captcha, and no captcha check is "
                "installed (set Runtime.captcha_check)",
                reason="captcha",
            )
        if not answer or not check(tenant, answer):
            raise IntakeRefused("the captcha answer is missing or wrong", reason="captcha")

    # -- QR codes and assets ------------------------------------------------------------------

    def qr_form(self, tenant: str, code: str, actor: Actor) -> QrForm:
        """The form a scanned asset code opens: its template's form schema for `actor`,
        with the asset fields that take its type set to the code and the asset's
        `fields` values prefilled (those the actor may see)."""
        if self.intake_channels(tenant).qr is None:
            raise IntakeRefused(f"tenant '{tenant}' has no qr intake", channel="qr")
        with self.store.read() as tx:
            row = tx.asset(tenant, code)
        if row is None:
            raise NotFound(f"no asset with code '{code}'", code=code)
        asset = Asset.of(row)
        bp, tpl = self._template_for(tenant, asset.template, "qr")
        if not access.can_create(bp, actor, tpl.name):
            raise PermissionDenied(f"you may not create {tpl.name} tickets", template=tpl.name)
        name = f"{bp.pack}/{tpl.name}"
        schema = self.form_schema(name, actor)
        data: dict[str, Any] = dict.fromkeys(slots_for(tpl, asset.type), asset.code)
        data.update(asset.fields)
        shown = schema.get("properties", {})
        return QrForm(asset, name, schema, {k: v for k, v in data.items() if k in shown})

    def put_assets(self, tenant: str, items: Sequence[AssetSpec | Mapping[str, Any]]) -> int:
        """Add or replace assets by code, all or none: `AssetError` lists every problem."""
        raw = [i.model_dump() if isinstance(i, AssetSpec) else dict(i) for i in items]
        try:
            specs = AssetsFile.model_validate({"assets": raw}).assets
        except ValidationError as exc:
            problems = translate(exc, AssetsFile, {"assets": raw}, SourceMap())
            raise AssetError(problems) from None
        return self._put_assets(tenant, specs, SourceMap(), "<assets>")

    def import_assets(self, tenant: str, path: str | Path) -> int:
        """Load assets from a YAML (`assets: [...]`) or CSV file; errors are located."""
        specs, source, name = read_assets_file(path)
        return self._put_assets(tenant, specs, source, name)

    def _put_assets(self, tenant: str, specs: list[AssetSpec], source: SourceMap, file: str) -> int:
        checked, problems = check_assets(specs, self.current(tenant), source, file)
        if problems:
            raise AssetError(sort_diagnostics(problems))
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.put_assets(tenant, [asset_row(tenant, spec, now) for spec in checked])
        return len(checked)

    def assets(self, tenant: str) -> list[Asset]:
        """The tenant's assets by code."""
        with self.store.read() as tx:
            return [Asset.of(row) for row in tx.assets(tenant)]

    # -- occurrences --------------------------------------------------------------------------

    def occurrences(
        self, ticket_id: str, actor: Actor, after: str | None = None, limit: int = 100
    ) -> list[IntakeRow]:
        """The intake items that opened or reached a ticket (alarm repeats, email
        replies), oldest first; `after` is the key of the last item of the previous page.
        NotFound unless the actor may see the ticket."""
        if not 1 <= limit <= 500:
            raise InvalidCommand("limit must be between 1 and 500")
        self._read(ticket_id, actor)
        with self.store.read() as tx:
            return tx.intake_of_ticket(actor.tenant, ticket_id, after, limit)

    # -- the intake command -------------------------------------------------------------------

    def _seen(self, tenant: str, key: str) -> IntakeResult | None:
        with self.store.read() as tx:
            row = tx.intake(tenant, key)
        return None if row is None else _result(row, duplicate=True)

    def _run(
        self, actor: Actor, key: str, channel: str, step: Callable[[Unit], Step]
    ) -> IntakeResult:
        """Run `step` and store the intake item in one transaction. When a concurrent
        transaction got in first (the same key, a lock, a ticket version) it runs again,
        and a key stored meanwhile returns its outcome."""
        done: list[IntakeRow] = []

        def command(unit: Unit) -> Tracked:
            found = unit.tx.intake(unit.tenant, key)
            if found is not None:
                raise _Seen(found)
            t, outcome, data = step(unit)
            row = IntakeRow(
                unit.tenant,
                key,
                channel,
                unit.now,
                outcome,
                t.row.id,
                without_nul({**data, "ref": t.row.ref}),
            )
            unit.tx.add_intake(row)
            done.append(row)
            return t

        for attempt in range(ATTEMPTS):
            done.clear()
            try:
                self._command(actor, command)
                return _result(done[-1])
            except _Seen as seen:
                return _result(seen.row, duplicate=True)
            except Conflict:
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _ignore(
        self, tenant: str, key: str, channel: str, note: str, data: dict[str, Any]
    ) -> IntakeResult:
        """Record an item that changes no ticket, so its redeliveries stay quiet too."""
        row = IntakeRow(
            tenant,
            key,
            channel,
            self.clock.now(),
            "ignored",
            None,
            without_nul({**data, "note": note}),
        )
        try:
            with self.store.transaction() as tx:
                found = tx.intake(tenant, key)
                if found is not None:
                    return _result(found, duplicate=True)
                tx.add_intake(row)
        except Conflict:
            seen = self._seen(tenant, key)
            if seen is None:
                raise
            return seen
        return _result(row)


# -- helpers ------------------------------------------------------------------------------------


def _result(row: IntakeRow, duplicate: bool = False) -> IntakeResult:
    data = row.data
    outcome: Any = row.outcome
    return IntakeResult(
        outcome,
        row.key,
        row.ticket_id,
        data.get("ref"),
        duplicate,
        data.get("occurrences"),
        data.get("note"),
    )


def _mail_data(mail: InboundEmail, route: EmailRoute) -> dict[str, Any]:
    return {
        "message_id": mail.message_id,
        "from": mail.from_address,
        "subject": mail.subject[:500],
        "route": route.to,
        "attachments": [a.as_json() for a in mail.attachments],
    }


def _person_part(person: PersonSpec, part: str) -> Any:
    """A part of a directory entry (`phone`, `attributes.flat`, ...) or None."""
    if part.startswith("attributes."):
        return person.attributes.get(part.removeprefix("attributes."))
    return getattr(person, part, None)


def _attachment_note(mail: InboundEmail) -> str:
    names = [a.name or a.content_type for a in mail.attachments]
    return f"(sent {', '.join(names)})" if names else ""


def _alarm_values(
    spec: AlarmSource, tpl: TemplateBp, payload: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    values: dict[str, Any] = dict(spec.defaults)
    for name, path in spec.fields.items():
        value = payload_value(payload, path)
        if value is not None and value != "":
            values[name] = fit_value(tpl, name, value)
    title = payload_value(payload, spec.title) if spec.title else None
    return values, (str(title)[:MAX_TITLE] or None) if title is not None else None


def _alarm_note(source: str, spec: AlarmSource, payload: Mapping[str, Any]) -> str:
    message = payload_value(payload, spec.message) if spec.message else None
    return f"Alarm '{source}' resolved" + (f": {message}" if message else ".")


def _try_load(unit: Unit, ticket_id: str) -> Tracked | None:
    try:
        return unit.load(ticket_id)
    except NotFound:
        return None


def _repeats(stored: AlarmRow, t: Tracked, spec: AlarmSource, unit: Unit) -> bool:
    """A repeat attaches while its ticket is open, the alarm unresolved, and the previous
    occurrence within the window."""
    return (
        not t.row.closed
        and stored.resolved_at is None
        and unit.now - stored.last_at <= spec.window_delta
    )


def _resolve(
    unit: Unit,
    t: Tracked,
    actor: Actor,
    spec: AlarmSource,
    payload: Mapping[str, Any],
    note: str,
) -> tuple[Outcome, str | None]:
    """Take the resolving transition, or leave an internal note (also when the transition
    cannot be taken now, saying why)."""
    how = spec.on_resolved
    if not isinstance(how, ResolveByTransition):
        commands.comment(unit, t, actor, note, internal=True)
        return "annotated", None
    values = dict(how.fields)
    for name, path in how.from_payload.items():
        value = payload_value(payload, path)
        if value is not None:
            values[name] = fit_value(t.tpl, name, value)
    tr = t.tpl.workflow.transition(t.row.state, how.transition)
    if tr is None:
        why = f"'{how.transition}' cannot be taken from state '{t.row.state}'"
    else:
        comment = None if tr.comment == "none" else note
        try:
            commands.transition(unit, t, actor, how.transition, values, comment)
            return "resolved", None
        except (InvalidFields, PermissionDenied, TransitionUnavailable, InvalidCommand) as exc:
            why = exc.message
    commands.comment(unit, t, actor, f"{note}\nNot resolved automatically: {why}", internal=True)
    return "annotated", why
