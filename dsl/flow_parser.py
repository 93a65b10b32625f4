"""Parse the text DSL (`.flow` files) into the plain data the YAML loader produces.

The grammar is `flow.lark` (LALR, contextual lexer). A walker turns the parse tree into the
same dicts, lists and scalars the equivalent YAML gives, with a source map whose spans point
into the DSL text; expressions are kept as their exact source text. Syntax errors become
`dsl-syntax` diagnostics that name, in words, what was expected.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from copy import copy
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex
from lark.parsers.lalr_interactive_parser import InteractiveParser

from dsl.diagnostics import Diagnostic, Span, did_you_mean
from dsl.expressions import VALUE_START
from dsl.sections import PACK_SECTIONS
from dsl.source_map import JsonPath, SourceMap
from dsl.yaml_loader import LoadLimits, YamlDocument, read_source

GRAMMAR = Path(__file__).with_name("flow.lark")
END = "\0}"  # last element of the anchor path of a closing brace or bracket

Node = Tree[Token]


@dataclass(frozen=True, slots=True)
class FlowComment:
    """A `#` comment; `trailing` when it follows code on the same line."""

    line: int
    column: int
    text: str
    trailing: bool


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a statement, clause, entry or item starts (or a block ends), by data path."""

    line: int
    column: int
    path: JsonPath


@dataclass(slots=True)
class FlowParse:
    """Everything the parser learns from one file; the formatter needs comments and anchors."""

    document: YamlDocument | None
    diagnostics: list[Diagnostic]
    comments: list[FlowComment] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)


# -- layout: newlines, brackets and comments ----------------------------------------------------


@dataclass(slots=True)
class _Layout:
    """Per-parse state of the postlexer."""

    comments: list[FlowComment] = field(default_factory=list)
    open_brackets: list[Token] = field(default_factory=list)
    last_code_line: int = 0
    previous: str | None = None  # type of the last token passed on


_LAYOUT: ContextVar[_Layout] = ContextVar("flow_layout")
_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = frozenset(_OPENERS.values())


class _PostLexer(PostLex):
    """Drops newlines inside ( ) and [ ] and after '{' or ',' and records comments."""

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        layout = _LAYOUT.get()
        for tok in stream:
            if tok.type == "_NL":
                _record_comments(tok, layout)
                inside = layout.open_brackets and layout.open_brackets[-1].type in ("LPAR", "LSQB")
                if inside or layout.previous in (None, "LBRACE", "COMMA", "_NL"):
                    continue
            else:
                layout.last_code_line = tok.end_line or tok.line or 0
                if tok.type in _OPENERS:
                    layout.open_brackets.append(tok)
                elif (
                    tok.type in _CLOSERS
                    and layout.open_brackets
                    and _OPENERS[layout.open_brackets[-1].type] == tok.type
                ):
                    layout.open_brackets.pop()
            layout.previous = tok.type
            yield tok


def _record_comments(tok: Token, layout: _Layout) -> None:
    text = str(tok)
    if "#" not in text:
        return
    line, column = tok.line or 1, tok.column or 1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            comment = text[i:end].rstrip("\r \t")
            layout.comments.append(
                FlowComment(line, column, comment, trailing=line == layout.last_code_line)
            )
            column += end - i
            i = end
        elif ch == "\n":
            line, column, i = line + 1, 1, i + 1
        else:
            column, i = column + 1, i + 1


@cache
def _parser() -> Lark:
    return Lark.open(
        str(GRAMMAR),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        start=["start", "bare_expression"],
        postlex=_PostLexer(),
    )


class _Failed(Exception):
    """A syntax error, with the postlexer's state at that point."""

    def __init__(self, error: UnexpectedInput, layout: _Layout) -> None:
        super().__init__(str(error))
        self.error = error
        self.layout = layout


def _parse_tree(text: str, start: str = "start") -> tuple[Node, _Layout]:
    """Parse with the postlexer's state set up; raises _Failed."""
    layout = _Layout()
    reset = _LAYOUT.set(layout)
    try:
        with _no_cyclic_gc():
            tree = _parser().parse(text, start=start, on_error=_keyword_as_name)
    except UnexpectedInput as exc:
        raise _Failed(exc, layout) from None
    finally:
        _LAYOUT.reset(reset)
    return tree, layout


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector: a parse allocates many small acyclic objects (freed by
    reference counting anyway) and the collector's passes over them double the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _keyword_as_name(exc: UnexpectedInput) -> bool:
    """Read a keyword the parser cannot take as the name it then must be.

    The contextual lexer picks the terminals of the parser state it is in; where LALR shares
    one state between contexts (the state after any name, say), a word such as `team` is
    lexed as a keyword although only a name can follow here (`field owner team`). Feeding
    it again as a NAME fixes that, and only that: a word that is no name either stays an
    error.
    """
    if not isinstance(exc, UnexpectedToken):
        return False
    tok = exc.token
    literal = _literal(tok.type) if tok.type not in ("$END", "_NL") else None
    parser = getattr(exc, "interactive_parser", None)
    if literal is None or not literal.isidentifier() or parser is None:
        return False
    as_name = Token.new_borrow_pos("NAME", str(tok), tok)
    trial = parser.copy(deepcopy_values=False)
    try:
        trial.feed_token(as_name)
    except UnexpectedToken:
        return False
    parser.feed_token(as_name)
    return True


def is_bare_expression(text: str) -> bool:
    """True when `text` parses as one expression on its own, so it can be written bare."""
    if not text or text != text.strip() or "#" in _outside_strings(text):
        return False
    try:
        _parse_tree(text + "\n", "bare_expression")
    except _Failed:
        return False
    return True


def _outside_strings(text: str) -> str:
    """The text with the contents of quoted strings removed."""
    return re.sub(r"\"([^\"\\\n]|\\.)*\"|'([^'\\\n]|\\.)*'", "", text)


# -- limits -------------------------------------------------------------------------------------


def _nesting_exceeds(text: str, limit: int) -> tuple[int, int] | None:
    """The (line, column) where brackets nest past `limit`, or None; linear, before Lark."""
    depth, line, line_start = 0, 1, 0
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 1
            elif ch == quote or ch == "\n":
                quote = None
        elif ch == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        elif ch in "\"'":
            quote = ch
        elif ch in "{[(":
            depth += 1
            if depth > limit:
                return line, i - line_start + 1
        elif ch in "}])":
            depth = max(0, depth - 1)
        if ch == "\n":
            line, line_start = line + 1, i + 1
        i += 1
    return None


# -- values -------------------------------------------------------------------------------------

_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "/": "/",
}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")


class _BadEscape(Exception):
    def __init__(self, offset: int, escape: str) -> None:
        super().__init__(escape)
        self.offset = offset
        self.escape = escape


