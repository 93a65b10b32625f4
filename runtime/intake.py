"""Intake channel configuration, per tenant: which template each channel opens, how field
values are read off what arrives (email parts, alarm payload paths), who each channel acts
as. Loaded from a YAML file (`IntakeConfig.load`) with located errors; `check_against`
then holds it against a tenant's published packs. Pure: no store, no clock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.source_map import JsonPath, SourceMap, json_pointer
from dsl.yaml_loader import LoadLimits, load_yaml_file, load_yaml_text
from engine.blueprint import Blueprint, TemplateBp
from engine.errors import translate
from engine.fields import Strict
from engine.values import Duration, Name, parse_duration
from runtime import access, commands
from runtime.actors import Actor
from runtime.intake_mail import DEFAULT_MAX_EMAIL_BYTES, EmailPart
from runtime.records import InvalidCommand, PermissionDenied, TicketflowError

# What an intake item led to. `ignored`: recorded (so a redelivery stays quiet) but no
# ticket changed, e.g. an auto-reply, or a "resolved" alarm with nothing open.
Outcome = Literal["created", "attached", "commented", "resolved", "annotated", "ignored"]
MAX_KEY = 200  # longer idempotency or alarm keys are stored as their sha256
MAX_PAYLOAD_BYTES = 64 * 1024

PayloadPath = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_\-@$]+(\.[A-Za-z0-9_\-@$]+)*$",
        max_length=200,
        description="A dotted path into the JSON payload, e.g. `labels.host` or `alerts.0.name`.",
    ),
]
SenderPart = Annotated[
    str,
    Field(
        pattern=r"^(id|name|email|phone|attributes\.[A-Za-z0-9_]+)$",
        description="Part of a directory entry: id, name, email, phone, attributes.<key>.",
    ),
]
Roles = Annotated[
    Name | list[Name], Field(description="A role, or roles: each pack grants its own.")
]
TemplateName = Annotated[
    str,
    Field(
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*/)?[A-Za-z_][A-Za-z0-9_]*$",
        description="A template, as `template` or `pack/template`.",
    ),
]


class IntakeRefused(PermissionDenied):
    """An intake channel refused an item: an unknown sender, a failed captcha, a form
    that is not public. Nothing was stored."""

    code = "intake-refused"


# -- configuration ----------------------------------------------------------------------------


class EmailRoute(Strict):
    """Mail to one address (or any, `*`) opens tickets of one template."""

    to: str = Field(
        min_length=1,
        description="Recipient address this route takes, e.g. `servicedesk@example.com`; "
        "`*` for any address not taken by an earlier route.",
    )
    template: TemplateName = Field(description="Template of the tickets this mail opens.")
    title: EmailPart | None = Field("subject", description="Part of the mail used as title.")
    fields: dict[Name, EmailPart] = Field(
        default_factory=dict,
        description="Field ← part of the mail: subject, body, from_address, from_name, to_address.",
    )
    defaults: dict[Name, Any] = Field(
        default_factory=dict, description="Values of fields the mail does not give."
    )
    sender_fields: dict[Name, SenderPart] = Field(
        default_factory=dict,
        description="Field ← the known sender's directory entry: id, name, email, phone, "
        "or attributes.<key> (e.g. a resident's flat).",
    )
    unknown_senders: Literal["guest", "refuse"] = Field(
        "refuse",
        description="A sender not in the directory: `guest` opens the ticket as a guest "
        "requester in `guest_role`; `refuse` rejects the mail.",
    )
    guest_role: Name | None = Field(None, description="Role guest senders act in.")

    @model_validator(mode="after")
    def _guest_needs_role(self) -> Self:
        if self.unknown_senders == "guest" and self.guest_role is None:
            raise PydanticCustomError(
                "guest-role",
                "`unknown_senders: guest` needs `guest_role:` (the role guests act in)",
            )
        return self

    def takes(self, address: str) -> bool:
        return self.to == "*" or self.to.lower() == address.lower()


class EmailIntake(Strict):
    """Inbound email: routes by recipient, tried in order."""

    routes: list[EmailRoute] = Field(min_length=1, description="Routes, first match wins.")
    max_bytes: int = Field(
        DEFAULT_MAX_EMAIL_BYTES, ge=1024, le=50 * 1024 * 1024, description="Largest message."
    )
    ignore_auto_replies: bool = Field(
        True, description="Record out-of-office and other machine replies without acting."
    )

    def route(self, recipients: Sequence[str]) -> EmailRoute | None:
        """The route for a message to these addresses: the first route, in file order,
        that takes any of them."""
        return next((r for r in self.routes if any(r.takes(a) for a in recipients)), None)


class AlarmStatus(Strict):
    """Where a payload says whether the alarm is firing or resolved."""

    path: PayloadPath = Field(description="Payload path of the status, e.g. `status`.")
    resolved: list[str] = Field(
        min_length=1,
        description="Values meaning resolved, compared without case, e.g. [OK, resolved].",
    )

    def is_resolved(self, payload: Mapping[str, Any]) -> bool:
        value = payload_value(payload, self.path)
        if value is None or isinstance(value, dict | list):
            return False
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        return text.lower() in {v.lower() for v in self.resolved}


class ResolveByTransition(Strict):
    """A resolved alarm takes a transition of its ticket."""

    transition: Name = Field(description="Transition to take, e.g. `resolve`.")
    fields: dict[Name, Any] = Field(
        default_factory=dict, description="Values the transition's form gets."
    )
    from_payload: dict[Name, PayloadPath] = Field(
        default_factory=dict, description="Form values read from the resolved payload."
    )


class AlarmSource(Strict):
    """A monitoring system whose alarms open, and maybe resolve, tickets."""

    template: TemplateName = Field(description="Template of the tickets alarms open.")
    role: Name = Field(description="Role the monitoring system acts in.")
    key: list[PayloadPath] = Field(
        min_length=1, description="Payload paths that together name one alarm, e.g. [host, check]."
    )
    window: Duration = Field(
        "1h", description="Repeats within this time of the previous one attach to its ticket."
    )
    title: PayloadPath | None = Field(None, description="Payload path of the ticket title.")
    fields: dict[Name, PayloadPath] = Field(
        default_factory=dict, description="Field ← payload path."
    )
    defaults: dict[Name, Any] = Field(
        default_factory=dict, description="Values of fields the payload does not give."
    )
    message: PayloadPath | None = Field(
        None, description="Payload path of a human-readable text, quoted in notes."
    )
    status: AlarmStatus | None = Field(
        None, description="How a payload says resolved; without it every alarm is firing."
    )
    on_resolved: Literal["annotate"] | ResolveByTransition = Field(
        "annotate",
        description="`annotate` adds an internal note; `{transition: …}` takes a transition "
        "(and annotates when it cannot be taken).",
    )

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)


class WebIntake(Strict):
    """Public web forms."""

    role: Roles = Field(description="Role(s) anonymous submitters act in.")
    templates: list[TemplateName] = Field(
        default_factory=list, description="Templates with a public form."
    )
    captcha: bool = Field(True, description="Submissions must pass the captcha check.")

    @property
    def roles(self) -> list[str]:
        return role_list(self.role)


class QrIntake(Strict):
    """Forms opened by scanning an asset's QR code."""

    role: Roles = Field(description="Role(s) people who scan a code act in.")

    @property
    def roles(self) -> list[str]:
        return role_list(self.role)


