"""The pydantic model of a definition pack: what a tenant's YAML means, fully typed."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from engine.fields import FieldSpec, LocalizedText, Strict
from engine.values import Duration, Expression, Hours, Locale, Name, Percent, TimeZone

# -- calendars ------------------------------------------------------------------------------


class HolidaySource(Strict):
    """Public holidays of a country (and optionally a subdivision) from the `holidays` data."""

    country: str = Field(description="ISO 3166 country code, e.g. `CN`, `US`, `DE`.")
    subdivision: str | None = Field(
        None, description="State or province code, e.g. `CA` for California, `BY` for Bavaria."
    )


class Calendar(Strict):
    """Business hours: which hours of which days count toward SLA targets."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    timezone: TimeZone | None = Field(
        None, description="IANA time zone of the hours; the pack's time zone when omitted."
    )
    week: dict[str, Hours | list[Hours]] | Literal["24x7"] = Field(
        description="Opening hours by day or day range (`mon-fri`, `sat`, `sun`): "
        "`09:00-18:00`, several spans, overnight `22:00-06:00`, `closed` or `24h`; "
        "or `24x7` for always open."
    )
    holidays: str | HolidaySource | list[str | HolidaySource] | None = Field(
        None, description="Public holidays to skip: a country code such as `CN`, or a list."
    )
    extra_holidays: list[date] = Field(
        default_factory=list, description="Further closed dates (YYYY-MM-DD), e.g. a stock-take."
    )
    extra_workdays: list[date] = Field(
        default_factory=list,
        description="Dates worked although they are weekend days (make-up workdays).",
    )


# -- roles, teams, skills -------------------------------------------------------------------


class Role(Strict):
    """A role people act in."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    description: LocalizedText | None = Field(None, description="What the role does.")
    staff: bool = Field(
        True, description="Staff see internal notes; set false for customers and residents."
    )


class Team(Strict):
    """A team or department that tickets are routed to."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    parent: Name | None = Field(None, description="Parent department, for hand-offs upward.")
    skills: list[Name] | dict[Name, int] = Field(
        default_factory=list,
        description="Skills the team covers: names, or names with a level from 1 to 5.",
    )
    calendar: Name | None = Field(None, description="Calendar of the team's working hours.")
    lead_role: Name | None = Field(None, description="Role that escalations within it go to.")


class Skill(Strict):
    """A skill an agent can have."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")


# -- workflows ------------------------------------------------------------------------------

StateCategory = Literal["new", "open", "pending", "resolved", "closed", "cancelled"]


class State(Strict):
    """A state a ticket can be in."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    category: StateCategory | None = Field(
        None,
        description="What the state means for reports: new, open, pending, resolved, "
        "closed or cancelled.",
    )
    final: bool = Field(False, description="Tickets in a final state are finished.")
    sla: Literal["pause", "stop"] | None = Field(
        None, description="`pause` stops SLA clocks while here; `stop` ends them."
    )
    customer_label: LocalizedText | None = Field(
        None, description="What a customer sees for this state, e.g. 'Engineer on the way'."
    )


class Validation(Strict):
    """A check that refuses a transition with a message the user must act on."""

    check: Expression = Field(
        alias="if", description="Condition that must hold, else the message is shown."
    )
    message: LocalizedText = Field(description="Error shown when the condition is false.")


