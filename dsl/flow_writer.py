"""Write pack data as canonical DSL text, and format `.flow` files keeping their comments.

`write_flow` takes plain pack data (as `model_dump(by_alias=True, exclude_defaults=True,
mode="json")` gives it, or as the DSL parser returns it) and uses the compact statements
wherever they say exactly the same thing; anything else is written in the generic
`key value` form, so parsing the output always gives back the same data. An item goes on one
line when it fits in `width` columns and holds no comments, otherwise into a block.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any, TypeGuard

from dsl.diagnostics import Diagnostic
from dsl.flow_parser import (
    END,
    Anchor,
    FlowComment,
    is_bare_expression,
    keywords_after,
    parse_flow,
)
from dsl.source_map import JsonPath

WIDTH = 100
INDENT = "  "

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DASHED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)+")
_DURATION = re.compile(r"(\d+[wdhms])+")
_PERCENT = re.compile(r"\d+(\.\d+)?%")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EVENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_AT = re.compile(r"\d+(\.\d+)?%|breach([ \t]*\+[ \t]*(\d+[wdhms])+)?")
_RAW_STRING = re.compile(r"'([^'\\\n]|\\.)*'")
_ESCAPED = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_RESERVED = frozenset({"true", "false", "null"})
# Keys whose values are text shown to people: always quoted, for readability.
_TEXT_KEYS = frozenset(
    {"title", "label", "help", "description", "placeholder", "customer_label", "body", "message"}
)


class FlowFormatError(Exception):
    """The text could not be formatted because it does not parse."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.headline() for d in diagnostics))
        self.diagnostics = diagnostics


@dataclass(slots=True)
class Attached:
    """The comments attached to one statement: lines before it, and one after it."""

    leading: list[str] = field(default_factory=list)
    trailing: list[str] = field(default_factory=list)


CommentMap = dict[JsonPath, Attached]


# -- keywords by context (from the grammar itself) ----------------------------------------------

_CONTEXTS = {
    "top": "",
    "calendar": "calendar x {\n",
    "role": "role x {\n",
    "skill": "skill x {\n",
    "team": "team x {\n",
    "template": "template x {\n",
    "field": "template x {\nfield f text {\n",
    "column": "template x {\nfield f table {\ncolumn c text {\n",
    "option": "template x {\nfield f choice {\noption o {\n",
    "workflow": "workflow w {\n",
    "state": "workflow w {\nstate s {\n",
    "transition": "workflow w {\na -> b : t {\n",
    "permission": "permission p {\n",
    "rule": "rule r {\n",
    "sla": "sla s {\n",
    "metric": "sla s {\nmetric m {\n",
    "escalate": "sla s {\nescalate at 50% {\n",
    "reply": "reply r {\n",
}


def _accepted(prefix: str) -> frozenset[str]:
    return keywords_after(prefix)


def _keywords(context: str) -> frozenset[str]:
    """Words that are keywords at the start of a line of `context`'s block."""
    return _accepted(_CONTEXTS[context])


def _after_assign() -> frozenset[str]:
    """Words an `assign` recipient must not be (they would end the action)."""
    return (
        _accepted("rule r do assign ")
        | _accepted("workflow w {\na -> b : t do assign ")
        | _accepted("sla s {\non breach assign ")
        | _accepted("sla s {\nescalate at 50% do assign ")
    )


# -- scalars ------------------------------------------------------------------------------------


def quote(text: str) -> str:
    """A string literal for `text`: 'raw' when it holds backslashes (regexes), else "escaped"."""
    if "\\" in text and not _ESCAPED.search(text) and _RAW_STRING.fullmatch(f"'{text}'"):
        return f"'{text}'"
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif _ESCAPED.match(ch):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_bare_word(text: str) -> bool:
    if text in _RESERVED:
        return False
    return any(p.fullmatch(text) for p in (_NAME, _DASHED, _DURATION, _PERCENT, _DATE))