def role_list(role: str | list[str]) -> list[str]:
    return [role] if isinstance(role, str) else list(role)


class TenantIntake(Strict):
    """One tenant's intake channels; a channel left out is closed."""

    email: EmailIntake | None = Field(None, description="Inbound email.")
    alarm: dict[Name, AlarmSource] = Field(
        default_factory=dict, description="Alarm sources, by name."
    )
    web: WebIntake | None = Field(None, description="Public web forms.")
    qr: QrIntake | None = Field(None, description="QR-code forms.")


class IntakeConfig(Strict):
    """Intake channels of every tenant of a deployment."""

    tenants: dict[str, TenantIntake] = Field(
        default_factory=dict, description="Intake channels, by tenant."
    )
    _source: SourceMap = PrivateAttr(default_factory=SourceMap)
    _file: str = PrivateAttr("<intake>")

    def tenant(self, tenant: str) -> TenantIntake:
        """The tenant's channels (none open when the tenant is not configured)."""
        return self.tenants.get(tenant) or TenantIntake()

    @classmethod
    def load(cls, path: Path) -> IntakeConfig:
        """Read an intake config file; `IntakeConfigError` lists located problems."""
        doc, diagnostics = load_yaml_file(path, LoadLimits(max_bytes=512 * 1024))
        return cls._validated(
            doc.data if doc else None, doc.source if doc else None, diagnostics, str(path)
        )

    @classmethod
    def from_text(cls, text: str, name: str = "<intake>") -> IntakeConfig:
        """As `load`, for YAML text."""
        doc, diagnostics = load_yaml_text(text, name, LoadLimits(max_bytes=512 * 1024))
        return cls._validated(
            doc.data if doc else None, doc.source if doc else None, diagnostics, name
        )

    @classmethod
    def _validated(
        cls, data: Any, source: SourceMap | None, diagnostics: list[Diagnostic], name: str
    ) -> IntakeConfig:
        if source is None:
            raise IntakeConfigError(diagnostics)
        if not isinstance(data, dict):
            span = source.value(()) or Span(name, 1, 1)
            raise IntakeConfigError([Diagnostic("not-a-mapping", "expected a mapping", span)])
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise IntakeConfigError(translate(exc, cls, data, source)) from None
        config._source, config._file = source, name
        problems = config._unreachable_routes()
        if problems:
            raise IntakeConfigError(problems)
        return config

    def _unreachable_routes(self) -> list[Diagnostic]:
        """A catch-all route (`to: '*'`) before others leaves them unreachable."""
        out = []
        for tenant, section in self.tenants.items():
            routes = section.email.routes if section.email is not None else []
            for i, route in enumerate(routes[:-1]):
                if route.to == "*":
                    path: JsonPath = ("tenants", tenant, "email", "routes", i, "to")
                    out.append(
                        Diagnostic(
                            "unreachable-route",
                            "this route takes any address, so the routes after it never match",
                            self.locate(path),
                            hint="put the `to: '*'` route last",
                            pointer=json_pointer(path),
                        )
                    )
        return out

    def locate(self, path: JsonPath, prefer_key: bool = False) -> Span:
        """Where a part of the config file is (its value, or its key)."""
        return self._source.locate(path, prefer_key) or Span(self._file, 1, 1)