def decode_string(raw: str) -> str:
    """The value of a quoted string token: escapes in "double" quotes, 'single' quotes raw."""
    body = raw[1:-1]
    if raw[0] == "'":
        return body

    def replace(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise _BadEscape(m.start() + 1, "\\" + code)

    return _ESCAPE.sub(replace, body)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


# -- the walker ---------------------------------------------------------------------------------

# Keys whose mapping (or list) may be written in several statements that add to it.
_TOP_COLLECTIONS = PACK_SECTIONS
_ITEM_COLLECTIONS = frozenset(
    {
        "states",
        "transitions",
        "fields",
        "columns",
        "options",
        "targets",
        "metrics",
        "escalations",
        "on_warning",
        "on_breach",
        "do",
        "validate",
    }
)

_KIND_WORDS = {
    "calendars": "calendar",
    "roles": "role",
    "skills": "skill",
    "teams": "team",
    "templates": "template",
    "workflows": "workflow",
    "rules": "rule",
    "sla": "SLA policy",
    "messages": "message",
    "canned_replies": "reply",
    "states": "state",
    "transitions": "transition",
    "fields": "field",
    "columns": "column",
    "metrics": "metric",
    "targets": "target",
}


class _Skip(Exception):
    """Abandon the current statement after a diagnostic."""


class _Walker:
    """Builds plain data and a source map from a parse tree, path by path."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.data: dict[str, Any] = {}
        self.source = SourceMap()
        self.diagnostics: list[Diagnostic] = []
        self.anchors: list[Anchor] = []
        self.handlers: dict[str, Callable[[Node, dict[str, Any], JsonPath], None]] = {
            "entry": self._entry,
            "field_flag": self._flag,
            "state_flag": self._flag,
            "field_expr": self._keyword_expression,
            "metric_expr": self._keyword_expression,
            "when": self._named_expression("when"),
            "if": self._named_expression("if"),
            "applies_if": self._named_expression("applies_if"),
            "validate": self._validate,
            "do": self._do,
            "transition_names": self._keyword_names,
            "pauses_sla": self._sla_mode("pause"),
            "stops_sla": self._sla_mode("stop"),
            "states": self._states,
            "state": self._state,
            "final": self._state,
            "transition": self._transition,
            "field": self._field,
            "column": self._column,
            "option": self._option,
            "see": self._see,
            "access": self._access,
            "hide": self._keyword_names,
            "for_templates": self._for_templates,
            "permission_state": self._permission_state,
            "on": self._on,
            "target": self._target,
            "metric": self._metric,
            "on_sla": self._on_sla,
            "escalate": self._escalate,
            "escalate_metric": self._escalate_metric,
        }
        self.collections: frozenset[str] = _ITEM_COLLECTIONS

    # -- spans and anchors ---------------------------------------------------------------------
    def span(self, node: Node | Token) -> Span:
        if isinstance(node, Token):
            return Span(self.file, node.line or 1, node.column or 1, node.end_line, node.end_column)
        meta = node.meta
        if getattr(meta, "empty", True):
            return Span(self.file, 1, 1)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def anchor(self, node: Node | Token | Span, path: JsonPath) -> None:
        span = node if isinstance(node, Span) else self.span(node)
        self.anchors.append(Anchor(span.line, span.column, path))

    def end_anchor(self, node: Node, path: JsonPath) -> None:
        meta = node.meta
        if not getattr(meta, "empty", True):
            self.anchors.append(Anchor(meta.end_line, max(1, meta.end_column - 1), (*path, END)))

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint=hint))

    def duplicate(self, what: str, here: Span, first: Span | None, item: bool = False) -> None:
        where = f" (first at line {first.line})" if first is not None else ""
        verb = "defined" if item else "given"
        hint = (
            "names are unique within their kind; merge the two, or rename one"
            if item
            else "each key may appear once; merge the two, or delete one"
        )
        self.diagnostics.append(
            Diagnostic(
                "dsl-duplicate-key",
                f"{what} is {verb} twice{where}",
                here,
                hint=hint,
                related=(first,) if first is not None else (),
            )
        )

    # -- the file ------------------------------------------------------------------------------
    def walk(self, tree: Node) -> None:
        self.source.values[()] = Span(self.file, 1, 1)
        for stmt in tree.children:
            if not isinstance(stmt, Tree):
                continue
            try:
                self.top(stmt)
            except _Skip:
                continue
        end = self.text.count("\n") + 1
        self.anchors.append(Anchor(end, 1, (END,)))

    def top(self, stmt: Node) -> None:
        kind = stmt.data
        if kind == "top_kv":
            self.anchor(stmt, (self.token(stmt, 0).value,))
            self.keyword_value(stmt, self.data, ())
        elif kind == "entry":
            self.collections = _TOP_COLLECTIONS
            try:
                self._entry(stmt, self.data, ())
            finally:
                self.collections = _ITEM_COLLECTIONS
        elif kind in ("roles_list", "skills_list"):
            self.name_list_section("roles" if kind == "roles_list" else "skills", stmt)
        elif kind == "sla_section":
            self.anchor(stmt, ("sla",))
            self.merge(self.data, (), "sla", self.span(stmt), stmt.children[-1])
        elif kind == "message":
            name, name_span = self.name(stmt.children[0])
            section = self.section("messages", stmt)
            path: JsonPath = ("messages", name)
            self.anchor(stmt, path)
            if name in section:
                self.duplicate(f"message '{name}'", name_span, self.source.keys.get(path), True)
                return
            self.source.keys[path] = name_span
            section[name] = self.value(stmt.children[-1], path)
        elif kind == "permission":
            self.permission(stmt)
        else:
            section_key = {
                "calendar": "calendars",
                "role": "roles",
                "skill": "skills",
                "team": "teams",
                "template": "templates",
                "workflow": "workflows",
                "rule": "rules",
                "sla_policy": "sla",
                "reply": "canned_replies",
            }[kind]
            section = self.section(section_key, stmt)
            item, path = self.item(section, (section_key,), stmt)
            self.clauses(stmt.children[1:], item, path)

    def section(self, key: str, stmt: Node) -> dict[str, Any]:
        current = self.data.get(key)
        if current is None:
            current = self.data[key] = {}
            self.source.keys[(key,)] = self.span(stmt)
            self.source.values[(key,)] = self.span(stmt)
        if not isinstance(current, dict):
            first = self.source.keys.get((key,))
            at = f" at line {first.line}" if first is not None else ""
            one = _KIND_WORDS.get(key, key)
            self.diagnostics.append(
                Diagnostic(
                    "dsl-mixed-forms",
                    f"{key} are listed by name{at}; a {one} cannot also be defined on its own",
                    self.span(stmt),
                    hint=f"use one form: '{key} a, b, c', or one '{one}' statement per {one}",
                    related=(first,) if first is not None else (),
                )
            )
            raise _Skip
        return current

    def name_list_section(self, key: str, stmt: Node) -> None:
        value_node = stmt.children[-1]
        assert isinstance(value_node, Tree)
        self.anchor(stmt, (key,))
        current = self.data.get(key)
        if value_node.data == "mapping":
            self.merge(self.data, (), key, self.span(stmt), value_node)
            return
        if current is None:
            current = self.data[key] = []
            self.source.keys[(key,)] = self.span(stmt)
            self.source.values[(key,)] = self.span(value_node)
        if not isinstance(current, list):
            first = self.source.keys.get((key,))
            at = f" from line {first.line}" if first is not None else ""
            one = _KIND_WORDS.get(key, key)
            self.diagnostics.append(
                Diagnostic(
                    "dsl-mixed-forms",
                    f"{key} are defined one by one{at}; they cannot also be listed by name",
                    self.span(stmt),
                    hint=f"use one form: '{key} a, b, c', or one '{one}' statement per {one}",
                    related=(first,) if first is not None else (),
                )
            )
            return
        for name_node in self.name_nodes(value_node):
            name, span = self.name(name_node)
            self.source.values[(key, len(current))] = span
            current.append(name)

    def item(
        self, section: dict[str, Any], base: JsonPath, stmt: Node, name_index: int = 0
    ) -> tuple[dict[str, Any], JsonPath]:
        """Add the named item a statement defines to `section`."""
        name, name_span = self.name(stmt.children[name_index])
        path = (*base, name)
        self.anchor(stmt, path)
        if name in section:
            kind = _KIND_WORDS.get(str(base[-1]), str(base[-1]))
            self.duplicate(f"{kind} '{name}'", name_span, self.source.keys.get(path), item=True)
            raise _Skip
        self.source.keys[path] = name_span
        self.source.values[path] = self.span(stmt)
        section[name] = {}
        return section[name], path

    # -- clauses -------------------------------------------------------------------------------
    def clauses(self, children: list[Node | Token], item: dict[str, Any], path: JsonPath) -> None:
        for child in children:
            if not isinstance(child, Tree):
                continue
            if child.data == "block":
                self.clauses(child.children, item, path)
                self.end_anchor(child, path)
                continue
            try:
                self.clause(child, item, path)
            except _Skip:
                continue

    def clause(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        kind = str(node.data)
        if kind.endswith("_kv"):
            self.anchor(node, (*path, self.token(node, 0).value))
            self.keyword_value(node, item, path)
            return
        self.handlers[kind](node, item, path)

    def token(self, node: Node, index: int) -> Token:
        child = node.children[index]
        assert isinstance(child, Token)
        return child

    def keyword_value(self, node: Node, container: dict[str, Any], base: JsonPath) -> None:
        key_tok = self.token(node, 0)
        value_node = node.children[-1]
        self.put(container, base, key_tok.value, self.span(key_tok), value_node)

    def put(
        self,
        container: dict[str, Any],
        base: JsonPath,
        key: str,
        key_span: Span,
        value_node: Node | Token,
    ) -> None:
        """Set `container[key]` from a value node, refusing a key given twice."""
        path = (*base, key)
        if key in container:
            if key in self.collections:
                self.merge(container, base, key, key_span, value_node)
                return
            self.duplicate(f"'{key}'", key_span, self.source.keys.get(path))
            return
        self.source.keys[path] = key_span
        container[key] = self.value(value_node, path)

    def set(
        self,
        container: dict[str, Any],
        base: JsonPath,
        key: str,
        key_span: Span,
        value: Any,
        value_span: Span | None = None,
    ) -> None:
        """Set `container[key]` to a value computed by a compact form."""
        path = (*base, key)
        if key in container:
            self.duplicate(f"'{key}'", key_span, self.source.keys.get(path))
            raise _Skip
        self.source.keys[path] = key_span
        self.source.values[path] = value_span or key_span
        container[key] = value

    def merge(
        self,
        container: dict[str, Any],
        base: JsonPath,
        key: str,
        key_span: Span,
        value_node: Node | Token,
    ) -> None:
        """Add the entries of a generic mapping or list to a collection built by statements."""
        path = (*base, key)
        current = container.get(key)
        if current is None:
            self.source.keys[path] = key_span
            container[key] = self.value(value_node, path)
            return
        kind = value_node.data if isinstance(value_node, Tree) else ""
        children = value_node.children if isinstance(value_node, Tree) else []
        if kind == "mapping" and isinstance(current, dict):
            for entry in children:
                if isinstance(entry, Tree):
                    self._entry(entry, current, path)
            return
        if kind == "list" and isinstance(current, list):
            for item_node in children:
                current.append(self.value(item_node, (*path, len(current))))
            return
        self.duplicate(f"'{key}'", key_span, self.source.keys.get(path))

    def _entry(self, node: Node, container: dict[str, Any], base: JsonPath) -> None:
        key_node = node.children[0]
        assert isinstance(key_node, Tree)
        key, key_span = self.key(key_node)
        self.anchor(node, (*base, key))
        self.put(container, base, key, key_span, node.children[-1])

    def _flag(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        key_tok = self.token(node, 0)
        self.anchor(node, (*path, key_tok.value))
        value, span = True, self.span(key_tok)
        last = node.children[-1]
        if isinstance(last, Tree) and last.data == "bool":
            value, span = self.token(last, 0).value == "true", self.span(last)
        self.set(item, path, key_tok.value, self.span(key_tok), value, span)

    def _keyword_expression(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        key_tok = self.token(node, 0)
        self.anchor(node, (*path, key_tok.value))
        expr = node.children[-1]
        assert isinstance(expr, Tree)
        self.set(
            item, path, key_tok.value, self.span(key_tok), self.expression(expr), self.span(expr)
        )

    def _named_expression(self, key: str) -> Callable[[Node, dict[str, Any], JsonPath], None]:
        def handle(node: Node, item: dict[str, Any], path: JsonPath) -> None:
            self.anchor(node, (*path, key))
            expr = node.children[-1]
            assert isinstance(expr, Tree)
            self.set(
                item,
                path,
                key,
                self.keyword_span(node, key),
                self.expression(expr),
                self.span(expr),
            )

        return handle

    def keyword_span(self, node: Node, word: str) -> Span:
        """The span of the keyword a statement starts with (filtered out of the tree)."""
        meta = node.meta
        return Span(self.file, meta.line, meta.column, meta.line, meta.column + len(word))

    def expression(self, node: Node) -> str:
        """The exact source text of an expression (comments inside brackets blanked out)."""
        meta = node.meta
        text = self.text[meta.start_pos : meta.end_pos]
        if "\n" in text:
            lines = [_strip_comment(line).rstrip() for line in text.split("\n")]
            text = "\n".join(lines)
        return text

    def collection(
        self, item: dict[str, Any], path: JsonPath, key: str, span: Span, factory: type
    ) -> Any:
        current = item.get(key)
        if current is None:
            current = item[key] = factory()
            self.source.keys[(*path, key)] = span
            self.source.values[(*path, key)] = span
        if not isinstance(current, factory):
            self.error(
                "dsl-mixed-forms",
                f"'{key}' was given as a single value above; it cannot also be added to here",
                span,
                f"write all of '{key}' in one form",
            )
            raise _Skip
        return current

    def _validate(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "validate")
        checks = self.collection(item, path, "validate", span, list)
        here = (*path, "validate", len(checks))
        self.anchor(node, here)
        expr, message = node.children[0], node.children[-1]
        assert isinstance(expr, Tree)
        self.source.values[here] = span
        self.source.keys[(*here, "if")] = span
        self.source.values[(*here, "if")] = self.span(expr)
        entry: dict[str, Any] = {"if": self.expression(expr)}
        self.source.keys[(*here, "message")] = self.span(message)
        entry["message"] = self.value(message, (*here, "message"))
        checks.append(entry)

    def _do(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        self.actions(node, [c for c in node.children if isinstance(c, Tree)], item, path, "do")

    def actions(
        self, node: Node, actions: list[Node], item: dict[str, Any], path: JsonPath, key: str
    ) -> None:
        span = self.keyword_span(node, str(key))
        current = self.collection(item, path, key, span, list)
        first = True
        for action in actions:
            here = (*path, key, len(current))
            self.anchor(node if first else action, here)
            first = False
            current.append(self.action(action, here))

    def _keyword_names(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        key_tok = self.token(node, 0)
        self.anchor(node, (*path, key_tok.value))
        self.set_names(item, path, key_tok.value, self.span(key_tok), node.children[-1])

    def set_names(
        self,
        item: dict[str, Any],
        path: JsonPath,
        key: str,
        key_span: Span,
        names_node: Node | Token,
        single_as_text: bool = False,
    ) -> None:
        assert isinstance(names_node, Tree)
        value_path = (*path, key)
        if key in item:
            self.duplicate(f"'{key}'", key_span, self.source.keys.get(value_path))
            raise _Skip
        self.source.keys[value_path] = key_span
        item[key] = self.names_value(names_node, value_path, single_as_text)

    def names_value(self, node: Node, path: JsonPath, single_as_text: bool = False) -> Any:
        """A names node as data: a list, or one name as text when written bare and alone."""
        self.source.values[path] = self.span(node)
        nodes = self.name_nodes(node)
        if single_as_text and node.data == "names" and len(nodes) == 1:
            return self.name(nodes[0])[0]
        values = []
        for i, name_node in enumerate(nodes):
            name, span = self.name(name_node)
            self.source.values[(*path, i)] = span
            values.append(name)
        return values

    def name_nodes(self, node: Node) -> list[Node]:
        return [c for c in node.children if isinstance(c, Tree) and c.data == "name"]

    def _sla_mode(self, mode: str) -> Callable[[Node, dict[str, Any], JsonPath], None]:
        def handle(node: Node, item: dict[str, Any], path: JsonPath) -> None:
            self.anchor(node, (*path, "sla"))
            self.set(item, path, "sla", self.span(node), mode)

        return handle

    # -- workflows -----------------------------------------------------------------------------
    def _states(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        value = node.children[-1]
        assert isinstance(value, Tree)
        span = self.keyword_span(node, "states")
        if value.data == "mapping":
            self.anchor(node, (*path, "states"))
            self.merge(item, path, "states", span, value)
            return
        states = self.collection(item, path, "states", span, dict)
        for i, name_node in enumerate(self.name_nodes(value)):
            name, name_span = self.name(name_node)
            here = (*path, "states", name)
            self.anchor(node if i == 0 else name_node, here)
            if name in states:
                self.duplicate(f"state '{name}'", name_span, self.source.keys.get(here), True)
                continue
            self.source.keys[here] = name_span
            self.source.values[here] = name_span
            states[name] = {}

    def _state(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, str(node.data))
        states = self.collection(item, path, "states", span, dict)
        state, here = self.item(states, (*path, "states"), node)
        if node.data == "final":
            self.source.keys[(*here, "final")] = span
            self.source.values[(*here, "final")] = span
            state["final"] = True
        self.clauses(node.children[1:], state, here)

    def _transition(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        sources, to_node = node.children[0], node.children[1]
        assert isinstance(sources, Tree) and isinstance(to_node, Tree)
        transitions = self.collection(item, path, "transitions", self.span(node), dict)
        transition, here = self.item(transitions, (*path, "transitions"), node, name_index=2)
        from_span = self.span(sources)
        self.source.keys[(*here, "from")] = from_span
        self.source.values[(*here, "from")] = from_span
        items = [c for c in sources.children if isinstance(c, Tree | Token)]
        values: list[str] = []
        for i, source in enumerate(items):
            if isinstance(source, Token):  # '*'
                values.append("*")
                self.source.values[(*here, "from", i)] = self.span(source)
            else:
                name, span = self.name(source)
                values.append(name)
                self.source.values[(*here, "from", i)] = span
        if sources.data == "sources" and len(values) == 1:
            transition["from"] = values[0]
        else:
            transition["from"] = values
        to, to_span = self.name(to_node)
        self.source.keys[(*here, "to")] = to_span
        self.source.values[(*here, "to")] = to_span
        transition["to"] = to
        self.clauses(node.children[3:], transition, here)

    # -- templates -----------------------------------------------------------------------------
    def _field(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "field")
        fields = self.collection(item, path, "fields", span, dict)
        spec, here = self.item(fields, (*path, "fields"), node)
        type_node = node.children[1]
        assert isinstance(type_node, Tree)
        type_name, type_span = self.name(type_node)
        self.source.keys[(*here, "type")] = type_span
        self.source.values[(*here, "type")] = type_span
        spec["type"] = type_name
        self.clauses(node.children[2:], spec, here)

    def _column(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "column")
        columns = self.collection(item, path, "columns", span, dict)
        spec, here = self.item(columns, (*path, "columns"), node)
        type_node = node.children[1]
        assert isinstance(type_node, Tree)
        type_name, type_span = self.name(type_node)
        rest = node.children[2:]
        if not rest:
            columns[here[-1]] = type_name
            self.source.values[here] = type_span
            return
        self.source.keys[(*here, "type")] = type_span
        self.source.values[(*here, "type")] = type_span
        spec["type"] = type_name
        self.clauses(rest, spec, here)

    def _option(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "option")
        options = self.collection(item, path, "options", span, list)
        here = (*path, "options", len(options))
        self.anchor(node, here)
        key_node = node.children[0]
        assert isinstance(key_node, Tree)
        value, value_span = self.key(key_node)
        rest = node.children[1:]
        self.source.values[here] = value_span
        if not rest:
            options.append(value)
            return
        option: dict[str, Any] = {"value": value}
        self.source.keys[(*here, "value")] = value_span
        self.source.values[(*here, "value")] = value_span
        options.append(option)
        self.clauses(rest, option, here)

    # -- permissions ---------------------------------------------------------------------------
    def permission(self, stmt: Node) -> None:
        section = self.section("permissions", stmt)
        role, role_span = self.name(stmt.children[0])
        path: JsonPath = ("permissions", role)
        entry: dict[str, Any] = {}
        if role not in section:
            section[role] = entry
            self.source.keys[path] = role_span
            self.source.values[path] = self.span(stmt)
            self.anchor(stmt, path)
            self.clauses(stmt.children[1:], entry, path)
            return
        current = section[role]
        if isinstance(current, dict):
            # A second statement for the role: the entries become a list.
            self.rebase(path, (*path, 0))
            current = section[role] = [current]
        assert isinstance(current, list)
        here = (*path, len(current))
        current.append(entry)
        self.source.values[here] = self.span(stmt)
        self.anchor(stmt, here)
        self.clauses(stmt.children[1:], entry, here)

    def rebase(self, old: JsonPath, new: JsonPath) -> None:
        """Move every span and anchor under `old` (not `old` itself) to `new`."""
        n = len(old)

        def move(p: JsonPath) -> JsonPath:
            return (*new, *p[n:]) if len(p) > n and p[:n] == old else p

        self.source.keys = {move(p): s for p, s in self.source.keys.items()}
        self.source.values = {move(p): s for p, s in self.source.values.items()}
        self.source.values[new] = self.source.values[old]
        self.anchors = [
            Anchor(a.line, a.column, new if a.path == old else move(a.path)) for a in self.anchors
        ]

    def _see(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "see")
        self.anchor(node, (*path, "see"))
        value = node.children[-1]
        assert isinstance(value, Tree)
        if value.data == "expression":
            here = (*path, "see")
            self.set(item, path, "see", span, {"if": self.expression(value)}, self.span(value))
            self.source.keys[(*here, "if")] = self.span(value)
            self.source.values[(*here, "if")] = self.span(value)
        elif value.data == "mapping":
            self.put(item, path, "see", span, value)
        else:
            self.set_names(item, path, "see", span, value, single_as_text=True)

    def _access(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        key_tok = self.token(node, 0)
        self.anchor(node, (*path, key_tok.value))
        value = node.children[-1]
        if isinstance(value, Token):  # '*'
            self.set(item, path, key_tok.value, self.span(key_tok), "*", self.span(value))
        else:
            self.set_names(item, path, key_tok.value, self.span(key_tok), value)

    def _for_templates(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        self.anchor(node, (*path, "templates"))
        span = self.keyword_span(node, "for")
        self.set_names(item, path, "templates", span, node.children[-1])

    def _permission_state(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "state")
        states = self.collection(item, path, "states", span, dict)
        state, here = self.item(states, (*path, "states"), node)
        self.clauses(node.children[1:], state, here)

    # -- rules and triggers --------------------------------------------------------------------
    def _on(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "on")
        here = (*path, "on")
        self.anchor(node, here)
        trigger = node.children[-1]
        assert isinstance(trigger, Tree)
        if trigger.data == "mapping":
            self.put(item, path, "on", span, trigger)
            return
        self.set(item, path, "on", span, self.trigger(trigger, here), self.span(trigger))

    def trigger(self, node: Node, path: JsonPath) -> Any:
        kind = str(node.data)
        parts = [c for c in node.children]
        if kind == "event":
            tokens = [c for c in parts if isinstance(c, Token)]
            if len(tokens) == 1 and tokens[0].type == "STRING":
                return self.string(tokens[0])
            return ".".join(t.value for t in tokens)
        if kind in ("transitioned", "updated") and not parts:
            return kind
        if kind == "sla_dotted":
            return "sla." + str(parts[-1])
        key = {"scheduled": "schedule", "named_event": "event", "sla_event": "sla"}.get(kind, kind)
        out: dict[str, Any] = {}
        trees = [c for c in parts if isinstance(c, Tree)]
        key_span = self.keyword_span(node, key)
        self.source.keys[(*path, key)] = key_span
        first = trees[0]
        if kind == "updated":
            out[key] = self.names_value(first, (*path, key))
            return out
        if kind == "scheduled":
            out[key] = self.value(first, (*path, key))
        else:
            out[key], span = self.name(first)
            self.source.values[(*path, key)] = span
        if len(trees) > 1:
            extra = {
                "entered": "after",
                "left": "after",
                "transitioned": "after",
                "scheduled": "calendar",
                "sla_event": "metric",
            }[kind]
            second = trees[1]
            self.source.keys[(*path, extra)] = self.span(second)
            if second.data == "name":
                out[extra], span = self.name(second)
                self.source.values[(*path, extra)] = span
            else:
                out[extra] = self.value(second, (*path, extra))
        return out

    # -- SLA policies --------------------------------------------------------------------------
    def _target(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "target")
        targets = self.collection(item, path, "targets", span, dict)
        name_node = node.children[0]
        assert isinstance(name_node, Tree)
        metric, metric_span = self.name(name_node)
        here = (*path, "targets", metric)
        self.anchor(node, here)
        if metric in targets:
            self.duplicate(f"target '{metric}'", metric_span, self.source.keys.get(here), True)
            return
        self.source.keys[here] = metric_span
        rest = [c for c in node.children[1:] if isinstance(c, Tree)]
        if len(rest) == 1 and rest[0].data != "target_pair":
            targets[metric] = self.value(rest[0], here)
            return
        per_priority: dict[str, Any] = {}
        self.source.values[here] = self.span(rest[0])
        for pair in rest:
            self._entry(pair, per_priority, here)
        targets[metric] = per_priority

    def _metric(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "metric")
        metrics = self.collection(item, path, "metrics", span, dict)
        metric, here = self.item(metrics, (*path, "metrics"), node)
        self.clauses(node.children[1:], metric, here)

    def _on_sla(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        moment = self.token(node, 1).value
        key = "on_warning" if moment == "warning" else "on_breach"
        actions = [c for c in node.children if isinstance(c, Tree)]
        self.actions(node, actions, item, path, key)

    def _escalate(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        span = self.keyword_span(node, "escalate")
        levels = self.collection(item, path, "escalations", span, list)
        here = (*path, "escalations", len(levels))
        self.anchor(node, here)
        self.source.values[here] = span
        at_node = node.children[0]
        assert isinstance(at_node, Tree)
        tokens = [c for c in at_node.children if isinstance(c, Token)]
        if tokens[0].type == "STRING":
            at = self.string(tokens[0])
        else:
            at = self.text[tokens[0].start_pos : tokens[-1].end_pos]
        level: dict[str, Any] = {"at": at}
        self.source.keys[(*here, "at")] = self.span(at_node)
        self.source.values[(*here, "at")] = self.span(at_node)
        levels.append(level)
        self.clauses(node.children[1:], level, here)

    def _escalate_metric(self, node: Node, item: dict[str, Any], path: JsonPath) -> None:
        self.anchor(node, (*path, "metric"))
        name_node = node.children[0]
        assert isinstance(name_node, Tree)
        name, span = self.name(name_node)
        self.set(item, path, "metric", self.keyword_span(node, "metric"), name, span)

    # -- actions -------------------------------------------------------------------------------
    def action(self, node: Node, path: JsonPath) -> Any:
        kind = str(node.data)
        self.source.values[path] = self.span(node)
        if kind == "mapping":
            return self.value(node, path)
        key = {
            "transition_action": "transition",
            "set_action": "set",
            "comment_action": "comment",
            "schedule_action": "schedule",
        }.get(kind, kind)
        here = (*path, key)
        self.source.keys[here] = self.keyword_span(node, key)
        self.source.values[here] = self.span(node)
        spec: dict[str, Any] = {}
        trees = [c for c in node.children if isinstance(c, Tree)]
        if kind == "notify":
            self.source.keys[(*here, "to")] = self.span(trees[0])
            spec["to"] = self.names_value(trees[0], (*here, "to"), single_as_text=True)
            self.options(trees[1:], spec, here)
        elif kind == "assign":
            if trees and trees[0].data == "name":
                self.name_at(trees[0], spec, here, "to")
                trees = trees[1:]
            self.options(trees, spec, here)
        elif kind == "transition_action":
            name, span = self.name(trees[0])
            if len(trees) == 1:
                self.source.values[here] = span
                return {key: name}
            self.name_at(trees[0], spec, here, "name")
            self.name_at(trees[1], spec, here, "as")
        elif kind == "set_action":
            if trees[0].data == "mapping":
                return {key: self.value(trees[0], here)}
            for assignment in trees:
                self._entry(assignment, spec, here)
        elif kind == "webhook":
            self.source.keys[(*here, "url")] = self.span(trees[0])
            spec["url"] = self.value(trees[0], (*here, "url"))
            self.options(trees[1:], spec, here)
        elif kind == "comment_action":
            self.name_at(trees[0], spec, here, "message")
            last = node.children[-1]
            if isinstance(last, Token) and last.type in ("INTERNAL", "PUBLIC"):
                self.source.keys[(*here, "internal")] = self.span(last)
                self.source.values[(*here, "internal")] = self.span(last)
                spec["internal"] = last.type == "INTERNAL"
        elif kind == "create_ticket":
            self.name_at(trees[0], spec, here, "template")
            self.options(trees[1:], spec, here)
        elif kind == "schedule_action":
            self.name_at(trees[0], spec, here, "event")
            self.source.keys[(*here, "after")] = self.span(trees[1])
            spec["after"] = self.value(trees[1], (*here, "after"))
        elif kind == "raise_priority":
            self.options(trees, spec, here)
        return {key: spec}

    def name_at(self, node: Node, spec: dict[str, Any], path: JsonPath, key: str) -> None:
        name, span = self.name(node)
        self.source.keys[(*path, key)] = span
        self.source.values[(*path, key)] = span
        spec[key] = name

    def options(self, nodes: list[Node], spec: dict[str, Any], path: JsonPath) -> None:
        """The `keyword value` options of an action, e.g. `via sms, wecom message p1_alert`."""
        for node in nodes:
            key_tok = self.token(node, 0)
            key = key_tok.value
            value = node.children[-1]
            assert isinstance(value, Tree)
            here = (*path, key)
            if key in spec:
                self.duplicate(f"'{key}'", self.span(key_tok), self.source.keys.get(here))
                continue
            self.source.keys[here] = self.span(key_tok)
            if value.data == "name":
                spec[key], span = self.name(value)
                self.source.values[here] = span
            elif value.data in ("names", "name_list"):
                spec[key] = self.names_value(value, here, single_as_text=key == "strategy")
            else:
                spec[key] = self.value(value, here)

    # -- names and values ----------------------------------------------------------------------
    def string(self, tok: Token) -> str:
        try:
            return decode_string(tok.value)
        except _BadEscape as exc:
            raw = tok.value[1:-1]
            single = f"'{raw}'" if "'" not in raw else "single quotes"
            self.error(
                "dsl-syntax",
                f"unknown escape '{exc.escape}' in a string",
                Span(self.file, tok.line or 1, (tok.column or 1) + exc.offset),
                f"text with backslashes, such as a regular expression, goes in single quotes, "
                f"which keep backslashes as they are: {single}; or write \\\\ for each one",
            )
            raise _Skip from None

    def name(self, node: Node | Token) -> tuple[str, Span]:
        tok = node.children[0] if isinstance(node, Tree) else node
        assert isinstance(tok, Token)
        if tok.type == "STRING":
            return self.string(tok), self.span(tok)
        return tok.value, self.span(tok)

    def key(self, node: Node) -> tuple[str, Span]:
        return self.name(node)

    def value(self, node: Node | Token, path: JsonPath) -> Any:
        """Plain data of a value node, recording the span of it and of everything inside."""
        span = self.span(node)
        self.source.values[path] = span
        if isinstance(node, Token):
            return self.scalar([node])
        kind = node.data
        if kind == "scalar":
            return self.scalar([c for c in node.children if isinstance(c, Token)])
        if kind == "list":
            items = []
            for i, child in enumerate(c for c in node.children if isinstance(c, Tree | Token)):
                self.anchor(child, (*path, i))
                items.append(self.value(child, (*path, i)))
            self.end_anchor(node, path)
            return items
        if kind == "mapping":
            mapping: dict[str, Any] = {}
            saved, self.collections = self.collections, frozenset()
            try:
                for entry in node.children:
                    if isinstance(entry, Tree):
                        try:
                            self._entry(entry, mapping, path)
                        except _Skip:
                            continue
            finally:
                self.collections = saved
            self.end_anchor(node, path)
            return mapping
        if kind == "name":
            return self.name(node)[0]
        if kind in ("names", "name_list"):
            return self.names_value(node, path)
        raise AssertionError(f"not a value: {kind}")

    def scalar(self, tokens: list[Token]) -> Any:
        tok = tokens[-1]
        kind = tok.type
        if kind == "STRING":
            return self.string(tok)
        if kind == "NUMBER":
            number = _number(tok.value)
            return -number if len(tokens) > 1 else number
        if kind == "TRUE":
            return True
        if kind == "FALSE":
            return False
        if kind == "NULL":
            return None
        return tok.value


def _strip_comment(line: str) -> str:
    """A line of an expression without its `#` comment (quotes respected)."""
    quote: str | None = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote is not None:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
        i += 1
    return line


# -- syntax errors in words ---------------------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "DURATION": "a duration such as 30m",
    "PERCENT": "a percentage such as 80%",
    "DATE": "a date such as 2026-01-31",
    "DASHED": "a name",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "expr__COMPARE": "a comparison",
    "expr__ADD_OP": "an operator",
    "expr__MUL_OP": "an operator",
}
_VALUE_START = frozenset(
    {
        "STRING",
        "NAME",
        "DASHED",
        "DATE",
        "DURATION",
        "PERCENT",
        "NUMBER",
        "MINUS",
        "TRUE",
        "FALSE",
        "NULL",
        "LSQB",
        "LBRACE",
    }
)
_EXPRESSION_START = VALUE_START
_OPERATORS = frozenset(
    {"expr__COMPARE", "expr__ADD_OP", "expr__MUL_OP", "AND", "OR", "IN", "NOT", "DOT", "LPAR"}
)
_STATEMENTS = frozenset({"WORKFLOW", "TEMPLATE", "RULE", "PERMISSION", "CALENDAR", "ROLE"})
_ITEM_WORDS = {
    "CALENDAR": "calendar",
    "ROLE": "role",
    "SKILL": "skill",
    "TEAM": "team",
    "TEMPLATE": "template",
    "FIELD": "field",
    "COLUMN": "column",
    "OPTION": "option",
    "WORKFLOW": "workflow",
    "STATE": "state",
    "FINAL": "state",
    "PERMISSION": "permission",
    "RULE": "rule",
    "SLA": "SLA policy",
    "METRIC": "metric",
    "MESSAGE": "message",
    "REPLY": "reply",
}
# How each kind of statement reads: the hint when nothing more specific applies.
_SHAPES = {
    "CALENDAR": 'calendar <name> week {mon-fri: "09:00-18:00"} holidays CN',
    "ROLE": 'role <name> title "..." staff false',
    "SKILL": 'skill <name> title "..."',
    "TEAM": "team <name> skills [a, b] calendar <calendar>",
    "TEMPLATE": "template <name> { workflow <name> / field <name> <type> ... } (one per line)",
    "FIELD": 'field <name> <type> required label "..." visible_if <condition>',
    "COLUMN": 'column <name> <type> required label "..."',
    "OPTION": 'option <value> label "..."',
    "WORKFLOW": "workflow <name> { initial <state> / states a, b / final <state> / "
    "<from> -> <to> : <name> ... } (one per line)",
    "STATE": 'state <name> category open pauses sla title "..."',
    "FINAL": 'final <name> category closed title "..."',
    "_ARROW": "<from> -> <to> : <name> roles a, b requires <field> when <condition> do <action>",
    "PERMISSION": "permission <role> see own create <templates> write <fields> (or *)",
    "RULE": "rule <name> on <event> for <templates> if <condition> do <action> then <action>",
    "SLA": "sla <name> { calendar <name> / target resolution P1 4h, P2 1d / "
    "on breach <action> / escalate at breach + 2h do <action> } (one per line)",
    "METRIC": "metric <name> start <condition> stop <condition>",
    "MESSAGE": 'message <name> {en: "...", zh: "..."}',
    "REPLY": 'reply <name> title "..." body "..."',
}
_ACTIONS_SHAPE = (
    "actions read: notify <who> via sms, email message <name> / assign <who> / "
    "set <field> = <value> / transition <name> / comment <message> / "
    "create_ticket <template> / schedule <event> after 2h / raise_priority; "
    "join them with then"
)
# What must follow a keyword, when saying so helps more than listing tokens.
_AFTER = {
    ("FIELD", "name"): "the field's type, such as text, choice or integer",
    ("COLUMN", "name"): "the column's type, such as text or integer",
    ("_ARROW", "name"): "':' and the transition's name, as in 'new -> assigned : assign'",
    ("VALIDATE", "expression"): "'message' and the text shown when the check fails",
}
_OPERATOR_WORDS = frozenset({"and", "or", "not", "in"})


@cache
def keywords_after(prefix: str) -> frozenset[str]:
    """The keywords the grammar accepts right after `prefix`, a fragment of DSL text."""
    layout = _Layout()
    reset = _LAYOUT.set(layout)
    try:
        interactive = _parser().parse_interactive(prefix, start="start")
        interactive.exhaust_lexer()
        accepted = _accepts(interactive)
    finally:
        _LAYOUT.reset(reset)
    words = (_literal(name) for name in accepted)
    return frozenset(w for w in words if w is not None and w.isidentifier())


@cache
def _keyword_names() -> frozenset[str]:
    words = (_literal(t.name) for t in _parser().terminals)
    return frozenset(w for w in words if w and w.isidentifier())


def _literal(name: str) -> str | None:
    """The text of a keyword or punctuation terminal, or None for a pattern terminal."""
    try:
        term = _parser().get_terminal(name)
    except KeyError:
        return None
    pattern = term.pattern
    return str(pattern.value) if pattern.type == "str" else None


def _join(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _describe_expected(expected: set[str]) -> tuple[str, list[str]]:
    """What was expected, in words; and the keywords among it (for 'did you mean')."""
    names = set(expected)
    if len(names) > 1:
        names.discard("COLON")  # the optional ':' after a keyword is never the point
    words: list[str] = []
    if "_ARROW" in names:  # a line starting with names is most likely a transition
        words.append("'->'")
        names.discard("_ARROW")
    if names >= _EXPRESSION_START:
        words.append("an expression")
        names -= _EXPRESSION_START
    elif len(names & _VALUE_START) >= 5:
        words.append("a value")
        names -= _VALUE_START
    if len(names & _OPERATORS) >= 3:
        words.append("an operator")
        names -= _OPERATORS
    if "NAME" in names and "STRING" in names:
        words.append("a name")
        names -= {"NAME", "STRING", "DASHED"}
    if {"TRUE", "FALSE"} <= names:
        words.append("true or false")
        names -= {"TRUE", "FALSE"}
    keywords: list[str] = []
    punctuation: list[str] = []
    tail: list[str] = []
    for name in sorted(names):
        if name in ("_NL", "$END"):
            tail.append(_TERMINAL_WORDS[name])
        elif name in _TERMINAL_WORDS:
            if _TERMINAL_WORDS[name] not in words:
                words.append(_TERMINAL_WORDS[name])
        else:
            literal = _literal(name)
            if literal is None:
                continue
            if re.fullmatch(r"[A-Za-z_]+", literal):
                keywords.append(literal)
            else:
                punctuation.append(f"'{literal}'")
    if names >= _STATEMENTS:
        return "a statement (" + ", ".join(keywords) + ")", keywords
    elif len(keywords) > 14:
        words.append("a clause (" + ", ".join(keywords[:14]) + ", ...)")
    elif keywords:
        words.append(", ".join(f"'{k}'" for k in keywords))
    words.extend(punctuation)
    words.extend(tail)
    return (_join(words) if words else "something else"), keywords


def _found_text(tok: Token, text: str) -> str:
    """The word or character at the error, read from the source (not Lark's re-lexing)."""
    start = tok.start_pos or 0
    m = re.match(r"[A-Za-z_][A-Za-z0-9_-]*|\d[\w.:%/-]*|\"[^\"\n]*\"?|'[^'\n]*'?|\S", text[start:])
    return m.group(0) if m else str(tok)


def _describe_found(tok: Token, shown: str) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type == "_NL":
        return "the end of the line"
    if tok.type == "STRING" or shown[:1] in "\"'":
        return f"the string {shown if len(shown) <= 30 else shown[:27] + '...'}"
    if tok.type == "NUMBER":
        return f"the number {shown}"
    return f"'{shown}'"


def _accepted_terminals(exc: UnexpectedToken) -> set[str]:
    """The terminals that could have come next."""
    parser = getattr(exc, "interactive_parser", None)
    if parser is None:
        return set(exc.expected)
    return _accepts(parser)


def _accepts(parser: InteractiveParser) -> set[str]:
    """Lark's `accepts()`, which skips the imported expression terminals (their names are
    not all upper case)."""
    terminals = {t.name for t in _parser().terminals} | {"$END"}
    conf = copy(parser.parser_state.parse_conf)
    conf.callbacks = {}
    accepted: set[str] = set()
    for name in parser.choices():  # type: ignore[no-untyped-call]
        if name not in terminals:
            continue
        cursor = parser.copy(deepcopy_values=False)  # type: ignore[no-untyped-call]
        cursor.parser_state.parse_conf = conf
        try:
            cursor.feed_token(Token(name, ""))
        except UnexpectedToken:
            continue
        accepted.add(name)
    return accepted


def _stack(exc: UnexpectedInput) -> list[Any]:
    parser = getattr(exc, "interactive_parser", None)
    return list(parser.parser_state.value_stack) if parser is not None else []


def _context(stack: list[Any]) -> str:
    """Which item the error is in, from the parser's stack: `transition 'assign'`."""
    for i in range(len(stack) - 1, -1, -1):
        node = stack[i]
        if isinstance(node, Token) and node.type == "_ARROW":
            names = [t for t in stack[i + 1 :] if isinstance(t, Tree) and t.data == "name"]
            if len(names) >= 2:
                return f"transition '{_leaf(names[1])}'"
            return ""
        if isinstance(node, Token) and node.type in _ITEM_WORDS:
            following = stack[i + 1] if i + 1 < len(stack) else None
            if isinstance(following, Tree) and following.data == "name":
                return f"{_ITEM_WORDS[node.type]} '{_leaf(following)}'"
    return ""


def _innermost(stack: list[Any]) -> str | None:
    """The keyword (or '->') of the innermost statement on the parser's stack."""
    for node in reversed(stack):
        if isinstance(node, Token) and (node.type in _SHAPES):
            return node.type
    return None


def _leaf(node: Any) -> str:
    """The last token of a tree (or the token itself)."""
    while isinstance(node, Tree) and node.children:
        node = node.children[-1]
    return str(node) if isinstance(node, Token) else ""


def _previous(stack: list[Any]) -> tuple[str, str]:
    """The kind ('keyword', 'name', ...) and text of what was read just before the error."""
    if not stack:
        return "", ""
    last = stack[-1]
    if isinstance(last, Token):
        literal = _literal(last.type)
        return ("keyword" if literal and literal.isidentifier() else last.type), str(last)
    if isinstance(last, Tree):
        return str(last.data), _leaf(last)
    return "", ""


def _expected_after(stack: list[Any]) -> str | None:
    if len(stack) >= 2:
        before, last = stack[-2], stack[-1]
        if isinstance(before, Token) and isinstance(last, Tree):
            return _AFTER.get((before.type, str(last.data)))
    return None


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str, layout: _Layout) -> Diagnostic:
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedCharacters):
        return _character_diagnostic(exc, text, path, line, column)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = _accepted_terminals(exc)
    stack = _stack(exc)
    if tok.type == "$END" and layout.open_brackets:
        opener = layout.open_brackets[-1]
        closer = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}[opener.type]
        return Diagnostic(
            "dsl-syntax",
            f"'{opener.value}' is never closed: the file ends first",
            Span(path, opener.line or 1, opener.column or 1),
            hint=f"add the missing '{closer}'; every '{opener.value}' needs its '{closer}'",
        )
    shown = _found_text(tok, text)
    what, keywords = _describe_expected(expected)
    what = _expected_after(stack) or what
    kind, previous = _previous(stack)
    after = f" after '{previous}'" if kind == "keyword" else ""
    where = _context(stack)
    message = f"expected {what}{after}, found {_describe_found(tok, shown)}"
    if where:
        message = f"{where}: {message}"
    hint = _hint(tok, shown, expected, keywords, text, layout, stack) or _shape(stack, kind)
    return Diagnostic("dsl-syntax", message, Span(path, line, column), hint=hint)


