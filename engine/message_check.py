"""Check message templates (Jinja2) when a pack is validated, not when they first fail.

Messages, canned replies, webhook bodies and templated `create_ticket` values are rendered in
a sandbox at run time (runtime/render.py). Here they are only *parsed*, never compiled:
compiling constant-folds, so `{{ 9**(9**7) }}` or `{{ 'x'|center(10000000000) }}` would run
while an admin validates the pack (DESIGN.md, "Known traps"). For the same reason Jinja's
`meta.find_undeclared_variables` is not used: it runs the code generator, which folds
constant output. The syntax tree is walked by hand against an allow-list: the template may
read `ticket`, `recipient`, `actor`, `range(...)` and variables it binds itself; everything
else is refused or reported as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.filters import FILTERS
from jinja2.tests import TESTS

from dsl.diagnostics import did_you_mean, known_list
from dsl.source_map import JsonPath
from engine.fields import LocalizedText
from engine.model import (
    CommentAction,
    CreateTicketAction,
    NotifyAction,
    Pack,
    ScheduleTrigger,
    WebhookAction,
)

# The runtime refuses longer template sources (runtime/render.MAX_TEMPLATE); engine does not
# import runtime, so the limit is stated here too. Nothing else depends on it yet.
MAX_TEMPLATE = 20_000

# What `ticket.` holds besides the template's fields (runtime/notify.ticket_context).
TICKET_ATTRIBUTES = (
    "id",
    "ref",
    "title",
    "state",
    "template",
    "requester",
    "assignee",
    "team",
    "channel",
    "state_title",
)
RECIPIENT_ATTRIBUTES = ("id", "name", "locale")
ROOTS = ("ticket", "labels", "recipient", "actor", "range")
# Names Jinja (or web frameworks, in the payloads people copy) offer that lead to Python
# objects rather than ticket data.
INTERNAL_NAMES = frozenset(
    {
        "self",
        "super",
        "caller",
        "varargs",
        "kwargs",
        "cycler",
        "joiner",
        "namespace",
        "lipsum",
        "dict",
        "config",
        "request",
        "session",
        "g",
        "url_for",
        "get_flashed_messages",
    }
)
# Filters that read attributes named by a string argument, and those naming another filter
# or test (`map('attr', '__class__')` is the attr filter in disguise).
ATTRIBUTE_FILTERS = frozenset(
    {"map", "select", "reject", "selectattr", "rejectattr", "sort", "groupby", "unique"}
    | {"min", "max", "sum", "join"}
)
FIRST_ARG_IS_ATTRIBUTE = frozenset({"selectattr", "rejectattr", "groupby", "sum"})
NAMES_A_FILTER = frozenset({"map", "select", "reject", "selectattr", "rejectattr"})
REFUSED_TAGS: dict[type[nodes.Node], tuple[str, str]] = {
    nodes.Macro: ("macro", "a macro can call itself without end"),
    nodes.CallBlock: ("call", "it calls a macro, and a macro can call itself without end"),
    nodes.Include: ("include", "there are no other templates to load"),
    nodes.Import: ("import", "there are no other templates to load"),
    nodes.FromImport: ("from ... import", "there are no other templates to load"),
    nodes.Extends: ("extends", "there are no other templates to load"),
    nodes.Block: ("block", "blocks only make sense with {% extends %}"),
}
# Expression nodes with nothing to check of their own; their children are checked.
PLAIN_EXPRESSIONS = (
    nodes.Literal,  # Const, TemplateData, Tuple, List, Dict
    nodes.Pair,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Slice,
)
WHY = "message templates may read ticket fields only"
SYNTAX_HINT = (
    "write values as {{ ticket.field }}, conditions as {% if ... %}...{% endif %}, "
    "loops as {% for x in ... %}...{% endfor %}"
)
# Parsing needs an environment for its delimiters only; it is never used to compile.
_PARSER = Environment(autoescape=False)


class Reporter(Protocol):
    """`PackChecker.report`: records a diagnostic at a data path of the pack."""

    def __call__(self, code: str, message: str, path: JsonPath, hint: str | None = None) -> None:
        """Record one diagnostic."""


@dataclass(frozen=True, slots=True)
class TicketScope:
    """What `ticket.<name>` may read where a template renders."""

    fields: frozenset[str]
    where: str  # e.g. "template 'repair'", for messages
    has_ticket: bool = True


# Scheduled rules render with an empty ticket (runtime/rules.run_scheduled).
NO_TICKET = TicketScope(frozenset(), "a scheduled rule", has_ticket=False)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a template; `line` is the line within the template."""

    code: str
    message: str
    hint: str | None
    line: int = 1