class IntakeConfigError(Exception):
    """An intake config that cannot be used, with every problem and where it is."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(d.headline() for d in diagnostics))
        self.diagnostics = diagnostics


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What an intake item did. A redelivery (`duplicate`) returns the first outcome."""

    outcome: Outcome
    key: str  # the idempotency key it was stored under
    ticket_id: str | None = None
    ref: str | None = None
    duplicate: bool = False
    occurrences: int | None = None  # alarms: times this alarm fired on the ticket so far
    note: str | None = None  # why it was ignored, or annotated instead of transitioned


# -- payloads and keys ----------------------------------------------------------------------------


def payload_value(payload: Any, path: str) -> Any:
    """The value at a dotted path (`alerts.0.labels.host`), or None when absent."""
    node = payload
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def check_payload(payload: Any) -> str:
    """The payload as JSON text; InvalidCommand when it is not a JSON object or too big."""
    if not isinstance(payload, Mapping):
        raise InvalidCommand("an alarm payload is a JSON object")
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidCommand(f"the alarm payload is not JSON: {exc}") from None
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidCommand(
            f"the alarm payload is {size:,} bytes; the limit is {MAX_PAYLOAD_BYTES:,}"
        )
    return text


def alarm_key(source: str, spec: AlarmSource, payload: Mapping[str, Any]) -> str:
    """The dedup key of an alarm: its source and the values at the key paths."""
    values = [payload_value(payload, p) for p in spec.key]
    missing = [p for p, v in zip(spec.key, values, strict=True) if v is None or v == ""]
    if missing:
        raise InvalidCommand(
            f"alarm source '{source}' names an alarm by {', '.join(spec.key)}; "
            f"the payload has no {', '.join(missing)}",
            missing=missing,
        )
    return short_key(f"{source}:" + json.dumps(values, ensure_ascii=False, separators=(",", ":")))