class Transition(Strict):
    """A move from one or more states to another, with who may take it and what it needs."""

    title: LocalizedText | None = Field(None, description="Button label, per locale.")
    from_: Name | Literal["*"] | list[Name | Literal["*"]] = Field(
        alias="from", description="State or states it leaves from; `*` for any non-final state."
    )
    to: Name = Field(description="State it leads to.")
    roles: list[Name] = Field(
        default_factory=list, description="Roles allowed to take it; empty means any staff role."
    )
    only: Literal["assignee", "requester"] | None = Field(
        None, description="Restrict it further to the ticket's assignee or requester."
    )
    requires: list[Name] = Field(
        default_factory=list, description="Fields that must have a value to take it."
    )
    form: list[Name] = Field(
        default_factory=list, description="Fields asked for in the transition's form."
    )
    when: Expression | None = Field(
        None, description="Guard: the transition is offered only while this is true."
    )
    validate_: list[Validation] = Field(
        default_factory=list,
        alias="validate",
        description="Checks with messages: a false check refuses the transition and says why.",
    )
    comment: Literal["required", "optional", "none"] = Field(
        "optional", description="Whether a comment must, may or may not be given."
    )
    do: list[Action] = Field(default_factory=list, description="Actions run after the move.")


class Workflow(Strict):
    """States and the transitions between them."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    initial: Name = Field(description="State new tickets start in.")
    states: dict[Name, State] = Field(min_length=1, description="The states, by name.")
    transitions: dict[Name, Transition] = Field(
        default_factory=dict, description="The transitions, by name."
    )


# -- actions --------------------------------------------------------------------------------


class TransitionCall(Strict):
    """Take a transition from an automation."""

    name: Name = Field(description="Transition to take.")
    as_: str = Field("system", alias="as", description="Actor it is taken as; `system` default.")


class AssignSpec(Strict):
    """Assign a ticket to a person, role or team, or by a routing strategy."""

    to: str | None = Field(
        None, description="`user:<id>`, `role:<name>`, `team:<name>`, `requester`, `assignee`."
    )
    strategy: RoutingStrategy | list[RoutingStrategy] | None = Field(
        None, description="Routing strategy (or chain) used to pick the person."
    )
    team: Name | None = Field(None, description="Team the strategy picks from.")


Channel = Literal["email", "sms", "wecom", "dingtalk", "slack", "webhook", "push", "in_app"]


def _in_app() -> list[Channel]:
    return ["in_app"]


class NotifySpec(Strict):
    """Send a message to people over one or more channels."""

    to: str | list[str] = Field(
        description="Recipients: `requester`, `assignee`, `watchers`, `mentioned`, "
        "`role:<name>`, `team:<name>`, `user:<id>`."
    )
    via: list[Channel] = Field(default_factory=_in_app, description="Channels to deliver over.")
    message: Name | None = Field(None, description="Message (from `messages`) to send.")


class WebhookSpec(Strict):
    """Call an external system."""

    url: str = Field(pattern=r"^https?://", description="HTTP(S) address to POST to.")
    method: Literal["POST", "PUT", "PATCH"] = Field("POST", description="HTTP method.")
    body: str | None = Field(None, description="Message template of the body; JSON by default.")
    secret: str | None = Field(
        None, description="Name of the secret that signs the body (HMAC-SHA256)."
    )


class CommentSpec(Strict):
    """Add a comment to the ticket."""

    message: Name = Field(description="Message (from `messages`) used as the comment text.")
    internal: bool = Field(True, description="Internal notes are visible to staff only.")


class CreateTicketSpec(Strict):
    """Create another ticket linked to this one (e.g. a warehouse issue from a parts request)."""

    template: Name = Field(description="Template of the new ticket.")
    fields: dict[Name, Any] = Field(
        default_factory=dict,
        description="Field values of the new ticket; strings may use `{{ ticket.field }}`.",
    )
    link: Literal["child", "related", "follow_up"] = Field(
        "child", description="How the tickets are linked."
    )


class ScheduleSpec(Strict):
    """Raise a named event later, for rules that listen to it."""

    event: Name = Field(description="Event name rules can react to with `on: {event: ...}`.")
    after: Duration = Field(description="Delay, e.g. `24h`.")


class RaisePrioritySpec(Strict):
    """Raise the ticket's priority."""

    to: str | None = Field(None, description="Option to set; one step up when omitted.")
    field: Name = Field("priority", description="The priority field.")


class SetAction(Strict):
    """Set field values."""

    set: dict[Name, Any] = Field(description="Values by field name.")