def _shape(stack: list[Any], kind: str) -> str:
    """How the statement being written reads."""
    if kind == "keyword" and stack and stack[-1].type in ("DO", "THEN"):
        return _ACTIONS_SHAPE
    innermost = _innermost(stack)
    if innermost is None:
        return (
            "each line is a statement, such as 'workflow repair {', "
            "'rule p1 on created do notify assignee' or 'timezone \"UTC\"'"
        )
    shape = _SHAPES[innermost]
    return f"it reads: {shape}"


def _hint(
    tok: Token,
    shown: str,
    expected: set[str],
    keywords: list[str],
    text: str,
    layout: _Layout,
    stack: list[Any],
) -> str | None:
    kind, previous = _previous(stack)
    start = tok.start_pos or 0
    touching = start > 0 and text[start - 1] not in " \t\n{[(,"
    at_end = tok.type in ("_NL", "$END")
    is_keyword = shown in _keyword_names()
    if shown == "=" and "expr__COMPARE" in expected:
        return "compare with ==; a single = is not an operator"
    if shown == "=" and "_ARROW" in expected:
        return "a transition reads 'from -> to : name', e.g. 'new -> assigned : assign'"
    if (shown.lower() in _OPERATOR_WORDS or shown[:1] in "=!<>+*/") and _in_mapping(stack):
        return (
            "inside { } values are data, not expressions; quote an expression there, "
            'e.g. {if: "store_no in actor.stores"}'
        )
    if len(stack) >= 2 and isinstance(stack[-2], Token) and stack[-2].type == "ON":
        return (
            f"'{previous}' was read as the event that fires the rule; a trigger is an event "
            "such as created or sla.warning, or entered, left or transitioned with a name, "
            "updated with fields, schedule with a cron text"
        )
    key = _statement_key(stack)
    if key is not None and not at_end and key not in _keyword_names():
        guess = did_you_mean(key, _keyword_names())
        if guess:
            return f"'{key}' is not a keyword here; {guess}"
    if (
        not at_end
        and previous in _keyword_names()
        and (kind in ("name", "scalar", "names") or kind.startswith("expr__"))
        and not _is_item_name(stack)
    ):
        return f"'{previous}' was read as a name here: is something missing before it?"
    if is_keyword and "_NL" in expected and shown not in keywords:
        return "put each statement on a line of its own"
    if not at_end and shown.isidentifier():
        guess = did_you_mean(shown, keywords)
        if guess:
            return guess
    if "MESSAGE" in expected and any(
        isinstance(t, Token) and t.type == "VALIDATE" for t in stack[-4:]
    ):
        return 'it reads: validate <condition> message "what to fix when it is false"'
    if at_end and len(expected & _VALUE_START) >= 5:
        return (
            'give the value on the same line: a name, a number, a "quoted string", '
            "a [list] or a {mapping}"
        )
    if "STAR" in expected and at_end:
        return "list the fields or templates (a, b), [] for none, or * for all"
    if {"TRUE", "FALSE"} <= expected and shown.lower() in ("yes", "no", "on", "off", "y", "n"):
        return "write true or false"
    if touching and not at_end and shown[:1] in ":-/.%@+":
        word = re.match(r"[^\s,\]\}\)]+", text[_word_start(text, start) :])
        whole = word.group(0) if word else shown
        return f'quote text that is not a plain name, number or duration: "{whole}"'
    if layout.open_brackets and not at_end:
        opener = layout.open_brackets[-1]
        closer = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}[opener.type]
        if closer in expected and opener.type != "LBRACE" and opener.line != tok.line:
            return f"the '{opener.value}' at line {opener.line} is not closed"
    if "COMMA" in expected and tok.type in ("NAME", "STRING", "DASHED", "NUMBER", "DURATION"):
        return "separate the items of a list with commas"
    if tok.type == "$END" and kind == "COMMA":
        return "a ',' at the end of a line continues the list on the next line"
    if tok.type == "RBRACE" and not layout.open_brackets:
        return "this '}' closes nothing: there is one '}' too many"
    if tok.type == "LBRACE" and "LBRACE" not in expected:
        return "a block's '{' goes at the end of the item's line, not on a line of its own"
    if "BREACH" in expected and "PERCENT" in expected:
        return "escalate at a share of the target (50%), at breach, or later (breach + 2h)"
    return None