def short_key(key: str) -> str:
    """The key as stored: long ones become their sha256 (indexes have a size limit)."""
    if len(key) <= MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def intake_key(channel: str, key: str) -> str:
    """Keys are per channel: an alarm id and a form key never collide."""
    if not key or not key.strip():
        raise InvalidCommand("an idempotency key is non-empty text")
    return short_key(f"{channel}:{key.strip()}")


def without_nul(value: Any) -> Any:
    """JSON with U+0000 removed from strings (PostgreSQL cannot store it)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


def fit_value(tpl: TemplateBp, name: str, value: Any) -> Any:
    """A value read off an email or payload, made to fit the field: scalars become text
    for text fields, and text is cut to the field's `max_length`."""
    spec = tpl.fields.get(name)
    if spec is None or value is None:
        return value
    if spec.type in commands.TEXT_TYPES and isinstance(value, int | float | bool):
        value = json.dumps(value) if isinstance(value, bool) else str(value)
    limit = getattr(spec, "max_length", None)
    if isinstance(value, str) and isinstance(limit, int) and len(value) > limit:
        value = value[: max(limit - 1, 0)] + "…"
    return value


# -- checking against the packs -------------------------------------------------------------------


def check_against(
    config: IntakeConfig, tenant: str, blueprints: Sequence[Blueprint]
) -> list[Diagnostic]:
    """Every template, role, field and transition the tenant's channels name must exist
    in its published packs, and each channel's role must be allowed what it will do."""
    section = config.tenants.get(tenant)
    if section is None:
        return []
    checker = _Checker(config, tenant, list(blueprints))
    checker.run(section)
    return checker.out