class TransitionAction(Strict):
    """Take a transition."""

    transition: Name | TransitionCall = Field(description="Transition name, or {name, as}.")


class AssignAction(Strict):
    """Assign the ticket."""

    assign: AssignSpec = Field(description="Whom to assign to, or how to pick them.")


class NotifyAction(Strict):
    """Notify people."""

    notify: NotifySpec = Field(description="Recipients, channels and message.")


class WebhookAction(Strict):
    """Call a webhook."""

    webhook: WebhookSpec = Field(description="Where and what to send.")


class CommentAction(Strict):
    """Add a comment."""

    comment: CommentSpec = Field(description="The comment's message and visibility.")


class CreateTicketAction(Strict):
    """Create a linked ticket."""

    create_ticket: CreateTicketSpec = Field(description="Template and values of the new ticket.")


class ScheduleAction(Strict):
    """Schedule a delayed event."""

    schedule: ScheduleSpec = Field(description="Event and delay.")


class RaisePriorityAction(Strict):
    """Raise priority."""

    raise_priority: RaisePrioritySpec = Field(description="Target option or one step up.")


ACTION_KINDS: tuple[str, ...] = (
    "set",
    "transition",
    "assign",
    "notify",
    "webhook",
    "comment",
    "create_ticket",
    "schedule",
    "raise_priority",
)


def _action_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in ACTION_KINDS]
        return keys[0] if len(keys) == 1 else None
    return _model_kind(value)


def _model_kind(value: Any) -> str | None:
    """When serialising, the union member is a model whose first field is its kind."""
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Action = Annotated[
    Annotated[SetAction, Tag("set")]
    | Annotated[TransitionAction, Tag("transition")]
    | Annotated[AssignAction, Tag("assign")]
    | Annotated[NotifyAction, Tag("notify")]
    | Annotated[WebhookAction, Tag("webhook")]
    | Annotated[CommentAction, Tag("comment")]
    | Annotated[CreateTicketAction, Tag("create_ticket")]
    | Annotated[ScheduleAction, Tag("schedule")]
    | Annotated[RaisePriorityAction, Tag("raise_priority")],
    Discriminator(
        _action_kind,
        custom_error_type="unknown-action",
        custom_error_message="an action is a mapping with exactly one of: "
        + ", ".join(ACTION_KINDS),
    ),
]

# -- routing --------------------------------------------------------------------------------

SkillLevel = Annotated[int, Field(ge=1, le=5)]

RoutingStrategy = Literal[
    "manual", "round_robin", "least_loaded", "skills", "nearest", "on_shift", "claim_pool"
]


class Routing(Strict):
    """How a new ticket finds its assignee."""

    strategy: RoutingStrategy | list[RoutingStrategy] = Field(
        description="A strategy, or a chain tried in order where each narrows the candidates: "
        "e.g. [skills, nearest, least_loaded]."
    )
    team: Name | None = Field(None, description="Team whose members are the candidates.")
    role: Name | None = Field(None, description="Only candidates with this role.")
    skills_from: dict[Name, dict[str, list[Name] | dict[Name, SkillLevel]]] = Field(
        default_factory=dict,
        description="Required skills by field value: {field: {option: [skills]}}, or with "
        "minimum levels: {field: {option: {skill: level}}}.",
    )
    location_field: Name | None = Field(
        None, description="Location field the `nearest` strategy measures from."
    )
    near_tie_km: float = Field(
        1.0, ge=0, description="`nearest`: people within this many km of the nearest tie."
    )
    max_km: float | None = Field(
        None, gt=0, description="`nearest`: nobody farther away than this many km."
    )
    location_max_age: Duration | None = Field(
        None, description="`nearest`: ignore locations reported longer ago than this, e.g. `2h`."
    )
    on_shift_only: bool = Field(False, description="Skip people who are not on shift now.")
    max_open: int | None = Field(
        None, ge=1, description="Skip people with this many open tickets or more."
    )
    load_weights: dict[str, float] = Field(
        default_factory=dict,
        description="`least_loaded`: weight of an open ticket by its priority option, "
        "e.g. {P1: 3, P2: 2, P3: 1}; unlisted values weigh 1.",
    )
    load_field: Name = Field("priority", description="The field `load_weights` reads.")