def scalar(value: Any, text: bool = False) -> str:
    """A scalar as DSL source; text shown to people is always quoted."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written in the DSL")
        shown = repr(value)
        if "e" in shown or "E" in shown:
            shown = format(Decimal(shown), "f")  # the same digits, without an exponent
        return shown if "." in shown else shown + ".0"
    if isinstance(value, str):
        if not text and _is_bare_word(value):
            return value
        return quote(value)
    raise ValueError(f"cannot write {type(value).__name__} values in the DSL")


def name(value: str, reserved: frozenset[str] = frozenset()) -> str:
    """A name: bare when it is an identifier that is no keyword where it stands."""
    if _NAME.fullmatch(value) and value not in reserved and value not in _RESERVED:
        return value
    return quote(value)


def key(value: str, reserved: frozenset[str] = frozenset()) -> str:
    """A mapping key: bare when it is a name or a dashed word (mon-fri), else quoted."""
    bare = _NAME.fullmatch(value) or _DASHED.fullmatch(value)
    if bare and value not in reserved and value not in _RESERVED:
        return value
    return quote(value)


def _is_names(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def names(
    values: list[str], keep_list: bool = False, reserved: frozenset[str] = frozenset()
) -> str:
    """`a, b, c`; `[a]` where one bare name would mean text, `[]` when empty."""
    if not values or (keep_list and len(values) == 1):
        return "[" + ", ".join(name(v) for v in values) + "]"
    return ", ".join(name(v, reserved) for v in values)


# -- comments ------------------------------------------------------------------------------------


def attach_comments(comments: list[FlowComment], anchors: list[Anchor]) -> CommentMap:
    """Attach each comment to the statement it precedes (or ends the line of)."""
    ordered = sorted(anchors, key=lambda a: (a.line, a.column, len(a.path)))
    by_line: dict[int, list[Anchor]] = {}
    for anchor in ordered:
        by_line.setdefault(anchor.line, []).append(anchor)
    attached: CommentMap = {}
    positions = [(a.line, a.column) for a in ordered]
    for comment in comments:
        if comment.trailing:
            owners = [a for a in by_line.get(comment.line, []) if a.column < comment.column]
            if owners:
                attached.setdefault(owners[0].path, Attached()).trailing.append(comment.text)
                continue
        index = bisect.bisect_right(positions, (comment.line, comment.column))
        target = ordered[index].path if index < len(ordered) else (END,)
        attached.setdefault(target, Attached()).leading.append(comment.text)
    return attached


# -- the writer ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Part:
    """One clause of an item: its text on the item's line (`render`, when it can go there),
    and how it is written in the item's block (`emit`; by default `render` on a line)."""

    path: JsonPath
    render: Callable[[int, bool], str] | None = None  # (indent, flat) -> clause text
    emit: Callable[[int], None] | None = None  # writes block lines at an indent


Handler = Callable[[str, Any, JsonPath], "_Part | list[_Part] | None"]