def _is_item_name(stack: list[Any]) -> bool:
    """True when the last thing read is the name of the item being defined."""
    if len(stack) < 2:
        return False
    before = stack[-2]
    return isinstance(before, Token) and (before.type in _ITEM_WORDS or before.type == "COLON")


def _statement_key(stack: list[Any]) -> str | None:
    """The key of a generic `key value` statement being read, if that is what it is."""
    i = len(stack)
    while i > 0 and not (isinstance(stack[i - 1], Token) and stack[i - 1].type == "_NL"):
        if isinstance(stack[i - 1], Token) and stack[i - 1].type == "LBRACE":
            if _in_mapping(stack[:i]):
                return None
            break
        i -= 1
    first = stack[i] if i < len(stack) else None
    if isinstance(first, Tree) and first.data == "key":
        return _leaf(first)
    return None


def _in_mapping(stack: list[Any]) -> bool:
    """True when the innermost open '{' is a `{key: value}` mapping, not an item's block."""
    for i in range(len(stack) - 1, -1, -1):
        node = stack[i]
        if isinstance(node, Token) and node.type == "LBRACE":
            before = stack[i - 1] if i > 0 else None
            return isinstance(before, Token) or (isinstance(before, Tree) and before.data == "key")
    return False


def _word_start(text: str, pos: int) -> int:
    while pos > 0 and not text[pos - 1].isspace() and text[pos - 1] not in "{[(,":
        pos -= 1
    return pos