# -- templates ------------------------------------------------------------------------------

IntakeChannel = Literal["web", "email", "api", "qr", "alarm", "phone", "mobile", "portal"]


class Template(Strict):
    """A kind of ticket: its fields, workflow, SLA policies and routing."""

    title: LocalizedText = Field(description="Name shown to people, per locale.")
    description: LocalizedText | None = Field(None, description="What the template is for.")
    ref: str = Field(
        "{seq}",
        description="Reference pattern: text with {yyyy} {yy} {mm} {dd} {seq} {seq:05}, "
        "e.g. `SR-{yyyy}{seq:05}`.",
    )
    summary: str | None = Field(
        None, description="Ticket title built from fields, e.g. `{{ store_no }} {{ category }}`."
    )
    fields: dict[Name, FieldSpec] = Field(default_factory=dict, description="Fields, by name.")
    workflow: Name = Field(description="Workflow tickets of this template follow.")
    sla: list[Name] = Field(default_factory=list, description="SLA policies that may apply.")
    routing: Routing | None = Field(None, description="How new tickets are assigned.")
    channels: list[IntakeChannel] = Field(
        default_factory=list, description="Channels tickets may be created from."
    )


# -- permissions ----------------------------------------------------------------------------

Scope = Literal["own", "assigned", "team", "all", "none"]
FieldSelection = Literal["*"] | list[Name]


class ScopeCondition(Strict):
    """Visibility by a condition on the ticket and the actor."""

    condition: Expression = Field(
        alias="if", description="e.g. `store_no in actor.stores` for a store manager."
    )


class StatePermission(Strict):
    """Field access that applies while the ticket is in a given state."""

    read: FieldSelection | None = Field(None, description="Fields readable in this state.")
    write: FieldSelection | None = Field(None, description="Fields writable in this state.")


class Permission(Strict):
    """What a role may see, create, read and write."""

    see: Scope | list[Scope] | ScopeCondition = Field(
        "none",
        description="Which tickets the role sees: own (requested), assigned, team, all, "
        "or {if: condition}.",
    )
    create: FieldSelection = Field(
        default_factory=list, description="Templates the role may create; `*` for all."
    )
    read: FieldSelection = Field("*", description="Fields the role may read; `*` for all.")
    write: FieldSelection = Field(
        default_factory=list, description="Fields the role may change; `*` for all."
    )
    hide: list[Name] = Field(
        default_factory=list, description="Fields hidden from the role even when `read` is `*`."
    )
    states: dict[Name, StatePermission] = Field(
        default_factory=dict, description="Overrides of read/write while in these states."
    )
    templates: list[Name] = Field(
        default_factory=list, description="Limit this entry to these templates; empty for all."
    )


# -- rules ----------------------------------------------------------------------------------

EventName = Literal[
    "created", "updated", "transitioned", "commented", "assigned", "sla.warning", "sla.breached"
]


class EnteredTrigger(Strict):
    """Fires when a ticket enters a state, optionally after a delay."""

    entered: Name = Field(description="State entered.")
    after: Duration | None = Field(
        None, description="Delay; cancelled if the ticket has left the state by then."
    )


class LeftTrigger(Strict):
    """Fires when a ticket leaves a state."""

    left: Name = Field(description="State left.")
    after: Duration | None = Field(None, description="Delay after leaving.")


class TransitionedTrigger(Strict):
    """Fires when a given transition is taken."""

    transitioned: Name = Field(description="Transition taken.")
    after: Duration | None = Field(None, description="Delay after the transition.")