class _Checker:
    def __init__(self, config: IntakeConfig, tenant: str, blueprints: list[Blueprint]) -> None:
        self.config = config
        self.base: JsonPath = ("tenants", tenant)
        self.blueprints = blueprints
        self.tenant = tenant
        self.out: list[Diagnostic] = []

    def problem(
        self, code: str, message: str, path: JsonPath, hint: str | None = None, key: bool = False
    ) -> None:
        full = (*self.base, *path)
        span = self.config.locate(full, prefer_key=key)
        self.out.append(Diagnostic(code, message, span, hint=hint, pointer=json_pointer(full)))

    def run(self, section: TenantIntake) -> None:
        if section.email is not None:
            for i, route in enumerate(section.email.routes):
                self.email_route(route, ("email", "routes", i))
        for name, source in section.alarm.items():
            self.alarm(source, ("alarm", name))
        if section.web is not None:
            self.roles(section.web.roles, ("web", "role"))
            for i, name in enumerate(section.web.templates):
                found = self.template(name, "web", ("web", "templates", i))
                if found is not None:
                    self.may_create(found, section.web.roles, {}, ("web", "templates", i))
        if section.qr is not None:
            self.roles(section.qr.roles, ("qr", "role"))

    def template(
        self, name: str, channel: str, path: JsonPath
    ) -> tuple[Blueprint, TemplateBp] | None:
        try:
            bp, tpl = commands.resolve_template(self.blueprints, name)
        except TicketflowError as exc:
            self.problem("unknown-template", exc.message, path)
            return None
        if tpl.model.channels and channel not in tpl.model.channels:
            self.problem(
                "channel-not-accepted",
                f"{tpl.name} tickets cannot come in over '{channel}'",
                path,
                hint=f"its channels: {', '.join(tpl.model.channels)}",
            )
        return bp, tpl

    def roles(self, roles: list[str], path: JsonPath) -> None:
        """Each role exists in one of the tenant's packs."""
        known = frozenset[str]().union(*(b.roles for b in self.blueprints))
        for i, role in enumerate(roles):
            if role not in known:
                where = path if len(roles) == 1 else (*path, i)
                self.problem("unknown-role", f"no role '{role}' in the tenant's packs", where)

    def fields(self, tpl: TemplateBp, names: Mapping[str, Any], path: JsonPath) -> None:
        for name in names:
            if name not in tpl.field_names:
                hint = did_you_mean(name, sorted(tpl.field_names))
                message = f"'{tpl.name}' has no field '{name}'"
                self.problem("unknown-field", message, (*path, name), hint, key=True)

    def may_create(
        self,
        found: tuple[Blueprint, TemplateBp],
        roles: list[str],
        given: Mapping[str, Any],
        path: JsonPath,
    ) -> None:
        """Acting in `roles` (those of the template's pack), one may open the template's
        tickets with values for the `given` fields."""
        bp, tpl = found
        mine = [r for r in roles if r in bp.roles]
        role = ", ".join(roles)
        if not mine:
            self.problem("unknown-role", f"no role '{role}' in pack {bp.pack}", path)
            return
        actor = Actor.of("intake-check", mine, self.tenant)
        if not access.can_create(bp, actor, tpl.name):
            self.problem("may-not-create", f"role '{role}' may not create {tpl.name} tickets", path)
            return
        state = tpl.workflow.initial
        required = {*tpl.required, *tpl.required_in.get(state, ())}
        allowed = access.writable(bp, actor, tpl, state) | (
            required & access.readable(bp, actor, tpl, state)
        )
        denied = sorted(n for n in given if n in tpl.field_names and n not in allowed)
        if denied:
            self.problem(
                "may-not-write",
                f"role '{role}' may not set {', '.join(denied)} on a new {tpl.name} ticket",
                path,
            )

    def defaults(self, tpl: TemplateBp, values: Mapping[str, Any], path: JsonPath) -> None:
        known = {k: v for k, v in values.items() if k in tpl.field_names}
        for p in tpl.form.validate(known):
            self.problem("invalid-default", f"{p.field}: {p.message}", (*path, p.field))

    def email_route(self, route: EmailRoute, path: JsonPath) -> None:
        found = self.template(route.template, "email", (*path, "template"))
        if found is None:
            return
        _, tpl = found
        self.fields(tpl, route.fields, (*path, "fields"))
        self.fields(tpl, route.sender_fields, (*path, "sender_fields"))
        self.fields(tpl, route.defaults, (*path, "defaults"))
        self.defaults(tpl, route.defaults, (*path, "defaults"))
        if route.guest_role is not None:
            given = {**route.defaults, **route.fields}
            self.may_create(found, [route.guest_role], given, (*path, "guest_role"))

    def alarm(self, source: AlarmSource, path: JsonPath) -> None:
        found = self.template(source.template, "alarm", (*path, "template"))
        if found is None:
            return
        bp, tpl = found
        self.fields(tpl, source.fields, (*path, "fields"))
        self.fields(tpl, source.defaults, (*path, "defaults"))
        self.defaults(tpl, source.defaults, (*path, "defaults"))
        given = {**source.defaults, **source.fields}
        self.may_create(found, [source.role], given, (*path, "role"))
        actor = Actor.of("intake-check", [source.role], self.tenant)
        if not access.is_staff(bp, actor):
            self.problem(
                "not-staff",
                f"role '{source.role}' is not staff: it cannot write the internal notes "
                "alarms leave on their tickets",
                (*path, "role"),
            )
        if isinstance(source.on_resolved, ResolveByTransition):
            self.resolve_transition(tpl, source.role, source.on_resolved, (*path, "on_resolved"))

    def resolve_transition(
        self, tpl: TemplateBp, role: str, spec: ResolveByTransition, path: JsonPath
    ) -> None:
        wf = tpl.workflow
        if spec.transition not in wf.names():
            self.problem(
                "unknown-transition",
                f"workflow '{wf.name}' has no transition '{spec.transition}'",
                (*path, "transition"),
            )
            return
        roles = {tr.roles for tr in wf.index.values() if tr.name == spec.transition}
        if all(r and role not in r for r in roles):
            self.problem(
                "may-not-transition",
                f"role '{role}' may not take '{spec.transition}'",
                (*path, "transition"),
            )
        self.fields(tpl, spec.fields, (*path, "fields"))
        self.fields(tpl, spec.from_payload, (*path, "from_payload"))