class _Writer:
    def __init__(self, comments: CommentMap | None, width: int) -> None:
        self.comments: CommentMap = dict(comments or {})
        self.width = width
        self.out: list[str] = []
        self.previous: tuple[str, bool] | None = None

    # -- comments ------------------------------------------------------------------------------
    def has_inner(self, path: JsonPath) -> bool:
        n = len(path)
        return any(len(p) > n and p[:n] == path for p in self.comments)

    def has_any(self, path: JsonPath) -> bool:
        """Comments attached to `path` or to anything under it."""
        n = len(path)
        return any(p[:n] == path for p in self.comments)

    def leading(self, path: JsonPath, indent: int) -> list[str]:
        attached = self.comments.get(path)
        if attached is None or not attached.leading:
            return []
        lines = [INDENT * indent + c for c in attached.leading]
        attached.leading = []
        self._forget(path)
        return lines

    def trailing(self, path: JsonPath) -> str:
        attached = self.comments.get(path)
        if attached is None or not attached.trailing:
            return ""
        text = "  " + " ".join(attached.trailing)
        attached.trailing = []
        self._forget(path)
        return text

    def _forget(self, path: JsonPath) -> None:
        attached = self.comments.get(path)
        if attached is not None and not attached.leading and not attached.trailing:
            del self.comments[path]

    def line(self, indent: int, text: str, path: JsonPath | None) -> None:
        """Write a statement (maybe spanning lines), with its comments."""
        if path is not None:
            self.out.extend(self.leading(path, indent))
            after = self.trailing(path)
            if after and "\n" in text:
                self.out.append(INDENT * indent + after.strip())
            else:
                text += after
        self.out.append(INDENT * indent + text)

    def close(self, indent: int, path: JsonPath, closer: str = "}") -> None:
        """Comments left inside a block, then its closing brace."""
        end = (*path, END)
        self.out.extend(self.leading(end, indent + 1))
        after = self.trailing(end)
        n = len(path)
        for p in [p for p in self.comments if len(p) > n and p[:n] == path]:
            self.out.extend(self.leading(p, indent + 1))
            rest = self.trailing(p)
            if rest:
                self.out.append(INDENT * (indent + 1) + rest.strip())
        self.out.append(INDENT * indent + closer + after)

    # -- values --------------------------------------------------------------------------------
    def value(
        self,
        value: Any,
        path: JsonPath,
        indent: int,
        prefix: int,
        text: bool = False,
        flat: bool = False,
    ) -> str:
        """A value inline, or over several lines when it is long or holds comments."""
        if not isinstance(value, dict | list):
            return scalar(value, text)
        inline = self.flat_value(value, text)
        if flat or not value:
            return inline
        if not self.has_inner(path) and prefix + len(inline) <= self.width:
            return inline
        inner = indent + 1
        lines: list[str] = []
        saved, self.out = self.out, lines
        try:
            if isinstance(value, dict):
                for k, v in value.items():
                    here = (*path, k)
                    head = f"{key(k)}: "
                    body = self.value(
                        v, here, inner, len(INDENT * inner + head), text or k in _TEXT_KEYS
                    )
                    self.line(inner, head + body, here)
                self.close(indent, path)
            else:
                for i, v in enumerate(value):
                    here = (*path, i)
                    body = self.value(v, here, inner, len(INDENT * inner), text)
                    self.line(inner, body + ",", here)
                self.close(indent, path, "]")
        finally:
            self.out = saved
        opener = "{" if isinstance(value, dict) else "["
        closing = lines[-1].strip()
        body_lines = lines[:-1]
        return "\n".join([opener, *body_lines, INDENT * indent + closing])

    def flat_value(self, value: Any, text: bool = False) -> str:
        if isinstance(value, dict):
            inner = ", ".join(
                f"{key(k)}: {self.flat_value(v, text or k in _TEXT_KEYS)}" for k, v in value.items()
            )
            return "{" + inner + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flat_value(v, text) for v in value) + "]"
        return scalar(value, text)

    # -- items ---------------------------------------------------------------------------------
    def item(self, indent: int, header: str, path: JsonPath, parts: list[_Part]) -> None:
        """An item on one line when it fits and holds no comments, else with a block."""
        if not self.has_inner(path) and all(p.render is not None for p in parts):
            ordered = _text_last(parts, path)
            texts = [p.render(indent, True) for p in ordered if p.render is not None]
            one = " ".join([header, *texts])
            if "\n" not in one and len(INDENT * indent + one) <= self.width:
                self.line(indent, one, path)
                return
        self.line(indent, header + " {", path)
        clauses_first = sorted(parts, key=lambda p: p.render is None)
        for part in clauses_first:
            if part.emit is not None:
                part.emit(indent + 1)
            elif part.render is not None:
                self.line(indent + 1, part.render(indent + 1, False), part.path)
        self.close(indent, path)

    def kv(self, key_word: str, value: Any, path: JsonPath, text: bool | None = None) -> _Part:
        """A `keyword value` clause."""
        is_text = key_word in _TEXT_KEYS if text is None else text

        def render(indent: int, flat: bool) -> str:
            prefix = len(INDENT * indent) + len(key_word) + 1
            return f"{key_word} {self.value(value, path, indent, prefix, is_text, flat)}"

        return _Part(path, render)

    def fixed(self, path: JsonPath, text: str) -> _Part:
        return _Part(path, lambda indent, flat: text)

    def generic(self, key_word: str, value: Any, path: JsonPath, context: str) -> _Part:
        """The generic `key value` line, for keys without a compact form."""
        return _Part(
            path, emit=lambda indent: self.generic_line(indent, key_word, value, path, context)
        )

    def generic_line(
        self, indent: int, key_word: str, value: Any, path: JsonPath, context: str
    ) -> None:
        shown = key(key_word, _keywords(context))
        prefix = len(INDENT * indent) + len(shown) + 1
        text = key_word in _TEXT_KEYS
        self.line(indent, f"{shown} {self.value(value, path, indent, prefix, text)}", path)

    def parts(
        self, spec: Mapping[str, Any], path: JsonPath, context: str, handlers: dict[str, Handler]
    ) -> list[_Part]:
        """The clauses of an item, in data order; unknown keys in the generic form."""
        out: list[_Part] = []
        for k, v in spec.items():
            here = (*path, k)
            handler = handlers.get(k)
            made = handler(k, v, here) if handler is not None else None
            if made is None:
                out.append(self.generic(k, v, here, context))
            elif isinstance(made, list):
                out.extend(made)
            else:
                out.append(made)
        return out

    def kv_handler(self, *keys: str) -> dict[str, Handler]:
        return {k: lambda k, v, p: self.kv(k, v, p) for k in keys}

    def names_handler(self, *keys: str) -> dict[str, Handler]:
        def handle(k: str, v: Any, p: JsonPath) -> _Part | None:
            return self.fixed(p, f"{k} {names(v)}") if _is_names(v) else None

        return {k: handle for k in keys}

    def expression_handler(self, *keys: str) -> dict[str, Handler]:
        def handle(k: str, v: Any, p: JsonPath) -> _Part | None:
            if isinstance(v, str) and is_bare_expression(v):
                return self.fixed(p, f"{k} {v}")
            return None

        return {k: handle for k in keys}

    def flag_handler(self, *keys: str) -> dict[str, Handler]:
        def handle(k: str, v: Any, p: JsonPath) -> _Part | None:
            if v is True:
                return self.fixed(p, k)
            if v is False:
                return self.fixed(p, f"{k} false")
            return None

        return {k: handle for k in keys}

    # -- the pack ------------------------------------------------------------------------------
    def write(self, data: Mapping[str, Any]) -> str:
        for k, v in data.items():
            self.top(k, v)
        rest = self.leading((END,), 0)
        for p in list(self.comments):
            rest.extend(self.leading(p, 0))
            after = self.trailing(p)
            if after:
                rest.append(after.strip())
        if rest:
            self.statement("comments", lambda: self.out.extend(rest))
        return "\n".join(self.out) + "\n" if self.out else ""

    def statement(self, kind: str, write: Callable[[], None]) -> None:
        """A top-level statement, after a blank line unless it is one of a run of one-liners."""
        lines: list[str] = []
        saved, self.out = self.out, lines
        try:
            write()
        finally:
            self.out = saved
        code = [x for entry in lines for x in entry.split("\n")]
        multi = sum(1 for x in code if not x.lstrip().startswith("#")) > 1
        previous = self.previous
        if previous is not None and (previous[0] != kind or previous[1] or multi):
            self.out.append("")
        self.out.extend(lines)
        self.previous = (kind, multi)

    def top(self, k: str, v: Any) -> None:
        """Write the statements of one top-level key."""
        items: dict[str, Callable[[str, dict[str, Any]], None]] = {
            "calendars": self.calendar,
            "roles": self.role,
            "skills": self.skill,
            "teams": self.team,
            "templates": self.template,
            "workflows": self.workflow,
            "rules": self.rule,
            "sla": self.sla,
            "canned_replies": self.reply,
        }
        if k in ("pack", "title", "description", "version", "timezone", "locales"):
            head = f"{k} "
            text = k in _TEXT_KEYS
            self.statement(
                "meta", lambda: self.line(0, head + self.value(v, (k,), 0, len(head), text), (k,))
            )
        elif k in ("roles", "skills") and _is_names(v):
            self.statement(k, lambda: self.line(0, f"{k} {names(v)}", (k,)))
        elif k in items and _is_items(v) and v:
            for n, spec in v.items():
                self.statement(k, partial(items[k], n, spec))
        elif k == "permissions" and isinstance(v, dict) and v:
            self.permissions(v)
        elif k == "messages" and isinstance(v, dict) and v:
            for n, text in v.items():
                self.statement(k, partial(self.message, n, text))
        else:
            self.statement("other", lambda: self.generic_line(0, k, v, (k,), "top"))

    def message(self, n: str, text: Any) -> None:
        path = ("messages", n)
        head = f"message {name(n)} "
        self.line(0, head + self.value(text, path, 0, len(head), True), path)

    # -- calendars, roles, skills, teams -------------------------------------------------------
    def calendar(self, n: str, spec: dict[str, Any]) -> None:
        path = ("calendars", n)
        keys = ("title", "timezone", "week", "holidays", "extra_holidays", "extra_workdays")
        parts = self.parts(spec, path, "calendar", self.kv_handler(*keys))
        self.item(0, f"calendar {name(n)}", path, parts)

    def role(self, n: str, spec: dict[str, Any]) -> None:
        path = ("roles", n)
        parts = self.parts(spec, path, "role", self.kv_handler("title", "description", "staff"))
        self.item(0, f"role {name(n)}", path, parts)

    def skill(self, n: str, spec: dict[str, Any]) -> None:
        path = ("skills", n)
        parts = self.parts(spec, path, "skill", self.kv_handler("title"))
        self.item(0, f"skill {name(n)}", path, parts)

    def team(self, n: str, spec: dict[str, Any]) -> None:
        path = ("teams", n)
        keys = ("title", "parent", "skills", "calendar", "lead_role")
        parts = self.parts(spec, path, "team", self.kv_handler(*keys))
        self.item(0, f"team {name(n)}", path, parts)

    # -- templates -----------------------------------------------------------------------------
    def template(self, n: str, spec: dict[str, Any]) -> None:
        path = ("templates", n)
        keys = ("title", "description", "ref", "summary", "workflow", "sla", "routing", "channels")
        handlers = self.kv_handler(*keys)
        handlers["fields"] = self.fields
        parts = self.parts(spec, path, "template", handlers)
        self.item(0, f"template {name(n)}", path, parts)

    def fields(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not isinstance(v, dict) or not v or not all(_has_type(s) for s in v.values()):
            return None
        return [
            _Part((*path, f), emit=partial(self.field, n=f, spec=s, base=path))
            for f, s in v.items()
        ]

    def field_handlers(self) -> dict[str, Handler]:
        handlers = self.kv_handler(
            "label",
            "help",
            "placeholder",
            "required_in",
            "default",
            "pattern",
            "min_length",
            "max_length",
            "min",
            "max",
            "unit",
            "decimals",
            "currency",
            "min_items",
            "max_items",
            "region",
            "roles",
            "team",
            "asset_types",
            "scan",
            "capture",
            "scale",
            "accept",
            "max_size",
            "min_rows",
            "max_rows",
            "result",
        )
        handlers.update(self.flag_handler("required", "pii"))
        handlers.update(self.expression_handler("visible_if", "required_if", "readonly_if", "expr"))
        handlers["options"] = self.options
        handlers["columns"] = self.columns
        return handlers

    def field(self, indent: int, n: str, spec: dict[str, Any], base: JsonPath) -> None:
        path = (*base, n)
        rest = {k: v for k, v in spec.items() if k != "type"}
        parts = self.parts(rest, path, "field", self.field_handlers())
        self.item(indent, f"field {name(n)} {name(spec['type'])}", path, parts)

    def options(self, k: str, v: Any, path: JsonPath) -> _Part | list[_Part] | None:
        if not isinstance(v, list):
            return None
        if all(isinstance(o, str) for o in v) and not self.has_inner(path):
            return self.kv(k, v, path, text=False)
        if not all(isinstance(o, str) or _is_option(o) for o in v):
            return self.kv(k, v, path, text=False)
        return [
            _Part((*path, i), emit=partial(self.option, option=o, path=(*path, i)))
            for i, o in enumerate(v)
        ]

    def option(self, indent: int, option: Any, path: JsonPath) -> None:
        if isinstance(option, str):
            self.line(indent, f"option {key(option)}", path)
            return
        rest = {k: v for k, v in option.items() if k != "value"}
        parts = self.parts(rest, path, "option", self.kv_handler("label", "color"))
        header = f"option {key(option['value'])}"
        if not parts and not self.has_inner(path):
            self.line(indent, header + " {}", path)
            return
        self.item(indent, header, path, parts)

    def columns(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not isinstance(v, dict) or not v:
            return None
        if not all(isinstance(s, str) or _has_type(s) for s in v.values()):
            return None
        return [
            _Part((*path, c), emit=partial(self.column, n=c, spec=s, base=path))
            for c, s in v.items()
        ]

    def column(self, indent: int, n: str, spec: Any, base: JsonPath) -> None:
        path = (*base, n)
        if isinstance(spec, str):
            self.line(indent, f"column {name(n)} {name(spec)}", path)
            return
        rest = {k: v for k, v in spec.items() if k != "type"}
        parts = self.parts(rest, path, "column", self.field_handlers())
        header = f"column {name(n)} {name(spec['type'])}"
        if not parts and not self.has_inner(path):
            self.line(indent, header + " {}", path)
            return
        self.item(indent, header, path, parts)

    # -- workflows -----------------------------------------------------------------------------
    def workflow(self, n: str, spec: dict[str, Any]) -> None:
        path = ("workflows", n)
        handlers = self.kv_handler("title", "initial")
        handlers["states"] = self.states
        handlers["transitions"] = self.transitions
        parts = self.parts(spec, path, "workflow", handlers)
        self.item(0, f"workflow {name(n)}", path, parts)

    def states(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not _is_items(v) or not v:
            return None
        parts: list[_Part] = []
        plain: list[str] = []

        def flush() -> None:
            if plain:
                group = list(plain)
                parts.append(
                    _Part(
                        (*path, group[0]),
                        emit=lambda indent: self.state_group(indent, group, path),
                    )
                )
                plain.clear()

        for s, state in v.items():
            if not state:
                plain.append(s)
                continue
            flush()
            parts.append(_Part((*path, s), emit=partial(self.state, n=s, spec=state, base=path)))
        flush()
        return parts

    def state_group(self, indent: int, group: list[str], base: JsonPath) -> None:
        for s in group[1:]:
            self.out.extend(self.leading((*base, s), indent))
            after = self.trailing((*base, s))
            if after:
                self.out.append(INDENT * indent + after.strip())
        text = "states " + ", ".join(name(s) for s in group)
        self.line(indent, text, (*base, group[0]))

    def state(self, indent: int, n: str, spec: dict[str, Any], base: JsonPath) -> None:
        path = (*base, n)
        keyword = "final" if spec.get("final") is True else "state"
        rest = {k: v for k, v in spec.items() if not (k == "final" and keyword == "final")}
        handlers = self.kv_handler("title", "category", "customer_label")
        handlers.update(self.flag_handler("final"))
        handlers["sla"] = self.state_sla
        parts = self.parts(rest, path, "state", handlers)
        self.item(indent, f"{keyword} {name(n)}", path, parts)

    def state_sla(self, k: str, v: Any, path: JsonPath) -> _Part:
        if v == "pause":
            return self.fixed(path, "pauses sla")
        if v == "stop":
            return self.fixed(path, "stops sla")
        return self.kv(k, v, path)

    def transitions(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not _is_items(v) or not v or not all(_is_transition(t) for t in v.values()):
            return None
        return [
            _Part((*path, t), emit=partial(self.transition, n=t, spec=s, base=path))
            for t, s in v.items()
        ]

    def transition(self, indent: int, n: str, spec: dict[str, Any], base: JsonPath) -> None:
        path = (*base, n)
        reserved = _keywords("workflow")
        source = spec["from"]
        if isinstance(source, str):
            sources = "*" if source == "*" else name(source, reserved)
        else:
            shown = ["*" if s == "*" else name(s, reserved) for s in source]
            sources = f"[{', '.join(shown)}]" if len(shown) < 2 else ", ".join(shown)
        header = f"{sources} -> {name(spec['to'])} : {name(n)}"
        rest = {k: v for k, v in spec.items() if k not in ("from", "to")}
        handlers = self.kv_handler("title", "only", "comment")
        handlers.update(self.names_handler("roles", "requires", "form"))
        handlers.update(self.expression_handler("when"))
        handlers["validate"] = self.validate
        handlers["do"] = self.do
        parts = self.parts(rest, path, "transition", handlers)
        self.item(indent, header, path, parts)

    def validate(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not isinstance(v, list) or not v:
            return None
        for check in v:
            if not (
                isinstance(check, dict)
                and set(check) == {"if", "message"}
                and isinstance(check["if"], str)
                and is_bare_expression(check["if"])
            ):
                return None
        return [
            self.kv_like(
                (*path, i),
                f"validate {c['if']} message",
                c["message"],
                (*path, i, "message"),
                True,
            )
            for i, c in enumerate(v)
        ]

    def kv_like(
        self, path: JsonPath, head: str, value: Any, value_path: JsonPath, text: bool
    ) -> _Part:
        def render(indent: int, flat: bool) -> str:
            prefix = len(INDENT * indent) + len(head) + 1
            return f"{head} {self.value(value, value_path, indent, prefix, text, flat)}"

        return _Part(path, render)

    # -- actions -------------------------------------------------------------------------------
    def do(self, k: str, v: Any, path: JsonPath, keyword: str = "do") -> list[_Part] | None:
        """`do A then B` as one clause; in a block, one `do` line per action when long."""
        if not isinstance(v, list) or not v:
            return None
        rendered = [self.action(a) for a in v]
        texts = [r for r in rendered if r is not None]
        if len(texts) != len(v):
            return None
        if any(self.has_any((*path, i)) for i in range(1, len(v))):
            return [self.fixed((*path, i), f"{keyword} {t}") for i, t in enumerate(texts)]
        joined = f"{keyword} " + " then ".join(texts)

        def emit(indent: int) -> None:
            if len(texts) == 1 or len(INDENT * indent + joined) <= self.width:
                self.line(indent, joined, (*path, 0))
                return
            for i, text in enumerate(texts):
                self.line(indent, f"{keyword} {text}", (*path, i))

        return [_Part((*path, 0), lambda indent, flat: joined, emit)]

    def action(self, action: Any) -> str | None:
        """An action in its compact form, or as a generic mapping; None if it cannot be."""
        if not isinstance(action, dict):
            return None
        if len(action) == 1:
            ((kind, spec),) = action.items()
            compact = self.compact_action(kind, spec)
            if compact is not None:
                return compact
        return self.flat_value(action)

    def compact_action(self, kind: str, spec: Any) -> str | None:
        if kind == "transition":
            if isinstance(spec, str):
                return f"transition {name(spec)}"
            if isinstance(spec, dict) and set(spec) <= {"name", "as"} and "name" in spec:
                actor = spec.get("as", "system")
                if isinstance(spec["name"], str) and isinstance(actor, str):
                    return f"transition {name(spec['name'])} as {name(actor)}"
            return None
        if not isinstance(spec, dict):
            return None
        if kind == "set":
            if not spec:
                return "set {}"
            return "set " + ", ".join(f"{key(k)} = {self.flat_value(v)}" for k, v in spec.items())
        words: list[str] = [kind]
        allowed: dict[str, Callable[[Any], str | None]]
        if kind == "notify":
            to = spec.get("to")
            if isinstance(to, str):
                words.append(name(to))
            elif _is_names(to):
                words.append(names(to, keep_list=True))
            else:
                return None
            allowed = {"via": _names_or_none, "message": _name_or_none}
        elif kind == "assign":
            to = spec.get("to")
            if to is not None:
                if not isinstance(to, str):
                    return None
                words.append(name(to, _after_assign()))
            allowed = {"strategy": _strategy, "team": _name_or_none}
        elif kind == "webhook":
            if "url" not in spec:
                return None
            words.append(self.flat_value(spec["url"]))
            allowed = {
                "method": self.flat_value,
                "body": self.flat_value,
                "secret": self.flat_value,
            }
        elif kind == "comment":
            message = spec.get("message")
            if not isinstance(message, str) or set(spec) - {"message", "internal"}:
                return None
            words.append(name(message))
            internal = spec.get("internal")
            if internal is True:
                words.append("internal")
            elif internal is False:
                words.append("public")
            elif internal is not None:
                return None
            return " ".join(words)
        elif kind == "create_ticket":
            template = spec.get("template")
            if not isinstance(template, str):
                return None
            words.append(name(template))
            allowed = {
                "fields": lambda v: self.flat_value(v) if isinstance(v, dict) else None,
                "link": _name_or_none,
            }
        elif kind == "schedule":
            event, after = spec.get("event"), spec.get("after")
            if not isinstance(event, str) or "after" not in spec or set(spec) != {"event", "after"}:
                return None
            return f"schedule {name(event)} after {self.flat_value(after)}"
        elif kind == "raise_priority":
            allowed = {"to": self.flat_value, "field": _name_or_none}
        else:
            return None
        skip = {"to", "url", "template"} if kind != "raise_priority" else set()
        for k, v in spec.items():
            if k in skip:
                continue
            render = allowed.get(k)
            shown = render(v) if render is not None else None
            if shown is None:
                return None
            words.append(f"{k} {shown}")
        return " ".join(words)

    # -- permissions ---------------------------------------------------------------------------
    def permissions(self, perms: dict[str, Any]) -> None:
        awkward: dict[str, Any] = {}
        for role, entry in perms.items():
            if isinstance(entry, dict):
                self.statement(
                    "permissions",
                    partial(self.permission, role, entry, ("permissions", role)),
                )
            elif (
                isinstance(entry, list)
                and len(entry) > 1
                and all(isinstance(e, dict) for e in entry)
            ):
                for i, e in enumerate(entry):
                    self.statement(
                        "permissions",
                        partial(self.permission, role, e, ("permissions", role, i)),
                    )
            else:
                awkward[role] = entry
        if awkward:
            self.statement(
                "other",
                lambda: self.generic_line(0, "permissions", awkward, ("permissions",), "top"),
            )

    def permission(self, role: str, spec: dict[str, Any], path: JsonPath) -> None:
        handlers: dict[str, Handler] = {
            "see": self.see,
            "create": self.access,
            "read": self.access,
            "write": self.access,
            "hide": self.names_handler("hide")["hide"],
            "templates": self.for_templates,
            "states": self.permission_states,
        }
        parts = self.parts(spec, path, "permission", handlers)
        self.item(0, f"permission {name(role)}", path, parts)

    def see(self, k: str, v: Any, path: JsonPath) -> _Part | None:
        if isinstance(v, str):
            return self.fixed(path, f"see {name(v, _accepted('permission p see '))}")
        if _is_names(v):
            return self.fixed(path, f"see {names(v, keep_list=True)}")
        if (
            isinstance(v, dict)
            and list(v) == ["if"]
            and isinstance(v["if"], str)
            and is_bare_expression(v["if"])
        ):
            return self.fixed(path, f"see if {v['if']}")
        if isinstance(v, dict):
            return self.kv(k, v, path, text=False)
        return None

    def access(self, k: str, v: Any, path: JsonPath) -> _Part | None:
        if v == "*":
            return self.fixed(path, f"{k} *")
        if _is_names(v):
            return self.fixed(path, f"{k} {names(v)}")
        return None

    def for_templates(self, k: str, v: Any, path: JsonPath) -> _Part | None:
        return self.fixed(path, f"for {names(v)}") if _is_names(v) else None

    def permission_states(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not _is_items(v) or not v:
            return None
        for state in v.values():
            if set(state) - {"read", "write"}:
                return None
            if not all(x == "*" or _is_names(x) for x in state.values()):
                return None
        parts = []
        for s, state in v.items():
            text = f"state {name(s)}" + "".join(
                f" {a} {'*' if x == '*' else names(x)}" for a, x in state.items()
            )
            parts.append(_Part((*path, s), emit=partial(self.line, text=text, path=(*path, s))))
        return parts

    # -- rules ---------------------------------------------------------------------------------
    def rule(self, n: str, spec: dict[str, Any]) -> None:
        path = ("rules", n)
        handlers: dict[str, Handler] = {
            "on": self.on,
            "templates": self.for_templates,
            "do": self.do,
        }
        handlers.update(self.expression_handler("if"))
        parts = self.parts(spec, path, "rule", handlers)
        self.item(0, f"rule {name(n)}", path, parts)

    def on(self, k: str, v: Any, path: JsonPath) -> _Part | None:
        trigger = self.trigger(v)
        if trigger is not None:
            return self.fixed(path, f"on {trigger}")
        return self.kv(k, v, path, text=False) if isinstance(v, dict) else None

    def trigger(self, v: Any) -> str | None:
        """A trigger in its compact form: `created`, `entered resolved after 72h`, ..."""
        first_word = _accepted("rule r on ")
        if isinstance(v, str):
            if v in ("updated", "transitioned") or re.fullmatch(r"sla\.[A-Za-z_]\w*", v):
                return v
            if _EVENT.fullmatch(v) and v.split(".")[0] not in first_word:
                return v
            return quote(v)
        if not isinstance(v, dict) or not v:
            return None
        kind = next(iter(v))
        first = v[kind]
        rest = {k: x for k, x in v.items() if k != kind}
        extras = {
            "entered": "after",
            "left": "after",
            "transitioned": "after",
            "schedule": "calendar",
            "sla": "metric",
            "updated": None,
            "event": None,
        }
        if kind not in extras or set(rest) - {extras[kind]}:
            return None
        if kind == "updated":
            if not _is_names(first) or not first:
                return None
            return f"updated {names(first, True, _accepted('rule r on updated '))}"
        if kind == "schedule":
            text = f"schedule {self.flat_value(first)}"
        elif isinstance(first, str):
            text = f"{kind} {name(first, _accepted(f'rule r on {kind} '))}"
        else:
            return None
        for extra, x in rest.items():
            if extra == "after":
                text += f" after {self.flat_value(x)}"
            elif isinstance(x, str):
                text += f" {extra} {name(x)}"
            else:
                return None
        return text

    # -- SLA -----------------------------------------------------------------------------------
    def sla(self, n: str, spec: dict[str, Any]) -> None:
        path = ("sla", n)
        handlers = self.kv_handler("title", "calendar", "priority_field", "pause_in", "warn_at")
        handlers.update(self.expression_handler("applies_if"))
        handlers["targets"] = self.targets
        handlers["metrics"] = self.metrics
        handlers["on_warning"] = lambda k, v, p: self.on_clock(v, p, "on warning")
        handlers["on_breach"] = lambda k, v, p: self.on_clock(v, p, "on breach")
        handlers["escalations"] = self.escalations
        parts = self.parts(spec, path, "sla", handlers)
        self.item(0, f"sla {name(n)}", path, parts)

    def targets(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not isinstance(v, dict) or not v:
            return None
        parts = []
        for metric, target in v.items():
            here = (*path, metric)
            head = f"target {name(metric)}"
            pairs = (
                isinstance(target, dict)
                and bool(target)
                and not any(isinstance(x, dict | list) for x in target.values())
                and not self.has_inner(here)
            )
            if pairs:
                text = head + " " + ", ".join(f"{key(p)} {scalar(x)}" for p, x in target.items())
                parts.append(self.fixed(here, text))
            else:
                parts.append(self.kv_like(here, head, target, here, False))
        return [_Part(p.path, emit=partial(self.emit_part, part=p)) for p in parts]

    def metrics(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not _is_items(v) or not v:
            return None

        def emit_metric(indent: int, m: str, spec: dict[str, Any]) -> None:
            here = (*path, m)
            handlers = self.kv_handler("title")
            handlers.update(self.expression_handler("start", "stop", "pause"))
            parts = self.parts(spec, here, "metric", handlers)
            self.item(indent, f"metric {name(m)}", here, parts)

        return [_Part((*path, m), emit=partial(emit_metric, m=m, spec=s)) for m, s in v.items()]

    def on_clock(self, v: Any, path: JsonPath, keyword: str) -> list[_Part] | None:
        made = self.do("", v, path, keyword)
        if made is None:
            return None
        return [_Part(p.path, emit=partial(self.emit_part, part=p)) for p in made]

    def emit_part(self, indent: int, part: _Part) -> None:
        if part.emit is not None:
            part.emit(indent)
        elif part.render is not None:
            self.line(indent, part.render(indent, False), part.path)

    def escalations(self, k: str, v: Any, path: JsonPath) -> list[_Part] | None:
        if not isinstance(v, list) or not v:
            return None
        for level in v:
            if not isinstance(level, dict) or not isinstance(level.get("at"), str):
                return None
        parts = []
        for i, level in enumerate(v):
            here = (*path, i)
            at = level["at"]
            shown = at if _AT.fullmatch(at) else quote(at)
            rest = {x: y for x, y in level.items() if x != "at"}
            handlers: dict[str, Handler] = {"do": self.do}
            handlers["metric"] = lambda k, v, p: (
                self.fixed(p, f"metric {name(v)}") if isinstance(v, str) else None
            )

            def emit(
                indent: int,
                here: JsonPath = here,
                shown: str = shown,
                rest: dict[str, Any] = rest,
                handlers: dict[str, Handler] = handlers,
            ) -> None:
                parts = self.parts(rest, here, "escalate", handlers)
                self.item(indent, f"escalate at {shown}", here, parts)

            parts.append(_Part(here, emit=emit))
        return parts

    # -- canned replies ------------------------------------------------------------------------
    def reply(self, n: str, spec: dict[str, Any]) -> None:
        path = ("canned_replies", n)
        handlers = self.kv_handler("title", "body")
        handlers["templates"] = self.for_templates
        parts = self.parts(spec, path, "reply", handlers)
        self.item(0, f"reply {name(n)}", path, parts)


def _text_last(parts: list[_Part], path: JsonPath) -> list[_Part]:
    """Text shown to people (titles, labels) after the clauses that carry meaning."""
    n = len(path)
    return sorted(parts, key=lambda p: len(p.path) > n and p.path[n] in _TEXT_KEYS)


def _is_items(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())


def _has_type(spec: Any) -> bool:
    return isinstance(spec, dict) and isinstance(spec.get("type"), str)


def _is_option(option: Any) -> bool:
    return isinstance(option, dict) and isinstance(option.get("value"), str)


def _is_transition(spec: Any) -> bool:
    if not isinstance(spec, dict) or not isinstance(spec.get("to"), str):
        return False
    source = spec.get("from")
    return isinstance(source, str) or (_is_names(source) and bool(source))


def _name_or_none(value: Any) -> str | None:
    return name(value) if isinstance(value, str) else None


def _names_or_none(value: Any) -> str | None:
    return names(value) if _is_names(value) else None


def _strategy(value: Any) -> str | None:
    if isinstance(value, str):
        return name(value)
    return names(value, keep_list=True) if _is_names(value) else None


def write_flow(
    data: Mapping[str, Any], *, comments: CommentMap | None = None, width: int = WIDTH
) -> str:
    """Pack data (plain dicts, lists and scalars) as canonical DSL text."""
    return _Writer(comments, width).write(data)


def format_flow(text: str, path: str = "<string>") -> str:
    """The canonical layout of a `.flow` file, keeping every `#` comment."""
    parsed = parse_flow(text, path)
    if parsed.document is None:
        raise FlowFormatError(parsed.diagnostics)
    comments = attach_comments(parsed.comments, parsed.anchors)
    return write_flow(parsed.document.data, comments=comments)