class UpdatedTrigger(Strict):
    """Fires when one of the given fields changes."""

    updated: list[Name] = Field(min_length=1, description="Fields watched for changes.")


class ScheduleTrigger(Strict):
    """Fires on a schedule, e.g. preventive maintenance every Monday 08:00."""

    schedule: str = Field(
        pattern=r"^\S+\s+\S+\s+\S+\s+\S+\s+\S+$",
        description="Cron expression (minute hour day month weekday), e.g. `0 8 * * MON`.",
    )
    calendar: Name | None = Field(None, description="Skip runs falling outside this calendar.")


class EventTrigger(Strict):
    """Fires on a named event raised by a `schedule` action."""

    event: Name = Field(description="Event name.")


class SlaTrigger(Strict):
    """Fires when an SLA clock warns or breaches."""

    sla: Literal["warning", "breached"] = Field(description="Clock event.")
    metric: Name | None = Field(None, description="Only for this metric.")


TRIGGER_KINDS = ("entered", "left", "transitioned", "updated", "schedule", "event", "sla")


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        keys = [k for k in value if k in TRIGGER_KINDS]
        return keys[0] if len(keys) == 1 else None
    return _model_kind(value)


Trigger = Annotated[
    Annotated[EventName, Tag("name")]
    | Annotated[EnteredTrigger, Tag("entered")]
    | Annotated[LeftTrigger, Tag("left")]
    | Annotated[TransitionedTrigger, Tag("transitioned")]
    | Annotated[UpdatedTrigger, Tag("updated")]
    | Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[EventTrigger, Tag("event")]
    | Annotated[SlaTrigger, Tag("sla")],
    Discriminator(
        _trigger_kind,
        custom_error_type="unknown-trigger",
        custom_error_message="a trigger is an event name or a mapping with exactly one of: "
        + ", ".join(TRIGGER_KINDS),
    ),
]


class Rule(Strict):
    """An automation: when something happens and a condition holds, run actions."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    on: Trigger = Field(description="Event that fires the rule.")
    templates: list[Name] = Field(
        default_factory=list, description="Templates the rule applies to; empty for all."
    )
    condition: Expression | None = Field(
        None, alias="if", description="Condition on the ticket; the rule runs only if true."
    )
    do: list[Action] = Field(min_length=1, description="Actions, run in order.")
    priority: int = Field(0, description="Higher runs first; equal priorities run in name order.")
    enabled: bool = Field(True, description="Disabled rules are kept but never run.")


# -- SLA ------------------------------------------------------------------------------------

STANDARD_METRICS = ("first_response", "next_response", "resolution")


class CustomMetric(Strict):
    """A clock defined by when it starts, pauses and stops."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    start: Expression = Field(
        description="Condition that starts the clock, e.g. `state == 'assigned'`."
    )
    stop: Expression = Field(description="Condition that stops it.")
    pause: Expression | None = Field(None, description="Condition that pauses it.")


class Escalation(Strict):
    """An escalation level: what happens when a clock reaches a point."""

    at: str = Field(
        pattern=r"^(\d{1,3}(\.\d+)?%|breach(\s*\+\s*\S+)?)$",
        description="`50%` of the target, `breach`, or `breach + 2h`.",
    )
    metric: Name | None = Field(None, description="Only for this metric; all when omitted.")
    do: list[Action] = Field(min_length=1, description="Actions run at this level.")