# -- one template ---------------------------------------------------------------------------


def template_problems(text: str, scope: TicketScope) -> list[Problem]:
    """Everything wrong with one template text, in reading order, without repeats."""
    if len(text) > MAX_TEMPLATE:
        return [
            Problem(
                "template-too-long",
                f"the template is {len(text):,} characters long; at most {MAX_TEMPLATE:,} "
                "are allowed",
                "shorten it; put long texts in a document the message links to",
            )
        ]
    try:
        tree = _PARSER.parse(text)
        walker = _Walker(scope)
        walker.body(tree.body, frozenset())
    except TemplateSyntaxError as exc:
        return [_syntax_problem(exc)]
    except RecursionError:
        return [Problem("template-syntax", "the template is nested too deeply", SYNTAX_HINT)]
    return _with_lines(walker.problems, multiline="\n" in text)


def _syntax_problem(exc: TemplateSyntaxError) -> Problem:
    line = exc.lineno or 1
    return Problem(
        "template-syntax",
        f"the template does not parse (line {line} of the template): {exc.message}",
        SYNTAX_HINT,
        line,
    )


def _with_lines(problems: list[Problem], multiline: bool) -> list[Problem]:
    """Drop repeats; name the line where a template has several (the diagnostic points at
    the template's start)."""
    seen: set[tuple[str, str]] = set()
    out: list[Problem] = []
    for p in problems:
        if (p.code, p.message) in seen:
            continue
        seen.add((p.code, p.message))
        message = f"{p.message} (line {p.line} of the template)" if multiline else p.message
        out.append(Problem(p.code, message, p.hint, p.line))
    return out


