"""Find every expression in a pack, parse it, and type-check it against the templates it
runs on; report problems at the offending character inside the YAML (or DSL) text."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dsl.diagnostics import Diagnostic, Span
from dsl.expressions import ExpressionError, Position, names_in, parse_expression
from dsl.source_map import JsonPath, SourceMap, json_pointer
from engine.expr_check import check_expression
from engine.expr_types import (
    ATTRIBUTE_TYPES,
    BOOLEAN,
    Scope,
    Type,
    actor_attributes,
    choice,
    field_type,
)
from engine.fields import ComputedField
from engine.model import IntakeChannel, Pack, ScopeCondition


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One expression in the pack: where it is, its text, the templates it runs on."""

    path: JsonPath
    text: str
    templates: tuple[str, ...]
    expect: Type | None = BOOLEAN
    computes: str | None = None  # the computed field this expression gives the value of


def scope_for(pack: Pack, template: str) -> Scope:
    """What expressions on `template` may read."""
    tpl = pack.templates[template]
    wf = pack.workflows.get(tpl.workflow)
    custom = {name: ATTRIBUTE_TYPES[kind] for name, kind in pack.actor_attributes.items()}
    values = {
        "template": choice(pack.templates),
        "channel": choice(tpl.channels or typing.get_args(IntakeChannel)),
    }
    if pack.teams:
        values["team"] = choice(pack.teams)
    return Scope(
        fields={name: field_type(spec) for name, spec in tpl.fields.items()},
        states=frozenset(wf.states) if wf else frozenset(),
        actor=actor_attributes(pack.role_names(), pack.teams, custom),
        template=template,
        ticket_values=values,
    )


def occurrences(pack: Pack) -> Iterator[Occurrence]:
    """Every expression of the pack with the templates whose scope it is checked in."""
    every = tuple(pack.templates)
    for tname, tpl in pack.templates.items():
        for fname, spec in tpl.fields.items():
            base = ("templates", tname, "fields", fname)
            for key in ("visible_if", "required_if", "readonly_if"):
                text = getattr(spec, key)
                if text is not None:
                    yield Occurrence((*base, key), text, (tname,))
            if isinstance(spec, ComputedField):
                yield Occurrence((*base, "expr"), spec.expr, (tname,), field_type(spec), fname)
    for wname, wf in pack.workflows.items():
        users = tuple(t for t, tpl in pack.templates.items() if tpl.workflow == wname)
        for trname, tr in wf.transitions.items():
            base = ("workflows", wname, "transitions", trname)
            if tr.when is not None:
                yield Occurrence((*base, "when"), tr.when, users)
            for i, check in enumerate(tr.validate_):
                yield Occurrence((*base, "validate", i, "if"), check.check, users)
    for rname, rule in pack.rules.items():
        if rule.condition is not None:
            scope = tuple(t for t in rule.templates if t in pack.templates) or every
            yield Occurrence(("rules", rname, "if"), rule.condition, scope)
    for pname, policy in pack.sla.items():
        users = tuple(t for t, tpl in pack.templates.items() if pname in tpl.sla) or every
        if policy.applies_if is not None:
            yield Occurrence(("sla", pname, "applies_if"), policy.applies_if, users)
        for mname, metric in policy.metrics.items():
            for key in ("start", "stop", "pause"):
                text = getattr(metric, key)
                if text is not None:
                    yield Occurrence(("sla", pname, "metrics", mname, key), text, users)
    yield from _permission_occurrences(pack, every)


def _permission_occurrences(pack: Pack, every: tuple[str, ...]) -> Iterator[Occurrence]:
    for role, entry in pack.permissions.items():
        entries = entry if isinstance(entry, list) else [entry]
        for i, perm in enumerate(entries):
            if isinstance(perm.see, ScopeCondition):
                base: JsonPath = (
                    ("permissions", role, i) if isinstance(entry, list) else ("permissions", role)
                )
                scope = tuple(t for t in perm.templates if t in pack.templates) or every
                yield Occurrence((*base, "see", "if"), perm.see.condition, scope)


class ExpressionLocator:
    """Maps a position inside an expression to file:line:col of the text it came from."""

    def __init__(self, source: SourceMap, texts: dict[str, str]) -> None:
        self.source = source
        self.lines = {name: text.splitlines() for name, text in texts.items()}

    def locate(self, path: JsonPath, pos: Position) -> Span | None:
        span = self.source.value(path)
        if span is None:
            return self.source.locate(path)
        lines = self.lines.get(span.file, [])
        if not 0 < span.line <= len(lines):
            return span
        first = lines[span.line - 1]
        lead = first[span.column - 1 : span.column] if span.column <= len(first) else ""
        if lead in ("|", ">"):
            return self._in_block(span, lines, pos, folded=lead == ">")
        # In YAML a quoted scalar's span starts at its quote; in the DSL an expression is
        # written bare, so a leading quote belongs to a string literal inside it.
        quote = 1 if lead in ("'", '"') and not span.file.endswith(".flow") else 0
        if pos.line == 1:
            return Span(span.file, span.line, span.column + quote + pos.column - 1)
        return Span(span.file, span.line + pos.line - 1, pos.column)

    def _in_block(self, span: Span, lines: list[str], pos: Position, folded: bool) -> Span:
        """Block scalars start on the next line; `>` joins lines with spaces, `|` keeps them."""
        offset = pos.offset
        line_no = span.line + 1
        while line_no <= len(lines):
            content = lines[line_no - 1]
            indent = len(content) - len(content.lstrip(" "))
            body = content[indent:]
            if offset <= len(body):
                return Span(span.file, line_no, indent + offset + 1)
            offset -= len(body) + 1  # the joining space or newline
            line_no += 1
        return span


def check_pack_expressions(
    pack: Pack, source: SourceMap, texts: dict[str, str]
) -> list[Diagnostic]:
    """Parse and type-check every expression of the pack."""
    locator = ExpressionLocator(source, texts)
    diagnostics: list[Diagnostic] = []
    scopes: dict[str, Scope] = {}
    for occ in occurrences(pack):
        problem = _first_problem(pack, occ, scopes)
        if problem is None:
            continue
        error, template = problem
        message = error.message
        if template and len(occ.templates) > 1:
            # The condition is shared (e.g. by a workflow's templates): say which one failed.
            message = f"{message} (on template '{template}')"
        diagnostics.append(
            Diagnostic(
                error.code,
                message,
                locator.locate(occ.path, error.pos),
                hint=error.hint,
                pointer=json_pointer(occ.path),
            )
        )
    return diagnostics


def _first_problem(
    pack: Pack, occ: Occurrence, scopes: dict[str, Scope]
) -> tuple[ExpressionError, str] | None:
    try:
        tree = parse_expression(occ.text)
    except ExpressionError as exc:
        return exc, ""
    if occ.computes is not None:
        for name in names_in(tree):
            if name.parts in ((occ.computes,), ("ticket", occ.computes)):
                return (
                    ExpressionError(
                        f"computed field '{occ.computes}' cannot use its own value",
                        name.pos,
                        "compute it from other fields",
                        code="expr-self-reference",
                    ),
                    "",
                )
    for template in _valid(pack, occ.templates):
        if template not in scopes:
            scopes[template] = scope_for(pack, template)
        try:
            check_expression(tree, scopes[template], occ.expect)
        except ExpressionError as exc:
            return exc, template
    return None


def _valid(pack: Pack, templates: Iterable[str]) -> list[str]:
    # Templates whose workflow is unknown are reported elsewhere; their states are unknown.
    return [
        t for t in templates if t in pack.templates and pack.templates[t].workflow in pack.workflows
    ]