class SlaPolicy(Strict):
    """Targets for how fast tickets are answered and resolved."""

    title: LocalizedText | None = Field(None, description="Name shown to people, per locale.")
    applies_if: Expression | None = Field(
        None, description="Condition choosing the tickets this policy covers."
    )
    calendar: Name | None = Field(
        None, description="Calendar whose business hours the clocks count; 24×7 when omitted."
    )
    priority_field: Name = Field(
        "priority", description="Choice field whose value selects the target."
    )
    metrics: dict[Name, CustomMetric] = Field(
        default_factory=dict,
        description="Custom metrics beside first_response, next_response and resolution.",
    )
    targets: dict[Name, Duration | dict[str, Duration]] = Field(
        min_length=1,
        description="Target per metric: one duration, or one per priority option.",
    )
    pause_in: list[Name] = Field(
        default_factory=list, description="States in which the clocks pause."
    )
    warn_at: Percent | None = Field(None, description="Warn when this share has elapsed, e.g. 80%.")
    on_warning: list[Action] = Field(default_factory=list, description="Actions at the warning.")
    on_breach: list[Action] = Field(default_factory=list, description="Actions at the breach.")
    escalations: list[Escalation] = Field(
        default_factory=list, description="Further escalation levels."
    )


# -- messages -------------------------------------------------------------------------------


class CannedReply(Strict):
    """A prepared reply an agent can insert."""

    title: LocalizedText = Field(description="Name shown in the picker, per locale.")
    body: LocalizedText = Field(description="Reply text (Jinja2), per locale.")
    templates: list[Name] = Field(
        default_factory=list, description="Templates it is offered on; empty for all."
    )


# -- the pack -------------------------------------------------------------------------------


class Pack(Strict):
    """A tenant's definition pack: everything its ticket processes are made of."""

    schema_: str | None = Field(
        None, alias="$schema", description="JSON Schema reference for editors; ignored."
    )
    pack: Name = Field(description="Identifier of the pack, e.g. `retail_store`.")
    title: LocalizedText = Field(description="Name shown to people, per locale.")
    description: LocalizedText | None = Field(None, description="What the pack is for.")
    version: str | None = Field(None, description="Free-form version label of the definitions.")
    timezone: TimeZone = Field(description="IANA time zone, e.g. `Asia/Shanghai`.")
    locales: list[Locale] = Field(
        default_factory=lambda: ["en"],
        min_length=1,
        description="Languages labels are written in; the first is the default.",
    )
    calendars: dict[Name, Calendar] = Field(
        default_factory=dict, description="Business calendars, by name."
    )
    roles: list[Name] | dict[Name, Role] = Field(
        default_factory=list, description="Roles, as a list of names or by name with details."
    )
    skills: list[Name] | dict[Name, Skill] = Field(
        default_factory=list, description="Skills agents and teams can have."
    )
    actor_attributes: dict[Name, Literal["text", "number", "boolean", "list"]] = Field(
        default_factory=dict,
        description="Custom attributes of people from the directory, readable in conditions "
        "as actor.<name>, e.g. `stores: list` for `store_no in actor.stores`.",
    )
    teams: dict[Name, Team] = Field(default_factory=dict, description="Teams, by name.")
    templates: dict[Name, Template] = Field(
        default_factory=dict, description="Ticket templates, by name."
    )
    workflows: dict[Name, Workflow] = Field(default_factory=dict, description="Workflows, by name.")
    permissions: dict[Name, Permission | list[Permission]] = Field(
        default_factory=dict,
        description="What each role may do: one entry, or several scoped to templates.",
    )
    rules: dict[Name, Rule] = Field(default_factory=dict, description="Automations, by name.")
    sla: dict[Name, SlaPolicy] = Field(default_factory=dict, description="SLA policies, by name.")
    messages: dict[Name, LocalizedText] = Field(
        default_factory=dict, description="Message templates (Jinja2), by name, per locale."
    )
    canned_replies: dict[Name, CannedReply] = Field(
        default_factory=dict, description="Canned replies, by name."
    )

    def role_names(self) -> list[str]:
        """Every declared role."""
        return list(self.roles) if isinstance(self.roles, list) else list(self.roles.keys())

    def skill_names(self) -> list[str]:
        """Every declared skill."""
        return list(self.skills) if isinstance(self.skills, list) else list(self.skills.keys())


Transition.model_rebuild()
AssignSpec.model_rebuild()
Workflow.model_rebuild()
Pack.model_rebuild()
