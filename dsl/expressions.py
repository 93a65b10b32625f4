"""Parse the expression language into a small syntax tree whose nodes know their position.

The grammar (`expr.lark`) is the only way in: whatever it cannot express — attributes,
subscripts, lambdas, powers, comprehensions — no later stage ever sees. Before Lark runs,
cheap checks bound the length and nesting so that hostile input fails in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

MAX_LENGTH = 2000
MAX_NESTING = 32
MAX_DEPTH = 100
MAX_DIGITS = 15
MAX_DURATION = 100 * 366 * 86400  # seconds; timedelta overflows far beyond, but no SLA needs it
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})


@dataclass(frozen=True, slots=True)
class Position:
    """Where a node starts in the expression text: 0-based offset, 1-based line and column."""

    offset: int
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: string, number, duration (seconds), percent (as a fraction), bool, null."""

    pos: Position
    kind: str
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class Name:
    """A name or dotted path such as `priority`, `ticket.ref`, `actor.roles`."""

    pos: Position
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        """The path as written, e.g. `ticket.ref`."""
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Call:
    """A call of one of the fixed functions."""

    pos: Position
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ListExpr:
    """A list literal."""

    pos: Position
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    """`not x` or `-x`."""

    pos: Position
    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary operation; `op` is one of and, or, ==, !=, <, <=, >, >=, in, not in, + - * /."""

    pos: Position
    op: str
    left: Expr
    right: Expr
    op_pos: Position


Expr = Literal | Name | Call | ListExpr | Unary | Binary


class ExpressionError(Exception):
    """A located problem in an expression (syntax or limits)."""

    def __init__(
        self, message: str, pos: Position, hint: str | None = None, code: str = "expr-syntax"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint
        self.code = code


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "expr.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _pos(text: str, offset: int) -> Position:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Position(offset, line, column)


def _meta_pos(meta: Any) -> Position:
    return Position(meta.start_pos, meta.line, meta.column)


def _tok_pos(tok: Token) -> Position:
    return Position(tok.start_pos or 0, tok.line or 1, tok.column or 1)


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    out: list[str] = []
    i = 0
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            # Unknown escapes keep their backslash, so "^S\d{4}$" means what it says.
            nxt = body[i + 1]
            out.append(escapes[nxt] if nxt in escapes else "\\" + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def duration_seconds(text: str) -> int:
    """`1h30m` → 5400."""
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    total, digits = 0, ""
    for ch in text:
        if ch.isdigit():
            digits += ch
        else:
            total += int(digits) * units[ch]
            digits = ""
    return total


@v_args(meta=True, inline=True)
class _ToAst(Transformer[Token, Expr]):
    def string(self, meta: Any, tok: Token) -> Literal:
        return Literal(_meta_pos(meta), "string", _unquote(str(tok)), str(tok))

    def number(self, meta: Any, tok: Token) -> Literal:
        text = str(tok)
        if len(text.replace(".", "")) > MAX_DIGITS:
            raise ExpressionError(
                f"number {text[:20]}… has more than {MAX_DIGITS} digits",
                _tok_pos(tok),
                code="expr-limit",
            )
        value: float | int = float(text) if "." in text else int(text)
        return Literal(_meta_pos(meta), "number", value, text)

    def duration(self, meta: Any, tok: Token) -> Literal:
        text = str(tok)
        seconds = duration_seconds(text) if len(text) <= 24 else MAX_DURATION + 1
        if seconds > MAX_DURATION:
            raise ExpressionError(
                f"duration {text[:24]} is longer than 100 years",
                _tok_pos(tok),
                code="expr-limit",
            )
        return Literal(_meta_pos(meta), "duration", seconds, text)

    def percent(self, meta: Any, tok: Token) -> Literal:
        text = str(tok)
        return Literal(_meta_pos(meta), "percent", float(text[:-1]) / 100, text)

    def true(self, meta: Any) -> Literal:
        return Literal(_meta_pos(meta), "boolean", True, "true")

    def false(self, meta: Any) -> Literal:
        return Literal(_meta_pos(meta), "boolean", False, "false")

    def null(self, meta: Any) -> Literal:
        return Literal(_meta_pos(meta), "null", None, "null")

    def path(self, meta: Any, *parts: Token) -> Name:
        for part in parts:
            if part.startswith("_"):
                raise ExpressionError(
                    f"'{part}': names may not start with '_'",
                    _tok_pos(part),
                    "field names start with a letter",
                    code="expr-forbidden",
                )
        return Name(_meta_pos(meta), tuple(str(p) for p in parts))

    def call(self, meta: Any, name: Token, *args: Expr) -> Call:
        return Call(_meta_pos(meta), str(name), tuple(args))

    def list(self, meta: Any, *items: Expr) -> ListExpr:
        return ListExpr(_meta_pos(meta), tuple(items))

    def neg(self, meta: Any, operand: Expr) -> Unary:
        return Unary(_meta_pos(meta), "-", operand)

    def not_op(self, meta: Any, operand: Expr) -> Unary:
        return Unary(_meta_pos(meta), "not", operand)

    def _binary(self, meta: Any, op: str, left: Expr, right: Expr, op_pos: Position) -> Binary:
        return Binary(_meta_pos(meta), op, left, right, op_pos)

    def or_op(self, meta: Any, left: Expr, right: Expr) -> Binary:
        return self._binary(meta, "or", left, right, right.pos)

    def and_op(self, meta: Any, left: Expr, right: Expr) -> Binary:
        return self._binary(meta, "and", left, right, right.pos)

    def compare(self, meta: Any, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(meta, str(op), left, right, _tok_pos(op))

    def arith(self, meta: Any, left: Expr, op: Token, right: Expr) -> Binary:
        return self._binary(meta, str(op), left, right, _tok_pos(op))

    def in_op(self, meta: Any, left: Expr, right: Expr) -> Binary:
        return self._binary(meta, "in", left, right, right.pos)

    def not_in_op(self, meta: Any, left: Expr, right: Expr) -> Binary:
        return self._binary(meta, "not in", left, right, right.pos)


_WORDS = {
    "COMPARE": "a comparison (== != < <= > >=)",
    "ADD_OP": "+ or -",
    "MUL_OP": "* or /",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "DURATION": "a duration",
    "PERCENT": "a percentage",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "DOT": "'.'",
    "MINUS": "'-'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "IN": "'in'",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
    "$END": "the end of the expression",
}

# Terminals that can begin a value (the DSL parser names them the same way).
VALUE_START = frozenset(
    {
        "NAME",
        "NUMBER",
        "STRING",
        "DURATION",
        "PERCENT",
        "LPAR",
        "LSQB",
        "MINUS",
        "NOT",
        "TRUE",
        "FALSE",
        "NULL",
    }
)


def _expected(names: set[str]) -> str:
    if names & VALUE_START and len(names & VALUE_START) >= 4:
        rest = sorted(_WORDS.get(n, n) for n in names - VALUE_START)
        return ", ".join(["a value", *rest]) if rest else "a value"
    words = sorted({_WORDS.get(n, n.lower()) for n in names})
    return ", ".join(words)


_SPECIAL = {
    "=": ("'=' is not an operator", "use == to compare"),
    "&": ("'&' is not an operator", "use 'and'"),
    "|": ("'|' is not an operator", "use 'or'"),
    "!": ("'!' is not an operator", "use 'not', or != to compare"),
    "%": ("'%' is only allowed right after a number, as in 80%", None),
    "^": ("'^' is not an operator", "powers are not supported"),
    "@": ("unexpected character '@'", None),
}


def _syntax_error(text: str, exc: UnexpectedInput) -> ExpressionError:
    offset = getattr(exc, "pos_in_stream", None)
    at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    if at_end or isinstance(exc, UnexpectedEOF):
        pos = _pos(text, len(text))
        expected = _expected(set(getattr(exc, "expected", None) or ()))
        return ExpressionError("the expression ends too early", pos, f"expected {expected}")
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        pos = _tok_pos(tok)
        shown = str(tok)
        start = tok.start_pos or 0
        if shown == "*" and "**" in text[max(0, start - 1) : start + 2]:
            return ExpressionError("'**' is not an operator", pos, "powers are not supported")
        if tok.type == "COMPARE" and "COMPARE" not in exc.expected:
            return ExpressionError(
                f"comparisons cannot be chained ('{shown}')",
                pos,
                "write 'a < b and b < c'",
            )
        if tok.type == "NOT":
            return ExpressionError(
                "unexpected 'not'", pos, "to negate a value after an operator, write (not x)"
            )
        if set(exc.expected) == {"IN"}:
            return ExpressionError(
                f"unexpected '{shown}' after 'not'",
                pos,
                "after a value 'not' only forms 'not in'; to negate, write (not x)",
            )
        expected = _expected(set(exc.expected))
        return ExpressionError(f"unexpected '{shown}'", pos, f"expected {expected}")
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream or 0
        ch = text[offset]
        pos = _pos(text, offset)
        keyword = re.match(r"(and|or|not|in|true|false|null)(?![A-Za-z0-9_])", text[offset:])
        if keyword:
            word = keyword.group(1)
            keyword_hint = (
                "after a value 'not' only forms 'not in'; to negate, write (not x)"
                if word == "not"
                else f"'{word}' is a keyword and cannot be used here"
            )
            return ExpressionError(f"unexpected '{word}'", pos, keyword_hint)
        if ch in _SPECIAL:
            message, hint = _SPECIAL[ch]
            if ch in "&|" and text[offset : offset + 2] in ("&&", "||"):
                message = f"'{text[offset : offset + 2]}' is not an operator"
            return ExpressionError(message, pos, hint)
        if ch in "\"'":
            return ExpressionError("unterminated string", pos, f"close it with {ch}")
        if ch.isdigit():
            word = ch
            for follower in text[offset + 1 :]:
                if not (follower.isalnum() or follower == "_"):
                    break
                word += follower
            return ExpressionError(
                f"'{word}' is neither a number nor a name",
                pos,
                "names start with a letter; durations are written like 30m, 4h, 2d, 1w",
            )
        return ExpressionError(f"unexpected character '{ch}'", pos, None)
    return ExpressionError(
        str(exc).splitlines()[0], _pos(text, getattr(exc, "pos_in_stream", 0) or 0)
    )


def _check_nesting(text: str) -> None:
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
            if depth > MAX_NESTING:
                raise ExpressionError(
                    f"brackets nested deeper than {MAX_NESTING} levels",
                    _pos(text, i),
                    "split the condition into simpler parts",
                    code="expr-limit",
                )
        elif ch in ")]":
            depth = max(0, depth - 1)
        i += 1


def _depth(node: Tree[Token]) -> int:
    deepest = 0
    stack: list[tuple[Tree[Token] | Token, int]] = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(current, Tree):
            stack.extend((child, level + 1) for child in current.children)
    return deepest


def parse_expression(text: str) -> Expr:
    """Parse an expression; raises ExpressionError with the position of the fault."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}",
            _pos(text, MAX_LENGTH),
            "split it, or move the logic into a computed field",
            code="expr-limit",
        )
    if not text.strip():
        raise ExpressionError(
            "the expression is empty",
            _pos(text, 0),
            'write a condition such as priority == "P1", or remove the key',
        )
    _check_nesting(text)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    if isinstance(tree, Tree) and _depth(tree) > MAX_DEPTH:
        raise ExpressionError(
            f"expression is nested deeper than {MAX_DEPTH} levels",
            _pos(text, 0),
            "split the condition into simpler parts",
            code="expr-limit",
        )
    try:
        result = _ToAst().transform(tree)
    except ExpressionError:
        raise
    except Exception as exc:  # lark wraps errors raised inside transformer callbacks
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, ExpressionError):
            raise inner from None
        raise
    return result