def _dotted(node: nodes.Node) -> str | None:
    """`ticket.parts[0].qty`-like text of an access chain, for messages."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        inner = _dotted(node.node)
        return None if inner is None else f"{inner}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _dotted(node.node)
        return None if inner is None else f'{inner}["{node.arg.value}"]'
    return None


def _targets(node: nodes.Node) -> frozenset[str]:
    """Names a `{% set %}`, `{% for %}` or `{% with %}` target binds."""
    if isinstance(node, nodes.Name):
        return frozenset({node.name})
    if isinstance(node, nodes.Tuple):
        return frozenset(n for item in node.items for n in _targets(item))
    return frozenset()


class _Walker:
    """Walks a parsed template in reading order, tracking the variables it binds."""

    def __init__(self, scope: TicketScope) -> None:
        self.scope = scope
        self.problems: list[Problem] = []
        self.macros: set[str] = set()  # refused already; calling them is not reported again

    def unsafe_since(self, before: int) -> bool:
        """Whether a template-unsafe problem was found after the first `before` problems:
        one per access chain is enough."""
        return any(p.code == "template-unsafe" for p in self.problems[before:])

    def add(self, code: str, node: nodes.Node, message: str, hint: str | None) -> None:
        self.problems.append(Problem(code, message, hint, node.lineno))

    # -- statements ---------------------------------------------------------------------
    def body(self, stmts: Iterable[nodes.Node], bound: frozenset[str]) -> frozenset[str]:
        for stmt in stmts:
            bound = self.stmt(stmt, bound)
        return bound

    def stmt(self, node: nodes.Node, bound: frozenset[str]) -> frozenset[str]:
        """Check one statement; returns the variables bound after it."""
        if isinstance(node, nodes.Output):
            self.exprs(node.nodes, bound)
        elif isinstance(node, nodes.For):
            self.for_loop(node, bound)
        elif isinstance(node, nodes.If):
            return self.if_block(node, bound)
        elif isinstance(node, nodes.Assign):
            self.expr(node.node, bound)
            return bound | self.bind(node.target)
        elif isinstance(node, nodes.AssignBlock):
            self.body(node.body, bound)
            self.expr(node.filter, bound)
            return bound | self.bind(node.target)
        elif isinstance(node, nodes.With):
            self.exprs(node.values, bound)
            self.body(node.body, bound | {n for t in node.targets for n in self.bind(t)})
        elif isinstance(node, nodes.FilterBlock):
            self.expr(node.filter, bound)
            self.body(node.body, bound)
        elif isinstance(node, nodes.ScopedEvalContextModifier):  # {% autoescape %}
            self.body(node.body, bound)
        else:
            self.refuse_tag(node)
        return bound

    def for_loop(self, node: nodes.For, bound: frozenset[str]) -> None:
        # The loop's variables and `loop` exist inside it only; `{% set %}` in it stays there.
        self.expr(node.iter, bound)
        inner = bound | self.bind(node.target)
        self.expr(node.test, inner)
        self.body(node.body, inner | {"loop"})
        self.body(node.else_, bound)

    def if_block(self, node: nodes.If, bound: frozenset[str]) -> frozenset[str]:
        # Jinja's `if` opens no scope: what a branch sets is visible after it (when taken).
        self.expr(node.test, bound)
        after = self.body(node.body, bound)
        for branch in node.elif_:
            after |= self.if_block(branch, bound)
        return after | self.body(node.else_, bound)

    def bind(self, target: nodes.Node) -> frozenset[str]:
        if isinstance(target, nodes.NSRef):
            self.add(
                "template-unsafe",
                target,
                f"setting '{target.name}.{target.attr}' is not allowed: {WHY}",
                "bind a plain variable: {% set total = ... %}",
            )
        return _targets(target)

    def refuse_tag(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Macro):
            self.macros.add(node.name)
        tag, why = REFUSED_TAGS.get(type(node), (type(node).__name__.lower(), WHY))
        self.add(
            "template-unsafe",
            node,
            f"{{% {tag} %}} is not allowed in a message template: {why}",
            "write the text out in the message; repeat with {% for i in range(n) %}",
        )

    # -- expressions --------------------------------------------------------------------
    def exprs(self, items: Iterable[nodes.Node], bound: frozenset[str]) -> None:
        for item in items:
            self.expr(item, bound)

    def expr(self, node: nodes.Node | None, bound: frozenset[str]) -> None:
        if node is None:
            return
        if isinstance(node, nodes.Name):
            self.name(node, bound)
        elif isinstance(node, nodes.Getattr):
            self.member(node, node.node, node.attr, bound)
        elif isinstance(node, nodes.Getitem):
            key = node.arg
            if isinstance(key, nodes.Const) and isinstance(key.value, str):
                self.member(node, node.node, key.value, bound)
            else:
                self.exprs((node.node, key), bound)
        elif isinstance(node, nodes.Call):
            self.call(node, bound)
        elif isinstance(node, nodes.Filter | nodes.Test):
            self.filter_or_test(node, bound)
        elif isinstance(node, PLAIN_EXPRESSIONS):
            self.exprs(node.iter_child_nodes(), bound)
        else:
            self.add(
                "template-unsafe",
                node,
                f"'{type(node).__name__}' is not allowed in a message template: {WHY}",
                None,
            )

    def name(self, node: nodes.Name, bound: frozenset[str]) -> None:
        name = node.name
        if name in bound or name in ROOTS:
            return
        if name.startswith("_") or name in INTERNAL_NAMES:
            self.add(
                "template-unsafe",
                node,
                f"'{name}' is not allowed in a message template: it reaches the template "
                f"engine's internals, and {WHY}",
                f"read data through {', '.join(ROOTS)}",
            )
            return
        fields = self.scope.fields | set(TICKET_ATTRIBUTES)
        self.add(
            "unknown-name",
            node,
            f"unknown name '{name}' in the template",
            f"did you mean 'ticket.{name}'? fields are read as ticket.<field>"
            if name in fields
            else did_you_mean(name, [*ROOTS, *bound])
            or f"a template reads {', '.join(ROOTS)} and the variables it sets itself",
        )

    def member(self, node: nodes.Node, obj: nodes.Node, key: str, bound: frozenset[str]) -> None:
        """`obj.key` or `obj['key']`."""
        before = len(self.problems)
        self.expr(obj, bound)
        if key.startswith("_"):
            # Report the first private name of a chain once, not every link after it.
            if not self.unsafe_since(before):
                self.add(
                    "template-unsafe",
                    node,
                    f"'{_dotted(node) or key}' is not allowed: names starting with '_' reach "
                    f"Python internals, and {WHY}",
                    "read a field as ticket.<field>",
                )
            return
        if isinstance(obj, nodes.Name) and obj.name not in bound:
            if obj.name in ("ticket", "labels"):
                self.ticket_field(node, key, obj.name)
            elif obj.name == "recipient" and key not in RECIPIENT_ATTRIBUTES:
                self.add(
                    "unknown-field",
                    node,
                    f"recipient.{key} does not exist",
                    did_you_mean(key, RECIPIENT_ATTRIBUTES)
                    or f"a recipient has {', '.join(RECIPIENT_ATTRIBUTES)}",
                )

    def ticket_field(self, node: nodes.Node, key: str, root: str = "ticket") -> None:
        """`ticket.<field or attribute>`, or `labels.<field>` (an option's label)."""
        scope = self.scope
        if not scope.has_ticket:
            self.add(
                "unknown-field",
                node,
                f"{root}.{key} is not available: {scope.where} runs without a ticket",
                "write fixed text here; act on a new ticket with a rule `on: created`",
            )
            return
        attributes = TICKET_ATTRIBUTES if root == "ticket" else ()
        if key in scope.fields or key in attributes:
            return
        pool = [*scope.fields, *attributes]
        self.add(
            "unknown-field",
            node,
            f"{root}.{key}: '{key}' is not a field of {scope.where}",
            did_you_mean(key, pool) or known_list(pool),
        )

    def call(self, node: nodes.Call, bound: frozenset[str]) -> None:
        # range(...) is bounded by the runtime; any other call reaches Python methods.
        self.exprs(node.iter_child_nodes(exclude=("node",)), bound)
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "range" and "range" not in bound:
            return
        if isinstance(target, nodes.Name) and target.name in self.macros:
            return
        before = len(self.problems)
        self.expr(target, bound)
        if not self.unsafe_since(before):
            self.add(
                "template-unsafe",
                node,
                f"calling {_callee(target)}() is not allowed in a message template: only "
                f"range(...) may be called, and {WHY}",
                "use a filter instead, e.g. {{ ticket.title|upper }}",
            )

    def filter_or_test(self, node: nodes.Filter | nodes.Test, bound: frozenset[str]) -> None:
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        known: dict[str, Any] = FILTERS if kind == "filter" else TESTS
        if kind == "filter" and node.name == "attr":
            self.add(
                "template-unsafe",
                node,
                f"the 'attr' filter is not allowed: it reads any attribute by name, and {WHY}",
                "read a field as ticket.<field>",
            )
        elif kind == "filter" and node.name == "format":
            # Printf-style widths size the output ('%999999999s'); the runtime refuses it.
            self.add(
                "template-unsafe",
                node,
                "the 'format' filter is not available in message templates",
                "round numbers with |round(2), join text with ~",
            )
        elif node.name not in known:
            self.add(
                "unknown-name",
                node,
                f"unknown {kind} '{node.name}'",
                did_you_mean(node.name, known) or f"use one of Jinja2's built-in {kind}s",
            )
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            self.add(
                "template-unsafe",
                node,
                f"*args or **kwargs in a {kind} are not allowed: the attributes it reads "
                "cannot be checked",
                "give the arguments one by one",
            )
        self.filter_arguments(node)
        self.exprs(node.iter_child_nodes(), bound)

    def filter_arguments(self, node: nodes.Filter | nodes.Test) -> None:
        """Attribute names given as text (`map(attribute='__class__')`)."""
        if node.name not in ATTRIBUTE_FILTERS:
            return
        named = [kw.value for kw in node.kwargs if kw.key == "attribute"]
        first = node.args[:1]
        texts = [*named, *(first if node.name in FIRST_ARG_IS_ATTRIBUTE else [])]
        for arg in texts:
            value = arg.value if isinstance(arg, nodes.Const) else None
            if isinstance(value, str) and any(p.startswith("_") for p in value.split(".")):
                self.add(
                    "template-unsafe",
                    node,
                    f"attribute '{value}' in |{node.name} is not allowed: names starting with "
                    f"'_' reach Python internals, and {WHY}",
                    "name a field or column instead",
                )
        if node.name in NAMES_A_FILTER and first and _const(first[0]) == "attr":
            self.add(
                "template-unsafe",
                node,
                f"|{node.name}('attr', ...) is not allowed: it reads any attribute by name, "
                f"and {WHY}",
                "map a field or column: |map(attribute='qty')",
            )


def _callee(node: nodes.Node) -> str:
    dotted = _dotted(node)
    if dotted is not None:
        return dotted
    return f"the method {node.attr}" if isinstance(node, nodes.Getattr) else "a value"


def _const(node: nodes.Node) -> Any:
    return node.value if isinstance(node, nodes.Const) else None


# -- the pack's templates -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Text:
    """One template text of the pack, where it is, and what its `ticket` holds."""

    path: JsonPath
    text: str
    scope: TicketScope


@dataclass(frozen=True, slots=True)
class _Site:
    """Where actions run: their path and the templates whose tickets they run on."""

    action: Any
    path: JsonPath
    templates: tuple[str, ...]
    has_ticket: bool = True


def check_message_templates(pack: Pack, report: Reporter) -> None:
    """Check every message template of the pack; report each problem at its text."""
    for item in _texts(pack):
        for problem in template_problems(item.text, item.scope):
            report(problem.code, problem.message, item.path, problem.hint)


def _texts(pack: Pack) -> Iterator[_Text]:
    sites = list(_action_sites(pack))
    usage = _message_usage(pack, sites)
    every = tuple(pack.templates)
    for name, text in pack.messages.items():
        used = usage.get(name, set())
        scope = _scope(pack, tuple(t for t in every if t in used) or every)
        yield from _localized(("messages", name), text, scope)
    for name, reply in pack.canned_replies.items():
        offered = tuple(t for t in reply.templates if t in pack.templates) or every
        yield from _localized(("canned_replies", name, "body"), reply.body, _scope(pack, offered))
    for site in sites:
        scope = _scope(pack, site.templates) if site.has_ticket else NO_TICKET
        yield from _action_texts(site, scope)


def _localized(path: JsonPath, text: LocalizedText, scope: TicketScope) -> Iterator[_Text]:
    if isinstance(text, str):
        yield _Text(path, text, scope)
        return
    for locale, value in text.items():
        yield _Text((*path, locale), value, scope)


def _action_texts(site: _Site, scope: TicketScope) -> Iterator[_Text]:
    action = site.action
    if isinstance(action, WebhookAction) and action.webhook.body is not None:
        yield _Text((*site.path, "webhook", "body"), action.webhook.body, scope)
    elif isinstance(action, CreateTicketAction):
        for field, value in action.create_ticket.fields.items():
            # The runtime renders every text value holding a '{' (render_value), so a stray
            # `{#` fails there as much as a broken `{{`.
            if isinstance(value, str) and "{" in value:
                path = (*site.path, "create_ticket", "fields", field)
                yield _Text(path, value, scope)


def _scope(pack: Pack, templates: tuple[str, ...]) -> TicketScope:
    fields = frozenset(
        f for t in templates if t in pack.templates for f in pack.templates[t].fields
    )
    if len(templates) == 1:
        where = f"template '{templates[0]}'"
    elif set(templates) >= set(pack.templates):
        where = "any template of the pack"
    else:
        where = "templates " + ", ".join(f"'{t}'" for t in templates)
    return TicketScope(fields, where)


def _action_sites(pack: Pack) -> Iterator[_Site]:
    """Every action of rules, SLA policies and transitions, with the templates it runs on
    (all of them where its owner names none)."""
    every = tuple(pack.templates)
    for rname, rule in pack.rules.items():
        scope = tuple(t for t in rule.templates if t in pack.templates) or every
        scheduled = isinstance(rule.on, ScheduleTrigger)
        for i, action in enumerate(rule.do):
            yield _Site(action, ("rules", rname, "do", i), scope, not scheduled)
    for pname, policy in pack.sla.items():
        users = tuple(t for t, tpl in pack.templates.items() if pname in tpl.sla) or every
        for key in ("on_warning", "on_breach"):
            for i, action in enumerate(getattr(policy, key)):
                yield _Site(action, ("sla", pname, key, i), users)
        for i, level in enumerate(policy.escalations):
            for j, action in enumerate(level.do):
                yield _Site(action, ("sla", pname, "escalations", i, "do", j), users)
    for wname, wf in pack.workflows.items():
        users = tuple(t for t, tpl in pack.templates.items() if tpl.workflow == wname) or every
        for trname, tr in wf.transitions.items():
            for i, action in enumerate(tr.do):
                path = ("workflows", wname, "transitions", trname, "do", i)
                yield _Site(action, path, users)


def _message_usage(pack: Pack, sites: list[_Site]) -> dict[str, set[str]]:
    """The templates each message is sent on; a message nothing sends is left out."""
    usage: dict[str, set[str]] = {}
    for site in sites:
        action = site.action
        name = None
        if isinstance(action, NotifyAction):
            name = action.notify.message
        elif isinstance(action, CommentAction):
            name = action.comment.message
        if name is not None:
            # How a scheduled rule's notification is rendered is not settled yet: no ticket
            # scope is assumed for it, so its message is checked against every template.
            used = site.templates if site.has_ticket else tuple(pack.templates)
            usage.setdefault(name, set()).update(used)
    return usage


__all__ = [
    "MAX_TEMPLATE",
    "NO_TICKET",
    "Problem",
    "TicketScope",
    "check_message_templates",
    "template_problems",
]