def _character_diagnostic(
    exc: UnexpectedCharacters, text: str, path: str, line: int, column: int
) -> Diagnostic:
    pos = exc.pos_in_stream or 0
    ch = text[pos] if pos < len(text) else ""
    if ch in "\"'":
        return Diagnostic(
            "dsl-syntax",
            "this string is not closed on its line",
            Span(path, line, column),
            hint=f"end it with {ch}; a line break inside a string is written \\n",
        )
    word = re.match(r"[^\s,\]\}\)]+", text[pos:])
    shown = word.group(0) if word else ch
    if ch.isdigit():
        hint = f'quote it if it is text ("{shown}"); durations are written like 30m, 4h, 2d'
        if re.fullmatch(r"\d+(\.\d+)?[eE][-+]?\d+", shown):
            hint = f"write the number out in full: {format(Decimal(shown), 'f')}"
        return Diagnostic(
            "dsl-syntax",
            f"'{shown}' is not a number, duration, percentage or date",
            Span(path, line, column),
            hint=hint,
        )
    return Diagnostic(
        "dsl-syntax",
        f"unexpected character '{ch}'",
        Span(path, line, column),
        hint=f'quote text that contains it, e.g. "{shown}"',
    )


# -- entry points -------------------------------------------------------------------------------


def _too_big(path: str, size: int, limits: LoadLimits) -> Diagnostic:
    return Diagnostic(
        "file-too-large",
        f"file is {size:,} bytes; the limit is {limits.max_bytes:,}",
        Span(path, 1, 1),
        hint="split the pack into several files, or raise the limit if this is intended",
    )