def names_in(node: Expr) -> list[Name]:
    """Every name the expression reads, in order."""
    found: list[Name] = []
    stack: list[Expr] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Name):
            found.append(current)
        elif isinstance(current, Call):
            stack.extend(reversed(current.args))
        elif isinstance(current, ListExpr):
            stack.extend(reversed(current.items))
        elif isinstance(current, Unary):
            stack.append(current.operand)
        elif isinstance(current, Binary):
            stack.extend((current.right, current.left))
    return found


def render(node: Expr) -> str:
    """Canonical text of a syntax tree (fully parenthesised where precedence requires)."""
    return _render(node, 0)


_PREC = {
    "or": 1,
    "and": 2,
    "not": 3,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "in": 4,
    "not in": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'


def _render(node: Expr, parent: int) -> str:
    if isinstance(node, Literal):
        if node.kind == "string":
            return _quote(str(node.value))
        return node.text
    if isinstance(node, Name):
        return node.dotted
    if isinstance(node, Call):
        return f"{node.name}({', '.join(_render(a, 0) for a in node.args)})"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(_render(i, 0) for i in node.items) + "]"
    if isinstance(node, Unary):
        if node.op == "not":
            text = f"not {_render(node.operand, 3)}"
            return f"({text})" if parent > 3 else text
        return f"-{_render(node.operand, 7)}"
    prec = _PREC[node.op]
    # Comparisons do not chain, so both sides of one bind tighter than it.
    left = _render(node.left, prec + 1 if prec == 4 else prec)
    right = _render(node.right, prec + 1)
    text = f"{left} {node.op} {right}"
    return f"({text})" if prec < parent else text