def parse_flow(text: str, path: str = "<string>", limits: LoadLimits | None = None) -> FlowParse:
    """Parse DSL text into data, a source map, its comments and the anchors of statements."""
    limits = limits or LoadLimits()
    size = len(text.encode("utf-8"))
    if size > limits.max_bytes:
        return FlowParse(None, [_too_big(path, size, limits)])
    text = text.removeprefix("\ufeff")
    deep = _nesting_exceeds(text, limits.max_depth)
    if deep is not None:
        return FlowParse(
            None,
            [
                Diagnostic(
                    "dsl-too-deep",
                    f"brackets nested deeper than {limits.max_depth} levels",
                    Span(path, *deep),
                    hint="a definition never needs this much nesting; flatten the structure",
                )
            ],
        )
    source_text = text if text.endswith("\n") else text + "\n"
    try:
        tree, layout = _parse_tree(source_text)
    except _Failed as failed:
        diagnostic = _syntax_diagnostic(failed.error, source_text, path, failed.layout)
        return FlowParse(None, [diagnostic], failed.layout.comments)
    walker = _Walker(path, source_text)
    with _no_cyclic_gc():
        walker.walk(tree)
    if walker.diagnostics:
        return FlowParse(None, walker.diagnostics, layout.comments, walker.anchors)
    document = YamlDocument(path, text, walker.data, walker.source)
    return FlowParse(document, [], layout.comments, walker.anchors)


def load_flow_text(
    text: str, path: str = "<string>", limits: LoadLimits | None = None
) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Parse DSL text into data and a source map, or return located diagnostics."""
    parsed = parse_flow(text, path, limits)
    return parsed.document, parsed.diagnostics


def load_flow_file(
    path: Path, limits: LoadLimits | None = None, display: str | None = None
) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Load a `.flow` file; its size is checked before a byte of it is read."""
    limits = limits or LoadLimits()
    text, name, diagnostics = read_source(path, limits, display, kind="dsl")
    if text is None:
        return None, diagnostics
    return load_flow_text(text, name, limits)
